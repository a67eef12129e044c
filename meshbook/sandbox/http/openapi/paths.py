"""The `paths` of an OpenAPI v3 group-version document: every operation of every served resource.

Named and shaped as the real API server names them (operationId, x-kubernetes-action, one
x-kubernetes-group-version-kind per operation, query parameters, request and response content types),
because kubectl searches these operations: the PATCH operation of a kind tells it whether the server
validates fields (`fieldValidation` parameter) and whether it takes strategic merge patches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from meshbook.sandbox.apiserver.validation.builtin import model_for
from meshbook.sandbox.http.discovery import subresource_gvk, subresource_of
from meshbook.sandbox.http.openapi.schemas import SchemaSet, ref
from meshbook.sandbox.storage.resources import ResourceType

JSON = "application/json"
PATCH_TYPES_CUSTOM: tuple[str, ...] = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
)
PATCH_TYPES_BUILTIN: tuple[str, ...] = (*PATCH_TYPES_CUSTOM, "application/strategic-merge-patch+json")
_RESPONSE_TYPES_BUILTIN = (JSON, "application/yaml", "application/vnd.kubernetes.protobuf")
_RESPONSE_TYPES_CUSTOM = (JSON, "application/yaml")
#: Subresources answered by a streaming connection rather than an object ("connect" operations).
CONNECT_SUBRESOURCES = frozenset({"portforward", "exec", "attach", "proxy"})

#: Query parameters by name: (schema type, description). kubectl only checks names and `in`.
PARAMETERS: dict[str, tuple[str, str]] = {
    "pretty": ("string", "If 'true', then the output is pretty printed."),
    "dryRun": ("string", "When present, indicates that modifications should not be persisted."),
    "fieldManager": ("string", "A name associated with the actor or entity that is making these changes."),
    "fieldValidation": (
        "string",
        "How the server handles unknown or duplicate fields in the request: Ignore, Warn or Strict.",
    ),
    "force": ("boolean", "Force re-acquires conflicting fields owned by other managers (apply only)."),
    "allowWatchBookmarks": ("boolean", "Requests watch events with type BOOKMARK."),
    "continue": ("string", "The continue token of a previous paginated list call."),
    "fieldSelector": ("string", "A selector to restrict the returned objects by their fields."),
    "labelSelector": ("string", "A selector to restrict the returned objects by their labels."),
    "limit": ("integer", "Maximum number of responses to return for a list call."),
    "resourceVersion": ("string", "Constrains which resource versions the request may be served from."),
    "resourceVersionMatch": ("string", "How resourceVersion is applied to list calls."),
    "sendInitialEvents": ("boolean", "Whether a watch starts with synthetic ADDED events."),
    "timeoutSeconds": ("integer", "Timeout for the list/watch call."),
    "watch": ("boolean", "Watch for changes to the described resources."),
    "gracePeriodSeconds": ("integer", "The duration in seconds before the object should be deleted."),
    "ignoreStoreReadErrorWithClusterBreakingPotential": ("boolean", "Delete even if the object is corrupt."),
    "orphanDependents": ("boolean", "Deprecated: use propagationPolicy."),
    "propagationPolicy": ("string", "Whether and how garbage collection will be performed."),
    "container": ("string", "The container for which to stream logs."),
    "follow": ("boolean", "Follow the log stream of the pod."),
    "limitBytes": ("integer", "The number of bytes to read from the server before terminating."),
    "previous": ("boolean", "Return previous terminated container logs."),
    "sinceSeconds": ("integer", "A relative time in seconds before the current time to show logs from."),
    "tailLines": ("integer", "The number of lines from the end of the logs to show."),
    "timestamps": ("boolean", "Add an RFC3339 timestamp at the beginning of every line of log output."),
    "ports": ("integer", "List of ports to forward."),
}
_LIST_PARAMS = (
    *("allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit", "resourceVersion"),
    *("resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch"),
)
_WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")
_DELETE_PARAMS = ("dryRun", "gracePeriodSeconds", "ignoreStoreReadErrorWithClusterBreakingPotential",
                  "orphanDependents", "propagationPolicy")  # fmt: skip
_SUB_PARAMS = {
    "log": ("container", "follow", "limitBytes", "previous", "sinceSeconds", "tailLines", "timestamps"),
    "portforward": ("ports",),
}


def query_param(name: str) -> dict[str, Any]:
    kind, text = PARAMETERS[name]
    schema: dict[str, Any] = {"type": kind, "uniqueItems": True}
    return {"name": name, "in": "query", "description": text, "schema": schema}


def _path_param(name: str) -> dict[str, Any]:
    text = "name of the resource" if name == "name" else "object name and auth scope, such as for teams"
    return {"name": name, "in": "path", "description": text, "required": True,
            "schema": {"type": "string", "uniqueItems": True}}  # fmt: skip


def operation_group(group: str, version: str) -> str:
    """OperationId infix: ''/v1 -> CoreV1, rbac.authorization.k8s.io/v1 -> RbacAuthorizationV1."""
    base = group.removesuffix(".k8s.io") if group else "core"
    words = base.replace("-", ".").split(".")
    return "".join(w[:1].upper() + w[1:] for w in words) + version[:1].upper() + version[1:]


def tag(group: str, version: str) -> str:
    name = operation_group(group, version).removesuffix(version[:1].upper() + version[1:])
    return f"{name[:1].lower()}{name[1:]}_{version}"


@dataclass
class PathBuilder:
    """Accumulates the paths and schemas of one group-version document."""

    group: str
    version: str
    schemas: SchemaSet
    paths: dict[str, dict[str, Any]] = field(default_factory=dict)

    def operation(self, verb: str, op_id: str, action: str, gvk: tuple[str, str, str], **extra: Any) -> dict[str, Any]:
        """One operation; kubectl finds operations by their x-kubernetes-group-version-kind."""
        group, version, kind = gvk
        op: dict[str, Any] = {
            "tags": [tag(self.group, self.version)],
            "description": f"{verb} {kind}",
            "operationId": op_id,
        }
        op.update(extra)
        op["x-kubernetes-action"] = action
        op["x-kubernetes-group-version-kind"] = {"group": group, "kind": kind, "version": version}
        return op

    def body(self, schema: dict[str, Any], types: Iterable[str] = ("*/*",)) -> dict[str, Any]:
        return {"content": {ct: {"schema": schema} for ct in types}, "required": True}

    def responses(self, t: ResourceType, schema: dict[str, Any], *codes: str) -> dict[str, Any]:
        types = _RESPONSE_TYPES_CUSTOM if t.custom else _RESPONSE_TYPES_BUILTIN
        text = {"200": "OK", "201": "Created", "202": "Accepted"}
        out: dict[str, Any] = {
            code: {"description": text[code], "content": {ct: {"schema": schema} for ct in types}} for code in codes
        }
        return out | {"401": {"description": "Unauthorized"}}

    def add_resource(self, t: ResourceType) -> None:
        """Every operation of one resource and its subresources, named as the real server names them."""
        kind_schema = self._kind_schema(t)
        obj = ref(kind_schema)
        list_ref = ref(self.schemas.add_list(kind_schema, t.group, t.version, t.kind))
        status = ref(self.schemas.name_of("V1Status"))
        gvk = (t.group, t.version, t.kind)
        g = operation_group(t.group, t.version)
        scope = "Namespaced" if t.namespaced else ""
        prefix = f"/apis/{t.group}/{t.version}" if t.group else f"/api/{t.version}"
        base = f"{prefix}/namespaces/{{namespace}}/{t.plural}" if t.namespaced else f"{prefix}/{t.plural}"
        scope_params = [_path_param("namespace")] if t.namespaced else []
        pretty = [query_param("pretty")]
        write = [query_param(p) for p in _WRITE_PARAMS]
        patch_types = PATCH_TYPES_CUSTOM if t.custom else PATCH_TYPES_BUILTIN
        patch_body = self.body(ref(self.schemas.name_of("V1Patch")), patch_types)

        collection: dict[str, Any] = {}
        if "list" in t.verbs:
            collection["get"] = self.operation(
                "list", f"list{g}{scope}{t.kind}", "list", gvk,
                parameters=[query_param(p) for p in _LIST_PARAMS],
                responses=self.responses(t, list_ref, "200"),
            )  # fmt: skip
        if "create" in t.verbs:
            collection["post"] = self.operation(
                "create", f"create{g}{scope}{t.kind}", "post", gvk,
                parameters=write, requestBody=self.body(obj),
                responses=self.responses(t, obj, "200", "201", "202"),
            )  # fmt: skip
        if "deletecollection" in t.verbs:
            collection["delete"] = self.operation(
                "delete collection of", f"delete{g}Collection{scope}{t.kind}", "deletecollection", gvk,
                parameters=[query_param(p) for p in (*_DELETE_PARAMS, *_LIST_PARAMS) if p != "watch"],
                requestBody=self.body(ref(self.schemas.name_of("V1DeleteOptions"))),
                responses=self.responses(t, status, "200"),
            )  # fmt: skip
        if collection:
            self.paths[base] = collection | {"parameters": scope_params + pretty}
        if t.namespaced and "list" in t.verbs:
            self.paths[f"{prefix}/{t.plural}"] = {
                "get": self.operation(
                    "list", f"list{g}{t.kind}ForAllNamespaces", "list", gvk,
                    responses=self.responses(t, list_ref, "200"),
                ),
                "parameters": [query_param(p) for p in (*_LIST_PARAMS, "pretty")],
            }  # fmt: skip

        item: dict[str, Any] = {}
        if "get" in t.verbs:
            item["get"] = self.operation(
                "read", f"read{g}{scope}{t.kind}", "get", gvk, responses=self.responses(t, obj, "200")
            )
        if "update" in t.verbs:
            item["put"] = self.operation(
                "replace", f"replace{g}{scope}{t.kind}", "put", gvk,
                parameters=write, requestBody=self.body(obj), responses=self.responses(t, obj, "200", "201"),
            )  # fmt: skip
        if "delete" in t.verbs:
            item["delete"] = self.operation(
                "delete", f"delete{g}{scope}{t.kind}", "delete", gvk,
                parameters=[query_param(p) for p in _DELETE_PARAMS],
                requestBody=self.body(ref(self.schemas.name_of("V1DeleteOptions"))),
                responses=self.responses(t, obj, "200", "202"),
            )  # fmt: skip
        if "patch" in t.verbs:
            item["patch"] = self.operation(
                "partially update", f"patch{g}{scope}{t.kind}", "patch", gvk,
                parameters=[*write, query_param("force")], requestBody=patch_body,
                responses=self.responses(t, obj, "200", "201"),
            )  # fmt: skip
        item_params = [_path_param("name"), *scope_params, *pretty]
        if item:
            self.paths[f"{base}/{{name}}"] = item | {"parameters": item_params}
        for sub in t.subresources:
            ops = self._subresource(t, sub, (g, f"{scope}{t.kind}"), patch_body, write)
            self.paths[f"{base}/{{name}}/{sub}"] = ops | {"parameters": item_params}

    def _kind_schema(self, t: ResourceType) -> str:
        if t.custom:
            return self.schemas.add_custom(t.schema, t.group, t.version, t.kind)
        model = model_for(t.group, t.version, t.kind)
        if model is None:  # a built-in the client has no model of: an open object
            return self.schemas.add_custom(None, t.group, t.version, t.kind)
        return self.schemas.add_kind(model, t.group, t.version, t.kind)

    def _subresource(
        self,
        t: ResourceType,
        sub: str,
        names: tuple[str, str],
        patch_body: dict[str, Any],
        write: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """Operations of `<plural>/{name}/<sub>`; names = (operation group, [Namespaced]Kind)."""
        g, target = names
        name = f"{g}{target}"
        gvk = subresource_gvk(t, sub)
        title = sub[:1].upper() + sub[1:]
        verbs = subresource_of(sub).verbs
        if sub in CONNECT_SUBRESOURCES:
            text = {"type": "string"}
            methods = {"get": "Get", "create": "Post", "update": "Put", "patch": "Patch", "delete": "Delete"}
            http = {"get": "get", "create": "post", "update": "put", "patch": "patch", "delete": "delete"}
            return {
                http[v]: self.operation(
                    "connect", f"connect{g}{methods[v]}{target}{title}", "connect", gvk,
                    parameters=[query_param(p) for p in _SUB_PARAMS.get(sub, ())],
                    responses={"200": {"description": "OK", "content": {"*/*": {"schema": text}}}},
                )
                for v in verbs
            }  # fmt: skip
        if sub == "log":
            text_response = {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}
            return {
                "get": self.operation(
                    "read log of", f"read{name}Log", "get", gvk,
                    parameters=[query_param(p) for p in _SUB_PARAMS["log"]], responses=text_response,
                )
            }  # fmt: skip
        model = None if gvk == (t.group, t.version, t.kind) else model_for(*gvk)
        schema = ref(self.schemas.add_kind(model, *gvk) if model else self._kind_schema(t))
        ops: dict[str, Any] = {}
        if "get" in verbs:
            ops["get"] = self.operation(
                f"read {sub} of", f"read{name}{title}", "get", gvk, responses=self.responses(t, schema, "200")
            )
        if "create" in verbs:
            ops["post"] = self.operation(
                f"create {sub} of", f"create{name}{title}", "post", gvk, parameters=write,
                requestBody=self.body(schema), responses=self.responses(t, schema, "200", "201", "202"),
            )  # fmt: skip
        if "update" in verbs:
            ops["put"] = self.operation(
                f"replace {sub} of", f"replace{name}{title}", "put", gvk, parameters=write,
                requestBody=self.body(schema), responses=self.responses(t, schema, "200", "201"),
            )  # fmt: skip
        if "patch" in verbs:
            ops["patch"] = self.operation(
                f"partially update {sub} of", f"patch{name}{title}", "patch", gvk,
                parameters=[*write, query_param("force")], requestBody=patch_body,
                responses=self.responses(t, schema, "200", "201"),
            )  # fmt: skip
        return ops
