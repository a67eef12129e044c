"""Admission: the defaulting, validation and mutation a real API server applies before storing.

Defaults and validations are tables keyed by kind, so what the sandbox adds to a Pod or a Service is
read in one place. Mutators (Istio's injector, the Bank-Vaults webhook) plug in as an ordered list,
called the way the API server calls mutating webhooks: after defaulting, before validation.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from meshbook.sandbox.apiserver.size_limits import check_data_size
from meshbook.sandbox.apiserver.validation.errors import ERROR_TYPES, FieldError, GoText, invalid_status
from meshbook.sandbox.apiserver.validation.immutable import immutable_errors
from meshbook.sandbox.apiserver.validation.metadata import object_meta_errors
from meshbook.sandbox.apiserver.validation.names import dns1123_subdomain
from meshbook.sandbox.storage.resources import ResourceType
from meshbook.sandbox.storage.store import Object, StoreError

_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' rand.String alphabet

CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


def invalid(kind: str, name: str, causes: list[tuple[str, str]], group: str = "") -> StoreError:
    """A 422 Invalid Status listing every field problem, as the API server words it."""
    return invalid_status(kind, group, name, [_field_error(f, m) for f, m in causes])


def _field_error(field_path: str, message: str) -> FieldError:
    """A (field, message) pair of the tables below as a FieldError (the message starts with its type)."""
    for type_name, (label, _, shows_value) in ERROR_TYPES.items():
        if message == label or message.startswith(label + ": "):
            rest = message[len(label) + 2 :]
            if shows_value:
                return FieldError(type_name, field_path, GoText(rest.split(": ", 1)[0]), rest.partition(": ")[2])
            return FieldError(type_name, field_path, None, rest)
    return FieldError("Invalid", field_path, GoText(""), message)


def generate_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(length))


# -- defaulting ------------------------------------------------------------------------------------


def _image_pull_policy(image: str) -> str:
    tail = image.rsplit("/", 1)[-1]
    if "@" in tail:
        return "IfNotPresent"
    return "Always" if ":" not in tail or tail.endswith(":latest") else "IfNotPresent"


def default_container(container: dict[str, Any]) -> None:
    container.setdefault("imagePullPolicy", _image_pull_policy(container.get("image", "")))
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for port in container.get("ports", []) or []:
        port.setdefault("protocol", "TCP")


def default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    for key in ("initContainers", "containers"):
        for container in spec.get(key, []) or []:
            default_container(container)


def _default_pod(obj: Object) -> None:
    spec = obj.setdefault("spec", {})
    default_pod_spec(spec)
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec["serviceAccount"] = spec["serviceAccountName"]
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault(
        "tolerations",
        [
            {
                "key": f"node.kubernetes.io/{t}",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }
            for t in ("not-ready", "unreachable")
        ],
    )
    status = obj.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", "BestEffort")


# Status counters the API server always sends (Go int32 without omitempty): the client's models need them.
_ALWAYS_SENT_STATUS: dict[str, tuple[str, ...]] = {
    "ReplicaSet": ("replicas",),
    "StatefulSet": ("replicas", "availableReplicas"),
    "DaemonSet": ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady"),
}


def _default_workload(obj: Object) -> None:
    spec = obj.setdefault("spec", {})
    kind = obj.get("kind")
    if kind != "DaemonSet":
        spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    if kind == "Deployment":
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault(
            "strategy",
            {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        )
    elif kind == "StatefulSet":
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
    elif kind == "DaemonSet":
        spec.setdefault(
            "updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
        )
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {})
    default_pod_spec(template.setdefault("spec", {}))
    status = obj.setdefault("status", {})
    for key in _ALWAYS_SENT_STATUS.get(str(kind), ()):
        status.setdefault(key, 0)


def _default_service(obj: Object) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports", []) or []:
        port.setdefault("protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):  # protobuf bodies carry the zero IntOrString
            port["targetPort"] = port.get("port")
    obj.setdefault("status", {"loadBalancer": {}})


def _default_namespace(obj: Object) -> None:
    name = obj["metadata"]["name"]
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")


def _default_secret(obj: Object) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None) or {}
    data = obj.setdefault("data", {}) if string_data else obj.get("data")
    for key, value in string_data.items():
        assert data is not None
        data[key] = base64.b64encode(str(value).encode()).decode()


def _default_pvc(obj: Object) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("volumeMode", "Filesystem")
    spec.setdefault("storageClassName", "standard")
    obj.setdefault("status", {}).setdefault("phase", "Pending")


def _default_crd(obj: Object) -> None:
    finalizers = obj["metadata"].setdefault("finalizers", [])
    if CRD_CLEANUP_FINALIZER not in finalizers and not obj["metadata"].get("deletionTimestamp"):
        finalizers.append(CRD_CLEANUP_FINALIZER)
    names = obj.get("spec", {}).get("names", {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    obj["status"] = {
        "acceptedNames": dict(names),
        "storedVersions": [v["name"] for v in obj.get("spec", {}).get("versions", []) if v.get("storage")],
        "conditions": [
            {
                "type": t,
                "status": "True",
                "reason": r,
                "message": m,
                "lastTransitionTime": obj["metadata"].get("creationTimestamp"),
            }
            for t, r, m in (
                ("NamesAccepted", "NoConflicts", "no conflicts found"),
                ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            )
        ],
    }


DEFAULTS: dict[str, Callable[[Object], None]] = {
    "Pod": _default_pod,
    "Deployment": _default_workload,
    "ReplicaSet": _default_workload,
    "StatefulSet": _default_workload,
    "DaemonSet": _default_workload,
    "Service": _default_service,
    "Namespace": _default_namespace,
    "Secret": _default_secret,
    "PersistentVolumeClaim": _default_pvc,
    "CustomResourceDefinition": _default_crd,
}


# -- validation ------------------------------------------------------------------------------------


def _validate_containers(spec: dict[str, Any], prefix: str) -> list[tuple[str, str]]:
    causes: list[tuple[str, str]] = []
    if not spec.get("containers"):
        causes.append((f"{prefix}.containers", "Required value"))
    seen: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(key, []) or []):
            name = container.get("name", "")
            if not name:
                causes.append((f"{prefix}.{key}[{i}].name", "Required value"))
            elif name in seen:
                causes.append((f"{prefix}.{key}[{i}].name", f'Duplicate value: "{name}"'))
            seen.add(name)
            if not container.get("image"):
                causes.append((f"{prefix}.{key}[{i}].image", "Required value"))
    return causes


def _validate_pod(obj: Object) -> list[tuple[str, str]]:
    return _validate_containers(obj.get("spec", {}), "spec")


def _validate_workload(obj: Object) -> list[tuple[str, str]]:
    spec = obj.get("spec", {})
    causes = _validate_containers(spec.get("template", {}).get("spec", {}), "spec.template.spec")
    selector = spec.get("selector")
    labels = spec.get("template", {}).get("metadata", {}).get("labels") or {}
    if not selector:
        causes.append(("spec.selector", "Required value"))
    else:
        from meshbook.sandbox.apiserver.selectors import label_selector_from_dict

        if not label_selector_from_dict(selector).matches(labels):
            causes.append(
                (
                    "spec.template.metadata.labels",
                    f"Invalid value: {_go_map(labels)}: `selector` does not match template `labels`",
                )
            )
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 0:
        causes.append(("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0"))
    return causes


def _go_map(labels: dict[str, Any]) -> str:
    return "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items())) + "}"


def _validate_service(obj: Object) -> list[tuple[str, str]]:
    causes = []
    for i, port in enumerate(obj.get("spec", {}).get("ports", []) or []):
        if not isinstance(port.get("port"), int) or not 0 < port["port"] < 65536:
            causes.append((f"spec.ports[{i}].port", f"Invalid value: {port.get('port')}: must be between 1 and 65535"))
    spec = obj.get("spec", {})
    service_type = spec.get("type", "ClusterIP")
    if service_type not in _SERVICE_TYPES:
        supported = ", ".join(f'"{t}"' for t in _SERVICE_TYPES)
        causes.append(("spec.type", f'Unsupported value: "{service_type}": supported values: {supported}'))
    if service_type == "ExternalName":
        cname = str(spec.get("externalName") or "").removesuffix(".")
        if not cname:
            causes.append(("spec.externalName", "Required value"))
        causes += [("spec.externalName", f'Invalid value: "{cname}": {m}') for m in dns1123_subdomain(cname) if cname]
    elif not spec.get("ports") and spec.get("clusterIP") != "None":
        causes.append(("spec.ports", "Required value"))
    cluster_ip = spec.get("clusterIP")
    if cluster_ip not in (None, "", "None"):
        try:
            ipaddress.ip_address(cluster_ip)
        except ValueError:
            causes.append(("spec.clusterIP", f'Invalid value: "{cluster_ip}": must be a valid IP address'))
    return causes


_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")

VALIDATIONS: dict[str, Callable[[Object], list[tuple[str, str]]]] = {
    "Pod": _validate_pod,
    "Deployment": _validate_workload,
    "ReplicaSet": _validate_workload,
    "StatefulSet": _validate_workload,
    "DaemonSet": _validate_workload,
    "Service": _validate_service,
}


# -- the chain -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdmissionRequest:
    operation: str  # CREATE, UPDATE
    rt: ResourceType
    object: Object
    old_object: Object | None
    namespace: str
    dry_run: bool


class Mutator(Protocol):
    """A mutating admission step (a webhook stand-in); returns the object to continue with."""

    def __call__(self, request: AdmissionRequest) -> Awaitable[Object]: ...


@dataclass
class AdmissionChain:
    mutators: list[Mutator] = field(default_factory=list)
    # Per-kind tables; kinds defined in other modules (apiserver/admission_apis.py) are merged in.
    defaults: Mapping[str, Callable[[Object], None]] = field(default_factory=lambda: DEFAULTS)
    validations: Mapping[str, Callable[[Object], list[tuple[str, str]]]] = field(default_factory=lambda: VALIDATIONS)
    kubernetes_minor: int = 33  # the served version's minor (ApiCore sets it): some messages are worded per version

    async def admit(self, request: AdmissionRequest) -> Object:
        obj = request.object
        defaulter = None if request.rt.custom else self.defaults.get(request.rt.kind)
        if defaulter is not None:  # defaults apply on every write, as decoding does on a real server
            defaulter(obj)
        for mutator in self.mutators:
            obj = await mutator(
                AdmissionRequest(
                    request.operation, request.rt, obj, request.old_object, request.namespace, request.dry_run
                )
            )
        rt = request.rt
        errors = object_meta_errors(rt.kind, obj["metadata"], name_rule_kind="" if rt.custom else None)
        validate = self.validations.get(rt.kind) if not rt.custom else None
        if validate is not None:
            errors += [_field_error(f, m) for f, m in validate(obj)]
        if request.old_object is not None and not rt.custom:
            errors += immutable_errors(rt.kind, request.old_object, obj)
        if errors:
            raise invalid_status(rt.kind, rt.group, obj["metadata"].get("name", ""), errors)
        if not rt.custom:
            check_data_size(rt.kind, obj, self.kubernetes_minor)
        return obj
