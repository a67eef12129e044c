"""The resource types the sandbox serves, as data: one `ResourceType` per group/version/plural.

Discovery, OpenAPI, routing, Tables and the controllers all read this table; CustomResourceDefinitions
add rows at run time (`ResourceRegistry.sync_crds`), so a custom resource is served like a built-in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)
CREATE_ONLY: tuple[str, ...] = ("create",)
READ_ONLY: tuple[str, ...] = ("get", "list", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One served resource: what discovery lists and what routes, storage and tables key on."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    printer_columns: tuple[Mapping[str, Any], ...] = field(default=(), compare=False)
    schema: Mapping[str, Any] | None = field(default=None, compare=False)
    custom: bool = False

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def stored(self) -> bool:
        """Virtual resources (reviews, token requests) are answered, never stored."""
        return "get" in self.verbs

    @property
    def storage_key(self) -> str:
        """Objects are stored per group and plural, whatever version they were written in."""
        return f"{self.group}/{self.plural}"

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


def _core(kind: str, plural: str, namespaced: bool = True, **kw: Any) -> ResourceType:
    return ResourceType("", "v1", kind, plural, namespaced, **kw)


_ALL = ("all",)

BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _core("Namespace", "namespaces", False, short_names=("ns",), subresources=("status", "finalize")),
    _core("Node", "nodes", False, short_names=("no",), subresources=("status",)),
    _core("Pod", "pods", short_names=("po",), categories=_ALL, subresources=("status", "log", "portforward")),
    _core("Service", "services", short_names=("svc",), categories=_ALL, subresources=("status",)),
    _core("Endpoints", "endpoints", short_names=("ep",)),
    _core("ServiceAccount", "serviceaccounts", short_names=("sa",), subresources=("token",)),
    _core("Secret", "secrets"),
    _core("ConfigMap", "configmaps", short_names=("cm",)),
    _core("Event", "events", short_names=("ev",)),
    _core("PersistentVolumeClaim", "persistentvolumeclaims", short_names=("pvc",), subresources=("status",)),
    ResourceType(
        "apps", "v1", "Deployment", "deployments", True, ("deploy",), _ALL, ("status", "scale")
    ),
    ResourceType("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), _ALL, ("status", "scale")),
    ResourceType("apps", "v1", "StatefulSet", "statefulsets", True, ("sts",), _ALL, ("status", "scale")),
    ResourceType("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), _ALL, ("status",)),
    ResourceType("apps", "v1", "ControllerRevision", "controllerrevisions", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    ResourceType(
        "admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations", False,
    ),
    ResourceType(
        "admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations", False,
    ),
    ResourceType(
        "apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False,
        short_names=("crd", "crds"), subresources=("status",),
    ),
    ResourceType("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", False, verbs=CREATE_ONLY),
    ResourceType(
        "authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", False, verbs=CREATE_ONLY,
    ),
    ResourceType(
        "authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False,
        verbs=CREATE_ONLY,
    ),
    ResourceType(
        "authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", False,
        verbs=CREATE_ONLY,
    ),
    ResourceType(
        "authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", False, verbs=CREATE_ONLY,
    ),
    ResourceType(
        "authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", True,
        verbs=CREATE_ONLY,
    ),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases", True),
)  # fmt: skip


class ResourceRegistry:
    """Lookup of served types by path segments, kind or short name; CRDs add and remove rows."""

    def __init__(self, builtin: Iterable[ResourceType] = BUILTIN_TYPES) -> None:
        self._builtin = tuple(builtin)
        self._custom: tuple[ResourceType, ...] = ()
        self._index: dict[tuple[str, str, str], ResourceType] = {}
        self._reindex()

    def _reindex(self) -> None:
        self._index = {(t.group, t.version, t.plural): t for t in self.types()}

    def types(self) -> Iterator[ResourceType]:
        yield from self._builtin
        yield from self._custom

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._index.get((group, version, plural))

    def by_kind(self, kind: str, api_version: str | None = None) -> ResourceType | None:
        for t in self.types():
            if t.kind == kind and (api_version is None or t.api_version == api_version):
                return t
        return None

    def group_versions(self) -> dict[str, list[str]]:
        """Group name -> served versions, preferred first, core group as ''."""
        out: dict[str, list[str]] = {}
        for t in self.types():
            versions = out.setdefault(t.group, [])
            if t.version not in versions:
                versions.append(t.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self.types() if t.group == group and t.version == version]

    def sync_crds(self, crds: Iterable[Mapping[str, Any]]) -> bool:
        """Serve the custom resources of established CRDs; returns True when the served set changed."""
        custom: list[ResourceType] = []
        for crd in crds:
            if crd.get("metadata", {}).get("deletionTimestamp"):
                continue
            custom.extend(custom_types_of(crd))
        new = tuple(custom)
        if [_signature(t) for t in new] == [_signature(t) for t in self._custom]:
            return False
        self._custom = new
        self._reindex()
        return True


def _signature(t: ResourceType) -> tuple[Any, ...]:
    """Everything served about a type, schema and columns included (they are not part of ==)."""
    return (t, repr(t.printer_columns), repr(t.schema))


def custom_types_of(crd: Mapping[str, Any]) -> list[ResourceType]:
    """The ResourceTypes a CustomResourceDefinition serves (one per served version)."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    out = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        subresources = tuple(sorted((version.get("subresources") or {}).keys()))
        out.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                kind=names["kind"],
                plural=names["plural"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames", ())),
                categories=tuple(names.get("categories", ())),
                subresources=subresources,
                printer_columns=tuple(version.get("additionalPrinterColumns", ())),
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                custom=True,
            )
        )
    return out
