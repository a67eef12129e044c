"""Patch strategies of built-in kinds as data, plus the error every patch flavour raises.

Kubernetes declares how a field is patched on its Go types (`patchStrategy`, `patchMergeKey`), and both
strategic merge patch and server-side apply depend on it. Here that knowledge is one table per kind,
assembled from shared pieces (object metadata, pod spec, container) so that a pod template inside a
Deployment, Job or CronJob gets exactly the rules of a Pod. Paths name fields only: a list item adds
nothing, so `("spec", "containers", "env")` is the `env` list of every container.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

FieldPath = tuple[str, ...]


class PatchError(ValueError):
    """A patch cannot be applied; `code` is the HTTP status the API server answers with.

    400 means the patch document itself is malformed (bad operation, bad directive), 422 means it is
    well formed but does not apply to this object (missing path, failed `test`, missing merge key).
    """

    def __init__(self, message: str, *, code: int = 422) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class FieldStrategy:
    """How one field is patched; the default (all false) merges maps and replaces lists whole.

    `merge` merges a list: by `merge_key` for lists of objects, as a set for lists of scalars.
    `retain_keys` is Kubernetes' `retainKeys` (kubectl sends `$retainKeys` for such maps).
    `replace` replaces the value whole, also for maps (the `replace` strategy, or an atomic list).
    """

    merge: bool = False
    merge_key: str | None = None
    retain_keys: bool = False
    replace: bool = False


DEFAULT: Final = FieldStrategy()
SET: Final = FieldStrategy(merge=True)
ATOMIC: Final = FieldStrategy(replace=True)
RETAIN_KEYS: Final = FieldStrategy(retain_keys=True)


def keyed(key: str, *, retain_keys: bool = False) -> FieldStrategy:
    """A list of objects merged item by item, matched on `key`."""
    return FieldStrategy(merge=True, merge_key=key, retain_keys=retain_keys)


Table = Mapping[FieldPath, FieldStrategy]


def _under(prefix: FieldPath, table: Table) -> dict[FieldPath, FieldStrategy]:
    return {prefix + path: strategy for path, strategy in table.items()}


def _join(*tables: Table) -> dict[FieldPath, FieldStrategy]:
    joined: dict[FieldPath, FieldStrategy] = {}
    for table in tables:
        joined.update(table)
    return joined


OBJECT_META: Final[Table] = {
    ("finalizers",): SET,
    ("ownerReferences",): keyed("uid"),
}

CONTAINER: Final[Table] = {
    ("env",): keyed("name"),
    ("ports",): keyed("containerPort"),
    ("volumeMounts",): keyed("mountPath"),
    ("volumeDevices",): keyed("devicePath"),
}

POD_SPEC: Final[Table] = _join(
    {
        ("containers",): keyed("name"),
        ("initContainers",): keyed("name"),
        ("ephemeralContainers",): keyed("name"),
        ("volumes",): keyed("name", retain_keys=True),
        ("imagePullSecrets",): keyed("name"),
        ("hostAliases",): keyed("ip"),
        ("topologySpreadConstraints",): keyed("topologyKey"),
        ("schedulingGates",): keyed("name"),
        ("resourceClaims",): keyed("name", retain_keys=True),
        ("tolerations",): ATOMIC,
    },
    _under(("containers",), CONTAINER),
    _under(("initContainers",), CONTAINER),
    _under(("ephemeralContainers",), CONTAINER),
)

POD_STATUS: Final[Table] = {
    ("conditions",): keyed("type"),
    ("podIPs",): keyed("ip"),
    ("hostIPs",): keyed("ip"),
    ("resourceClaimStatuses",): keyed("name", retain_keys=True),
}

POD_TEMPLATE_SPEC: Final[Table] = _join(_under(("metadata",), OBJECT_META), _under(("spec",), POD_SPEC))

STATUS_CONDITIONS: Final[Table] = {("status", "conditions"): keyed("type")}

WORKLOAD: Final[Table] = _join(_under(("spec", "template"), POD_TEMPLATE_SPEC), STATUS_CONDITIONS)

WEBHOOKS: Final[Table] = {("webhooks",): keyed("name"), ("webhooks", "matchConditions"): keyed("name")}

_SPECIAL: Final[Mapping[str, Table]] = {
    "Pod": _join(_under(("spec",), POD_SPEC), _under(("status",), POD_STATUS)),
    "PodTemplate": _under(("template",), POD_TEMPLATE_SPEC),
    "ReplicationController": WORKLOAD,
    "ReplicaSet": WORKLOAD,
    "StatefulSet": WORKLOAD,
    "DaemonSet": WORKLOAD,
    "Deployment": _join(WORKLOAD, {("spec", "strategy"): RETAIN_KEYS}),
    "Job": WORKLOAD,
    "CronJob": _join(
        _under(("spec", "jobTemplate", "metadata"), OBJECT_META),
        _under(("spec", "jobTemplate", "spec", "template"), POD_TEMPLATE_SPEC),
    ),
    "Service": _join({("spec", "ports"): keyed("port")}, STATUS_CONDITIONS),
    "ServiceAccount": {("secrets",): keyed("name"), ("imagePullSecrets",): keyed("name")},
    "Node": _join(
        {("spec", "podCIDRs"): SET, ("status", "addresses"): keyed("type")},
        STATUS_CONDITIONS,
    ),
    "Namespace": STATUS_CONDITIONS,
    "PersistentVolumeClaim": STATUS_CONDITIONS,
    "HorizontalPodAutoscaler": STATUS_CONDITIONS,
    "PodDisruptionBudget": _join({("spec", "selector"): ATOMIC}, STATUS_CONDITIONS),
    "MutatingWebhookConfiguration": WEBHOOKS,
    "ValidatingWebhookConfiguration": WEBHOOKS,
    "Role": {("rules",): ATOMIC},
    "ClusterRole": {("rules",): ATOMIC},
    "RoleBinding": {("subjects",): ATOMIC},
    "ClusterRoleBinding": {("subjects",): ATOMIC},
}

# Built-in kinds whose only strategic fields are the object metadata ones.
_PLAIN_KINDS: Final = (
    "ConfigMap",
    "Secret",
    "Endpoints",
    "EndpointSlice",
    "Event",
    "LimitRange",
    "ResourceQuota",
    "PersistentVolume",
    "Ingress",
    "IngressClass",
    "NetworkPolicy",
    "Lease",
    "PriorityClass",
    "StorageClass",
    "ControllerRevision",
    "CustomResourceDefinition",
    "APIService",
    "CertificateSigningRequest",
)

KIND_SCHEMAS: Final[Mapping[str, Table]] = {
    kind: _join(_under(("metadata",), OBJECT_META), table)
    for kind, table in [*_SPECIAL.items(), *((kind, {}) for kind in _PLAIN_KINDS)]
}


def is_builtin_kind(kind: str) -> bool:
    """Whether `kind` has a schema here; the real API server rejects strategic merge for the others."""
    return kind in KIND_SCHEMAS


def schema_for(kind: str) -> Table:
    """The strategy table of `kind`; empty (maps merge, lists replace) for kinds not known here."""
    return KIND_SCHEMAS.get(kind, {})


def field_strategy(kind: str, path: FieldPath) -> FieldStrategy:
    """How the field at `path` of a `kind` object is patched."""
    return schema_for(kind).get(path, DEFAULT)


def merge_key_for(kind: str, path: FieldPath) -> str | None:
    """The patch merge key of the list at `path` (e.g. "name" for containers), or None if it has none."""
    return field_strategy(kind, path).merge_key
