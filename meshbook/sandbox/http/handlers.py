"""HTTP handlers for resource paths: dispatch by verb, lists, Tables, watches and subresources.

The verbs themselves live in `apiserver.verbs.ApiCore`, paths in `paths`, the wire format in `wire`;
this module only translates between HTTP (paths, query
parameters, Accept and Content-Type headers, chunked watch streams) and those calls.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from aiohttp import web

from meshbook.sandbox.apiserver.authorization import reviews
from meshbook.sandbox.apiserver.selectors import SelectorError, parse_field_selector, parse_label_selector
from meshbook.sandbox.apiserver.serviceaccounts import TokenService
from meshbook.sandbox.apiserver.validation.fields import parse_directive, request_warnings
from meshbook.sandbox.apiserver.verbs import PATCH_TYPES, RETURNS_DELETED_OBJECT, ApiCore, DeleteOptions, bad_request
from meshbook.sandbox.clock import current as current_clock
from meshbook.sandbox.http import metadata_only
from meshbook.sandbox.http.access import request_user
from meshbook.sandbox.http.paths import Target, resolve
from meshbook.sandbox.http.query import query_bool, query_int, warning_header
from meshbook.sandbox.http.served_time import served_body
from meshbook.sandbox.http.tables import render as tables
from meshbook.sandbox.http.wire import error_response, json_response, read_body, status_body, wants_table
from meshbook.sandbox.node.kubelet import Kubelet
from meshbook.sandbox.storage.resources import ResourceType
from meshbook.sandbox.storage.store import Object, StoreError, Watcher, WatchEvent

#: Where a request collects the warnings its response carries as `Warning` headers.
#: Kinds whose dependents are orphaned when a delete names no propagationPolicy (batch/v1 Jobs and v1
#: ReplicationControllers, kept for compatibility), with the warning the API server then sends ("" none).
ORPHAN_BY_DEFAULT: dict[tuple[str, str], str] = {
    ("batch", "Job"): "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background "
    "to remove them or set propagationPolicy=Orphan to suppress this warning",
    ("", "ReplicationController"): "",
}


class ResourceHandlers:
    def __init__(self, core: ApiCore, pods: Kubelet, tokens: TokenService) -> None:
        self.core = core
        self.pods = pods  # the kubelet stand-in: logs and port-forwarding
        self.tokens = tokens

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Every answer is an object or a Status: a value the server cannot decode is a 400, never a 500."""
        warnings: list[str] = []
        request_warnings.set(warnings)
        response: web.StreamResponse
        try:
            target = resolve(self.core, request.path)
            response = await self._dispatch(request, target)
        except StoreError as exc:
            response = error_response(exc)
        except SelectorError as exc:
            response = error_response(bad_request(str(exc)))
        except web.HTTPException:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            response = error_response(bad_request(f"the request could not be decoded: {exc}"))
        except Exception as exc:
            response = error_response(
                StoreError("InternalError", 500, f"Internal error occurred: {exc}", {"causes": [{"message": str(exc)}]})
            )
        if not response.prepared:
            for text in warnings:
                response.headers.add("Warning", warning_header(text))
        return response

    async def _dispatch(self, request: web.Request, t: Target) -> web.StreamResponse:
        method = request.method
        q = request.query
        if t.rt.namespaced and t.namespace is None and t.name is not None:
            raise StoreError("NotFound", 404, "the server could not find the requested resource")
        ns = t.namespace or ""
        if t.subresource in ("log", "portforward", "exec", "attach", "token", "scale"):
            return await self._subresource(request, t)
        if t.name is None:
            if method == "GET":
                if query_bool(q, "watch"):
                    return await self._watch(request, t)
                return self._list(request, t)
            if method == "POST":
                return await self._create(request, t)
            if method == "DELETE":
                return await self._delete_collection(request, t)
            raise StoreError("MethodNotAllowed", 405, f"{method} is not supported on {t.rt.plural}")
        dry_run = q.get("dryRun") == "All"
        if method == "GET":
            obj = self.core.store.require(t.rt, ns, t.name)
            if partial := metadata_only.requested(request.headers.get("Accept", ""), "get", t.rt):
                return json_response(metadata_only.partial_object(obj, partial[1]))
            if wants_table(request):
                return json_response(self._table(request, t.rt, [obj]))
            return json_response(obj)
        if method == "PUT":
            directive = parse_directive(q.get("fieldValidation"), "update")
            body = await read_body(request, t.rt.kind, directive)
            if not isinstance(body, dict):
                raise bad_request("the body of the request must be an object")
            return json_response(
                await self.core.update(
                    t.rt,
                    ns,
                    t.name,
                    body,
                    subresource=t.subresource,
                    dry_run=dry_run,
                    field_manager=_field_manager(request),
                    field_validation=directive,
                )
            )
        if method == "PATCH":
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            patch_type = PATCH_TYPES.get(content_type)
            if patch_type is None:
                raise StoreError(
                    "UnsupportedMediaType",
                    415,
                    "the body of the request was in an unknown format - accepted media types include: "
                    + ", ".join(PATCH_TYPES),
                )
            directive = parse_directive(q.get("fieldValidation"), "patch")
            patch = await read_body(request)
            obj, created = await self.core.patch(
                t.rt,
                ns,
                t.name,
                patch_type,
                patch,
                subresource=t.subresource,
                dry_run=dry_run,
                field_manager=q.get("fieldManager") if patch_type == "apply" else _field_manager(request),
                force=query_bool(q, "force"),
                field_validation=directive,
            )
            return json_response(obj, 201 if created else 200)
        if method == "DELETE":
            options = await self._delete_options(request, t.rt)
            obj, gone = await self.core.delete(t.rt, ns, t.name, options)
            if t.rt.kind in RETURNS_DELETED_OBJECT or t.rt.custom or not gone:
                return json_response(obj)
            details = {"name": t.name, "group": t.rt.group, "kind": t.rt.plural, "uid": obj["metadata"]["uid"]}
            return json_response(status_body(0, "", "", details))
        raise StoreError("MethodNotAllowed", 405, f"{method} is not supported")

    async def _create(self, request: web.Request, t: Target) -> web.Response:
        directive = parse_directive(request.query.get("fieldValidation"), "create")
        body = await read_body(request, t.rt.kind, directive)
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be an object")
        dry_run = request.query.get("dryRun") == "All"
        if t.rt.kind == "TokenReview":
            return json_response(self.tokens.token_review(body), 201)
        if t.rt.kind == "SelfSubjectReview":
            return json_response(reviews.self_subject_review(request_user(request), body), 201)
        if t.rt.group == "authorization.k8s.io":
            return json_response(self._review(request, t, body), 201)
        obj = await self.core.create(
            t.rt,
            t.namespace or "",
            body,
            dry_run=dry_run,
            field_manager=_field_manager(request),
            field_validation=directive,
        )
        return json_response(obj, 201)

    def _review(self, request: web.Request, t: Target, body: Object) -> Object:
        """An access or rules review, answered by the authorizer for the caller (or the user it names)."""
        authorizer = self.core.authorizer
        assert authorizer is not None, "the server sets the authorizer"
        if t.rt.kind == "SelfSubjectAccessReview":
            return reviews.self_subject_access_review(authorizer, request_user(request), body)
        if t.rt.kind == "SelfSubjectRulesReview":
            return reviews.self_subject_rules_review(authorizer, request_user(request), body)
        return reviews.subject_access_review(authorizer, body, t.namespace or "")

    async def _delete_options(self, request: web.Request, rt: ResourceType | None = None) -> DeleteOptions:
        body = await read_body(request) if request.can_read_body else None
        body = body if isinstance(body, dict) else {}
        q = request.query
        grace = body["gracePeriodSeconds"] if "gracePeriodSeconds" in body else query_int(q, "gracePeriodSeconds")
        if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
            raise bad_request(
                f"json: cannot unmarshal {type(grace).__name__} into Go struct field "
                "DeleteOptions.gracePeriodSeconds of type int64"
            )
        pre = body.get("preconditions") or {}
        dry: list[str] = list(body.get("dryRun") or q.getall("dryRun", None) or [])
        policy = body.get("propagationPolicy") or q.get("propagationPolicy")
        orphaning = ORPHAN_BY_DEFAULT.get((rt.group, rt.kind)) if rt is not None and not policy else None
        if orphaning:
            warned = request_warnings.get()
            if warned is not None:
                warned.append(orphaning)
        return DeleteOptions(
            propagation_policy=policy or ("Orphan" if orphaning is not None else "Background"),
            grace_period_seconds=grace,
            dry_run="All" in dry,
            preconditions_uid=pre.get("uid"),
            preconditions_rv=pre.get("resourceVersion"),
        )

    async def _delete_collection(self, request: web.Request, t: Target) -> web.Response:
        options = await self._delete_options(request)
        items = self._select(request, t)
        deleted = []
        for obj in items:
            meta = obj["metadata"]
            try:
                out, _ = await self.core.delete(t.rt, meta.get("namespace", ""), meta["name"], options)
                deleted.append(out)
            except StoreError:
                continue
        return json_response(self._list_body(t.rt, deleted))

    # -- lists and watches ---------------------------------------------------------------------------

    def _select(self, request: web.Request, t: Target) -> list[Object]:
        q = request.query
        items = self.core.store.list(t.rt, t.namespace)
        if q.get("labelSelector"):
            selector = parse_label_selector(q["labelSelector"])
            items = [o for o in items if selector.matches(o["metadata"].get("labels") or {})]
        if q.get("fieldSelector"):
            fields = parse_field_selector(q["fieldSelector"])
            fields.validate_for_kind(t.rt.kind)
            items = [o for o in items if fields.matches(o)]
        return items

    def _list_body(self, rt: ResourceType, items: list[Object], cont: str | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": str(self.core.store.resource_version)}
        if cont:
            meta["continue"] = cont
            meta["remainingItemCount"] = 0
        return {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta, "items": items}

    def _list(self, request: web.Request, t: Target) -> web.Response:
        items = self._select(request, t)
        q = request.query
        start = 0
        if q.get("continue"):
            # The token holds the last returned key, so changes between pages neither repeat nor skip items.
            try:
                after = tuple(json.loads(base64.urlsafe_b64decode(q["continue"]))["after"])
            except (ValueError, KeyError, TypeError):
                raise StoreError("BadRequest", 400, "continue key is not valid") from None
            start = next((i for i, o in enumerate(items) if _list_key(o) > after), len(items))
        limit = query_int(q, "limit") or 0
        cont = None
        page = items[start:]
        if limit > 0 and len(page) > limit:
            page = page[:limit]
            cont = base64.urlsafe_b64encode(json.dumps({"after": list(_list_key(page[-1]))}).encode()).decode()
        if partial := metadata_only.requested(request.headers.get("Accept", ""), "list", t.rt):
            list_meta = self._list_body(t.rt, [], cont)["metadata"]
            if cont:
                list_meta["remainingItemCount"] = len(items) - start - len(page)
            return json_response(metadata_only.partial_list(page, partial[1], list_meta))
        if wants_table(request):
            table = self._table(request, t.rt, page)
            table["metadata"] = {"resourceVersion": str(self.core.store.resource_version)}
            if cont:
                table["metadata"]["continue"] = cont
            return json_response(table)
        body = self._list_body(t.rt, page, cont)
        if cont:
            body["metadata"]["remainingItemCount"] = len(items) - start - len(page)
        return json_response(body)

    def _table(self, request: web.Request, rt: ResourceType, objects: list[Object]) -> dict[str, Any]:
        include = request.query.get("includeObject", "Metadata")
        table = tables.to_table(
            rt.kind if not rt.custom else f"{rt.kind}.{rt.group}",
            objects,
            now=current_clock().now(),  # stored times are the sandbox clock's
            printer_columns=list(rt.printer_columns) if rt.custom else None,
            include_object=include,
            minor=self.core.server_minor,
        )
        table.setdefault("metadata", {})["resourceVersion"] = str(self.core.store.resource_version)
        return table

    async def _watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        q = request.query
        label = parse_label_selector(q["labelSelector"]) if q.get("labelSelector") else None
        fields = parse_field_selector(q["fieldSelector"]) if q.get("fieldSelector") else None
        if fields is not None:
            fields.validate_for_kind(t.rt.kind)

        def matches(obj: Object | None) -> bool:
            if obj is None:
                return False
            meta = obj["metadata"]
            if t.namespace and t.rt.namespaced and meta.get("namespace") != t.namespace:
                return False
            if label is not None and not label.matches(meta.get("labels") or {}):
                return False
            return fields is None or fields.matches(obj)

        def accepts(event: WatchEvent) -> WatchEvent | None:
            now_in, was_in = matches(event.object), matches(event.old)
            if event.type == "MODIFIED" and now_in and not was_in:
                return WatchEvent("ADDED", event.rt_key, event.object, event.old, event.rv)
            if event.type == "MODIFIED" and was_in and not now_in:
                return WatchEvent("DELETED", event.rt_key, event.object, event.old, event.rv)
            if event.type == "DELETED":
                return event if was_in or now_in else None
            return event if now_in else None

        rv_text = q.get("resourceVersion", "")
        since = int(rv_text) if rv_text not in ("", "0") else None
        if rv_text and not rv_text.isdigit():
            raise bad_request(f"invalid resource version: {rv_text}")
        watcher = Watcher(t.rt.storage_key, accepts)
        self.core.store.watch(watcher, since)  # raises 410 before the response starts
        timeout = query_int(q, "timeoutSeconds") or 1800
        bookmarks = query_bool(q, "allowWatchBookmarks")
        as_table = wants_table(request)
        partial = metadata_only.requested(request.headers.get("Accept", ""), "watch", t.rt)
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), timeout=min(remaining, 5.0))
                except TimeoutError:
                    if bookmarks:
                        bookmark = self._bookmark(t.rt)
                        if partial:
                            bookmark = metadata_only.partial_object(bookmark, partial[1])
                        await self._write_event(response, "BOOKMARK", bookmark)
                    continue
                if event is None:
                    break
                obj: Any = event.object
                if partial:
                    obj = metadata_only.partial_object(obj, partial[1])
                elif as_table:
                    obj = self._table(request, t.rt, [obj])
                await self._write_event(response, event.type, obj)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.core.store.stop_watch(watcher)
        return response

    def _bookmark(self, rt: ResourceType) -> dict[str, Any]:
        return {
            "kind": rt.kind,
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(self.core.store.resource_version)},
        }

    async def _write_event(self, response: web.StreamResponse, kind: str, obj: Any) -> None:
        line = json.dumps({"type": kind, "object": served_body(obj)}, separators=(",", ":")) + "\n"
        await response.write(line.encode())

    # -- subresources ----------------------------------------------------------------------------------

    async def _subresource(self, request: web.Request, t: Target) -> web.StreamResponse:
        assert t.name is not None and t.subresource is not None
        ns = t.namespace or ""
        if t.subresource == "scale":
            return await self._scale(request, t)
        if t.subresource == "token":
            body = await read_body(request)
            self.core.store.require(t.rt, ns, t.name)
            return json_response(self.tokens.token_request(ns, t.name, body or {}), 201)
        pod = self.core.store.require(t.rt, ns, t.name)
        if t.subresource == "log":
            return await self.pods.serve_log(request, pod)
        if t.subresource in ("exec", "attach"):
            return await self.pods.serve_remotecommand(request, pod, t.subresource)
        return await self.pods.serve_portforward(request, pod)

    async def _scale(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        ns = t.namespace or ""
        obj = self.core.store.require(t.rt, ns, t.name)
        if request.method in ("PUT", "PATCH"):
            body = await read_body(request)
            if request.method == "PATCH":
                content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
                patch_type = PATCH_TYPES.get(content_type, "merge")
                from meshbook.sandbox.apiserver.patch import dispatch as patching

                current = _scale_of(obj)
                if patch_type == "json":
                    body = patching.apply_json_patch(current, body)
                else:
                    body = patching.apply_merge_patch(current, body)
            replicas = (body or {}).get("spec", {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise StoreError(
                    "Invalid",
                    422,
                    f'Scale.autoscaling "{t.name}" is invalid: spec.replicas: Invalid value: {replicas}: '
                    "must be greater than or equal to 0",
                )
            updated = dict(obj)
            updated["spec"] = {**obj["spec"], "replicas": replicas}
            obj = await self.core.update(t.rt, ns, t.name, updated, dry_run=request.query.get("dryRun") == "All")
        return json_response(_scale_of(obj))


def _field_manager(request: web.Request) -> str:
    """The writer's name: `fieldManager`, else the user agent's program name, as the API server does."""
    given = request.query.get("fieldManager")
    if given:
        return given
    agent = request.headers.get("User-Agent", "unknown").split("/")[0]
    return agent or "unknown"


def _list_key(obj: Object) -> tuple[str, str]:
    return (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


def _scale_of(obj: Object) -> dict[str, Any]:
    selector = obj.get("spec", {}).get("selector", {}) or {}
    if obj.get("kind") != "ReplicationController":  # its selector is a plain label map
        selector = selector.get("matchLabels") or {}
    parts = [f"{k}={v}" for k, v in sorted(selector.items())]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: obj["metadata"][k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in obj["metadata"]
        },
        "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
        "status": {"replicas": obj.get("status", {}).get("replicas", 0), "selector": ",".join(parts)},
    }
