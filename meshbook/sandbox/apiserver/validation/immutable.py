"""Fields an update may not change, per kind, as the registries' ValidateXUpdate functions refuse them.

`IMMUTABLE` is the table: kind -> checks of (old, new) objects. Pods and StatefulSets allow a short
list of mutable fields and forbid the rest of their spec; workload selectors, a Service's clusterIP, a
Secret's type and the data of Secrets and ConfigMaps marked `immutable: true` never change.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from meshbook.sandbox.apiserver.validation.errors import FieldError, GoText

Object = dict[str, Any]
Check = Callable[[Object, Object], list[FieldError]]

IMMUTABLE_DETAIL = "field is immutable"
IMMUTABLE_WHEN_SET = "field is immutable when `immutable` is set"
POD_UPDATE_DETAIL = (
    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)
STATEFULSET_UPDATE_DETAIL = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', "
    "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
)
PVC_UPDATE_DETAIL = (
    "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"
)


def _at(obj: Object, path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def go_label_selector(selector: Any) -> str:
    """A LabelSelector as Go's %#v prints it in `field is immutable` errors."""
    selector = selector if isinstance(selector, dict) else {}
    labels = selector.get("matchLabels")
    labels_text = (
        "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items())) + "}"
        if labels
        else "map[string]string(nil)"
    )
    expressions = selector.get("matchExpressions")
    if expressions:
        parts = []
        for e in expressions:
            values = e.get("values")
            values_text = "[]string{" + ", ".join(f'"{v}"' for v in values) + "}" if values else "[]string(nil)"
            key, operator = e.get("key", ""), e.get("operator", "")
            parts.append(f'v1.LabelSelectorRequirement{{Key:"{key}", Operator:"{operator}", Values:{values_text}}}')
        expressions_text = "[]v1.LabelSelectorRequirement{" + ", ".join(parts) + "}"
    else:
        expressions_text = "[]v1.LabelSelectorRequirement(nil)"
    return f"v1.LabelSelector{{MatchLabels:{labels_text}, MatchExpressions:{expressions_text}}}"


def _selector_unchanged(old: Object, new: Object) -> list[FieldError]:
    before, after = _at(old, "spec.selector"), _at(new, "spec.selector")
    if before == after:
        return []
    return [FieldError("Invalid", "spec.selector", GoText(go_label_selector(after)), IMMUTABLE_DETAIL)]


def _field_unchanged(path: str) -> Check:
    def check(old: Object, new: Object) -> list[FieldError]:
        before, after = _at(old, path), _at(new, path)
        return [] if before == after else [FieldError("Invalid", path, after, IMMUTABLE_DETAIL)]

    return check


def _cluster_ip_unchanged(old: Object, new: Object) -> list[FieldError]:
    before, after = _at(old, "spec.clusterIP"), _at(new, "spec.clusterIP")
    # An update that leaves the address out keeps it (the registry copies the allocated values over).
    if before in (None, "") or after in (None, "") or before == after:
        return []
    return [FieldError("Invalid", "spec.clusterIP", after, IMMUTABLE_DETAIL)]


def _spec_except(mutable: tuple[str, ...], detail: str) -> Check:
    """Forbid any change of `spec` but the top-level `mutable` fields."""

    def check(old: Object, new: Object) -> list[FieldError]:
        before = {k: v for k, v in (old.get("spec") or {}).items() if k not in mutable}
        after = {k: v for k, v in (new.get("spec") or {}).items() if k not in mutable}
        return [] if before == after else [FieldError("Forbidden", "spec", None, detail)]

    return check


def _pod_spec_unchanged(old: Object, new: Object) -> list[FieldError]:
    """ValidatePodUpdate: images, activeDeadlineSeconds, added tolerations and grace period may change."""

    def comparable(given: Any) -> dict[str, Any]:
        spec: dict[str, Any] = copy.deepcopy(given) if isinstance(given, dict) else {}
        for key in ("containers", "initContainers"):
            for container in spec.get(key) or []:
                if isinstance(container, dict):
                    container.pop("image", None)
        for key in ("activeDeadlineSeconds", "terminationGracePeriodSeconds", "tolerations", "schedulingGates"):
            spec.pop(key, None)
        return spec

    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    old_tolerations = old_spec.get("tolerations") or []
    new_tolerations = new_spec.get("tolerations") or []
    removed = any(t not in new_tolerations for t in old_tolerations)
    if comparable(old_spec) != comparable(new_spec) or removed:
        return [FieldError("Forbidden", "spec", None, POD_UPDATE_DETAIL)]
    return []


def _data_unchanged_when_immutable(fields: tuple[str, ...]) -> Check:
    def check(old: Object, new: Object) -> list[FieldError]:
        if old.get("immutable") is not True:
            return []
        errors = []
        if new.get("immutable") is not True:
            errors.append(FieldError("Forbidden", "immutable", None, IMMUTABLE_WHEN_SET))
        errors += [
            FieldError("Forbidden", f, None, IMMUTABLE_WHEN_SET)
            for f in fields
            if (old.get(f) or {}) != (new.get(f) or {})
        ]
        return errors

    return check


def _secret_type_unchanged(old: Object, new: Object) -> list[FieldError]:
    before, after = old.get("type"), new.get("type")
    return [] if before == after else [FieldError("Invalid", "type", after, IMMUTABLE_DETAIL)]


IMMUTABLE: dict[str, tuple[Check, ...]] = {
    "Pod": (_pod_spec_unchanged,),
    "Deployment": (_selector_unchanged,),
    "ReplicaSet": (_selector_unchanged,),
    "DaemonSet": (_selector_unchanged,),
    "StatefulSet": (
        _spec_except(
            (
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ),
            STATEFULSET_UPDATE_DETAIL,
        ),
    ),
    "Service": (_cluster_ip_unchanged,),
    "Secret": (_data_unchanged_when_immutable(("data",)), _secret_type_unchanged),
    "ConfigMap": (_data_unchanged_when_immutable(("data", "binaryData")),),
    "PersistentVolumeClaim": (
        _spec_except(("resources", "volumeAttributesClassName", "volumeName"), PVC_UPDATE_DETAIL),
    ),
    "ControllerRevision": (_field_unchanged("data"),),
}


def immutable_errors(kind: str, old: Object, new: Object) -> list[FieldError]:
    """What an update from `old` to `new` changes that `kind` does not allow to change."""
    return [e for check in IMMUTABLE.get(kind, ()) for e in check(old, new)]
