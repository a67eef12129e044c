"""Defaulting and validation of the kinds served beside admission's own tables: batch/v1 Jobs, v1
ReplicationControllers, networking.k8s.io/v1 Ingresses and IngressClasses.

Tables like admission's own (`DEFAULTS`, `VALIDATIONS`), merged into the admission chain by `ApiCore`.
A Job's selector and pod labels are generated here from its uid, which is assigned here too: the API
server fills the uid before the Job strategy generates the selector, and the store keeps it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from meshbook.sandbox.apiserver.admission import DEFAULTS, VALIDATIONS, _validate_containers, default_pod_spec
from meshbook.sandbox.storage.store import Object

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"


def _default_job(obj: Object) -> None:
    """SetDefaults_Job plus the Job strategy's generated selector: pods are matched by the Job's uid."""
    meta = obj["metadata"]
    spec = obj.setdefault("spec", {})
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    default_pod_spec(template.setdefault("spec", {}))
    if not spec.get("manualSelector"):
        spec.setdefault("manualSelector", False)
        # The uid exists before the store assigns it, as the API server fills it before validation.
        uid = meta.setdefault("uid", str(uuid.uuid4()))
        name = meta.get("name", "")
        for key, value in {JOB_NAME_LABEL: name, "job-name": name, JOB_UID_LABEL: uid, "controller-uid": uid}.items():
            labels.setdefault(key, value)
        selector = spec.setdefault("selector", {})
        selector.setdefault("matchLabels", {}).setdefault(JOB_UID_LABEL, labels[JOB_UID_LABEL])
    if labels and not meta.get("labels"):
        meta["labels"] = dict(labels)
    obj.setdefault("status", {})


def _default_replication_controller(obj: Object) -> None:
    """SetDefaults_ReplicationController: the selector and labels default to the template's labels."""
    spec = obj.setdefault("spec", {})
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).get("labels") or {}
    if labels:
        spec["selector"] = spec.get("selector") or dict(labels)
        if not obj["metadata"].get("labels"):
            obj["metadata"]["labels"] = dict(labels)
    spec.setdefault("replicas", 1)
    default_pod_spec(template.setdefault("spec", {}))
    obj.setdefault("status", {}).setdefault("replicas", 0)


def _default_ingress(obj: Object) -> None:
    obj.setdefault("spec", {})
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


_JOB_RESTART_POLICIES = ("OnFailure", "Never")
_JOB_COUNTS = ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds")
_SELECTOR_MISMATCH = "`selector` does not match template `labels`"


def _validate_job(obj: Object) -> list[tuple[str, str]]:
    spec = obj.get("spec", {})
    pod_spec = spec.get("template", {}).get("spec", {})
    causes = _validate_containers(pod_spec, "spec.template.spec")
    policy = pod_spec.get("restartPolicy")
    if policy not in _JOB_RESTART_POLICIES:
        supported = ", ".join(f'"{p}"' for p in _JOB_RESTART_POLICIES)
        message = f'Unsupported value: "{policy}": supported values: {supported}'
        causes.append(("spec.template.spec.restartPolicy", message))
    for key in _JOB_COUNTS:
        value = spec.get(key)
        if value is not None and (not isinstance(value, int) or value < 0):
            causes.append((f"spec.{key}", f"Invalid value: {value}: must be greater than or equal to 0"))
    selector = spec.get("selector")
    labels = spec.get("template", {}).get("metadata", {}).get("labels") or {}
    if not selector:
        causes.append(("spec.selector", "Required value"))
    else:
        from meshbook.sandbox.apiserver.selectors import label_selector_from_dict

        if not label_selector_from_dict(selector).matches(labels):
            causes.append(("spec.template.metadata.labels", f"Invalid value: {labels}: {_SELECTOR_MISMATCH}"))
    return causes


def _validate_replication_controller(obj: Object) -> list[tuple[str, str]]:
    spec = obj.get("spec", {})
    causes = _validate_containers(spec.get("template", {}).get("spec", {}), "spec.template.spec")
    selector = spec.get("selector") or {}
    labels = spec.get("template", {}).get("metadata", {}).get("labels") or {}
    if not selector:
        causes.append(("spec.selector", "Required value"))
    elif any(labels.get(k) != v for k, v in selector.items()):
        causes.append(("spec.template.metadata.labels", f"Invalid value: {labels}: {_SELECTOR_MISMATCH}"))
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 0:
        causes.append(("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0"))
    return causes


_PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")


def _validate_ingress_backend(backend: Any, where: str) -> list[tuple[str, str]]:
    if not isinstance(backend, dict) or not (backend.get("service") or backend.get("resource")):
        return [(where, 'Invalid value: "": resource or service backend is required')]
    service = backend.get("service")
    if service and not (service.get("port") or {}).get("name") and not (service.get("port") or {}).get("number"):
        return [(f"{where}.service.port", 'Invalid value: "": port name or number is required')]
    return []


def _validate_ingress(obj: Object) -> list[tuple[str, str]]:
    """The checks a user meets first (networking validation): backends, path types, a rule or default."""
    spec = obj.get("spec", {})
    causes: list[tuple[str, str]] = []
    if not spec.get("rules") and not spec.get("defaultBackend"):
        causes.append(("spec", 'Invalid value: "": either `defaultBackend` or `rules` must be specified'))
    if spec.get("defaultBackend"):
        causes += _validate_ingress_backend(spec["defaultBackend"], "spec.defaultBackend")
    for i, rule in enumerate(spec.get("rules") or []):
        for j, path in enumerate((rule.get("http") or {}).get("paths") or []):
            where = f"spec.rules[{i}].http.paths[{j}]"
            path_type = path.get("pathType")
            if path_type is None:
                causes.append((f"{where}.pathType", "Required value: pathType must be specified"))
            elif path_type not in _PATH_TYPES:
                supported = ", ".join(f'"{p}"' for p in _PATH_TYPES)
                causes.append((f"{where}.pathType", f'Unsupported value: "{path_type}": supported values: {supported}'))
            causes += _validate_ingress_backend(path.get("backend"), f"{where}.backend")
    return causes


def _validate_ingress_class(obj: Object) -> list[tuple[str, str]]:
    return [] if obj.get("spec", {}).get("controller") else [("spec.controller", "Required value")]


KIND_DEFAULTS: dict[str, Callable[[Object], None]] = {
    **DEFAULTS,
    "Job": _default_job,
    "ReplicationController": _default_replication_controller,
    "Ingress": _default_ingress,
}
KIND_VALIDATIONS: dict[str, Callable[[Object], list[tuple[str, str]]]] = {
    **VALIDATIONS,
    "Job": _validate_job,
    "ReplicationController": _validate_replication_controller,
    "Ingress": _validate_ingress,
    "IngressClass": _validate_ingress_class,
}
