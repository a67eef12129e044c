"""`components.schemas` of the OpenAPI v3 documents: one schema per served kind and its field types.

Why real field trees for built-ins: kubectl 1.29+ computes `kubectl apply`/`kubectl diff` strategic
merge patches from these schemas (strategicpatch.PatchMetaFromOpenAPIV3). It walks `properties` down
every map or list field that differs and fails with "unable to find api field" where a schema has no
properties, so an open object schema would make every re-apply print a warning and fall back. The
field structure comes from the kubernetes client's generated models (a dependency, same API); the
merge keys and strategies, which those models lack, are the DATA table `PATCH_META` below.
Custom resources use their CRD's openAPIV3Schema, as the real server does.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from meshbook.sandbox.apiserver.validation.builtin import MODEL_PREFIX, go_type
from meshbook.sandbox.apiserver.validation.client_models import models

SCHEMA_REF = "#/components/schemas/"
META_PACKAGE = "io.k8s.apimachinery.pkg.apis.meta.v1"

#: (Go type, JSON field) -> (x-kubernetes-patch-merge-key or None, x-kubernetes-patch-strategy), as the
#: patchMergeKey/patchStrategy tags of the Kubernetes 1.33 API types declare them.
PATCH_META: dict[tuple[str, str], tuple[str | None, str]] = {
    ("ObjectMeta", "ownerReferences"): ("uid", "merge"),
    ("ObjectMeta", "finalizers"): (None, "merge"),
    ("PodSpec", "volumes"): ("name", "merge,retainKeys"),
    ("PodSpec", "initContainers"): ("name", "merge"),
    ("PodSpec", "containers"): ("name", "merge"),
    ("PodSpec", "ephemeralContainers"): ("name", "merge"),
    ("PodSpec", "imagePullSecrets"): ("name", "merge"),
    ("PodSpec", "hostAliases"): ("ip", "merge"),
    ("PodSpec", "topologySpreadConstraints"): ("topologyKey", "merge"),
    ("PodSpec", "schedulingGates"): ("name", "merge"),
    ("PodSpec", "resourceClaims"): ("name", "merge,retainKeys"),
    ("Container", "ports"): ("containerPort", "merge"),
    ("Container", "env"): ("name", "merge"),
    ("Container", "volumeMounts"): ("mountPath", "merge"),
    ("Container", "volumeDevices"): ("devicePath", "merge"),
    ("EphemeralContainer", "ports"): ("containerPort", "merge"),
    ("EphemeralContainer", "env"): ("name", "merge"),
    ("EphemeralContainer", "volumeMounts"): ("mountPath", "merge"),
    ("EphemeralContainer", "volumeDevices"): ("devicePath", "merge"),
    ("PodStatus", "conditions"): ("type", "merge"),
    ("PodStatus", "hostIPs"): ("ip", "merge"),
    ("PodStatus", "podIPs"): ("ip", "merge"),
    ("PodStatus", "resourceClaimStatuses"): ("name", "merge,retainKeys"),
    ("ContainerStatus", "volumeMounts"): ("mountPath", "merge"),
    ("ContainerStatus", "allocatedResourcesStatus"): ("name", "merge"),
    ("PersistentVolumeClaimStatus", "conditions"): ("type", "merge"),
    ("ServiceSpec", "ports"): ("port", "merge"),
    ("ServiceStatus", "conditions"): ("type", "merge"),
    ("ServiceAccount", "secrets"): ("name", "merge"),
    ("NodeSpec", "podCIDRs"): (None, "merge"),
    ("NodeStatus", "conditions"): ("type", "merge"),
    ("NodeStatus", "addresses"): ("type", "merge"),
    ("NamespaceStatus", "conditions"): ("type", "merge"),
    ("DeploymentSpec", "strategy"): (None, "retainKeys"),
    ("DeploymentStatus", "conditions"): ("type", "merge"),
    ("StatefulSetStatus", "conditions"): ("type", "merge"),
    ("DaemonSetStatus", "conditions"): ("type", "merge"),
    ("ReplicaSetStatus", "conditions"): ("type", "merge"),
    ("ReplicationControllerStatus", "conditions"): ("type", "merge"),
    ("JobStatus", "conditions"): ("type", "merge"),
    ("APIServiceStatus", "conditions"): ("type", "merge"),
    ("MutatingWebhookConfiguration", "webhooks"): ("name", "merge"),
    ("ValidatingWebhookConfiguration", "webhooks"): ("name", "merge"),
    ("MutatingWebhook", "matchConditions"): ("name", "merge"),
    ("ValidatingWebhook", "matchConditions"): ("name", "merge"),
}

#: Go types of k8s.io/apimachinery meta/v1 (named under META_PACKAGE like the real documents do).
META_TYPES = frozenset(
    {"ObjectMeta", "ListMeta", "ManagedFieldsEntry", "OwnerReference", "LabelSelector",
     "LabelSelectorRequirement", "Condition", "DeleteOptions", "Preconditions", "Status",
     "StatusDetails", "StatusCause", "APIResource", "APIGroup", "Patch"}
)  # fmt: skip

_PRIMITIVES: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer", "format": "int64"},
    "float": {"type": "number", "format": "double"},
    "bool": {"type": "boolean"},
    "bytes": {"type": "string", "format": "byte"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "object": {},  # IntOrString, RawExtension, JSON: anything goes
}
_LIST = re.compile(r"^(?:List\[(.+)\]|list\[(.+)\])$")
_DICT = re.compile(r"^(?:Dict\[str, (.+)\]|dict\(str, (.+)\))$")


def go_package(group: str, version: str) -> str:
    """Schema name prefix of a group-version, e.g. apps/v1 -> io.k8s.api.apps.v1."""
    if group == "apiextensions.k8s.io":
        return f"io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}"
    if group == "apiregistration.k8s.io":
        return f"io.k8s.kube-aggregator.pkg.apis.apiregistration.{version}"
    if not group:
        return f"io.k8s.api.core.{version}"
    if group.endswith(".k8s.io") or "." not in group:
        return f"io.k8s.api.{group.split('.')[0]}.{version}"
    return ".".join([*reversed(group.split(".")), version])


def ref(name: str) -> dict[str, Any]:
    return {"$ref": SCHEMA_REF + name}


class SchemaSet:
    """Collects the component schemas of one group-version document, naming each type once."""

    def __init__(self, package: str) -> None:
        self.package = package
        self.schemas: dict[str, dict[str, Any]] = {}
        self._names: dict[str, str] = {}  # model class -> component name

    def name_of(self, model_name: str, package: str | None = None) -> str:
        """Component name of a model (added with its whole field tree on first use).

        Only the last dotted part shows (kubectl explain prints it as the field's type); the package is
        the kind's own when known, else a best guess, since the client models do not record it.
        """
        if model_name in self._names:
            return self._names[model_name]
        short = go_type(model_name)
        explicit = MODEL_PREFIX.match(model_name)
        if package:
            pass
        elif short in META_TYPES:
            package = META_PACKAGE
        elif explicit and explicit["group"] and explicit["group"] != "Core":
            package = f"io.k8s.api.{explicit['group'].lower()}.v1"
        else:
            package = self.package
        name = f"{package}.{short}"
        if name in self.schemas:  # two models with one Go name in one document
            name = f"{package}.{model_name}"
        self._names[model_name] = name
        self.schemas[name] = {}  # placeholder first: field trees are recursive
        self.schemas[name] = self._object(model_name)
        return name

    def _object(self, model_name: str) -> dict[str, Any]:
        if model_name == "V1Patch":  # the body of a PATCH request: no client model, any object
            return {"type": "object", "description": "Patch is provided to give a concrete name and type."}
        cls = getattr(models, model_name)
        types: Mapping[str, str] = cls.openapi_types
        json_names: Mapping[str, str] = cls.attribute_map
        owner = go_type(model_name)
        properties = {}
        for attr, type_text in types.items():
            field = json_names[attr]
            prop = self.field_schema(type_text)
            merge_key, strategy = PATCH_META.get((owner, field), (None, None))
            if merge_key:
                prop["x-kubernetes-patch-merge-key"] = merge_key
            if strategy:
                prop["x-kubernetes-patch-strategy"] = strategy
            properties[field] = prop
        return {"type": "object", "properties": dict(sorted(properties.items()))}

    def field_schema(self, type_text: str) -> dict[str, Any]:
        """Schema of one field from the model's type text (List[V1Container], Dict[str, str], ...)."""
        if type_text in _PRIMITIVES:
            return dict(_PRIMITIVES[type_text])
        if m := _LIST.match(type_text):
            return {"type": "array", "items": self.field_schema(m[1] or m[2])}
        if m := _DICT.match(type_text):
            return {"type": "object", "additionalProperties": self.field_schema(m[1] or m[2])}
        # allOf around the $ref, as the real documents do, leaves room for extensions beside it
        return {"allOf": [ref(self.name_of(type_text))], "default": {}}

    def add_kind(self, model_name: str, group: str, version: str, kind: str) -> str:
        """The schema of a kind, tagged with its group-version-kind (how kubectl finds it)."""
        name = self.name_of(model_name, go_package(group, version))
        self.schemas[name]["x-kubernetes-group-version-kind"] = [gvk(group, version, kind)]
        return name

    def add_list(self, item_schema: str, group: str, version: str, kind: str) -> str:
        """A `<Kind>List` schema around the kind's schema."""
        name = f"{self.package}.{kind}List"
        self.schemas[name] = {
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string"},
                "items": {"type": "array", "items": {"allOf": [ref(item_schema)], "default": {}}},
                "kind": {"type": "string"},
                "metadata": {"allOf": [ref(self.name_of("V1ListMeta"))], "default": {}},
            },
            "x-kubernetes-group-version-kind": [gvk(group, version, f"{kind}List")],
        }
        return name

    def add_custom(self, schema: Mapping[str, Any] | None, group: str, version: str, kind: str) -> str:
        """A custom resource's schema: its CRD's openAPIV3Schema plus apiVersion, kind, metadata."""
        body: dict[str, Any] = copy.deepcopy(dict(schema)) if schema else {}
        if not body.get("properties") and not body.get("x-kubernetes-preserve-unknown-fields"):
            body["x-kubernetes-preserve-unknown-fields"] = True
        body.setdefault("type", "object")
        properties = dict(body.get("properties") or {})
        properties.update(
            apiVersion={"type": "string"},
            kind={"type": "string"},
            metadata={"allOf": [ref(self.name_of("V1ObjectMeta"))], "default": {}},
        )
        body["properties"] = properties
        body["x-kubernetes-group-version-kind"] = [gvk(group, version, kind)]
        name = f"{self.package}.{kind}"
        self.schemas[name] = body
        return name


def gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "kind": kind, "version": version}
