"""ObjectMeta rules every kind shares: name, generateName, labels, annotations (ValidateObjectMeta).

Label keys are qualified names, values at most 63 characters of a restricted alphabet; annotation keys
are qualified names too and all annotations together may hold at most 256 KiB.
"""

from __future__ import annotations

from typing import Any

from meshbook.sandbox.apiserver.validation.errors import FieldError
from meshbook.sandbox.apiserver.validation.names import label_value, name_errors, qualified_name

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024


def label_errors(labels: Any, field: str = "metadata.labels") -> list[FieldError]:
    errors: list[FieldError] = []
    for key, value in (labels or {}).items():
        errors += [FieldError("Invalid", field, key, m) for m in qualified_name(key)]
        if isinstance(value, str):
            errors += [FieldError("Invalid", field, value, m) for m in label_value(value)]
    return errors


def annotation_errors(annotations: Any, field: str = "metadata.annotations") -> list[FieldError]:
    errors: list[FieldError] = []
    total = 0
    for key, value in (annotations or {}).items():
        errors += [FieldError("Invalid", field, key, m) for m in qualified_name(key.lower())]
        total += len(key) + len(value if isinstance(value, str) else "")
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errors.append(FieldError("TooLong", field, None, f"may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"))
    return errors


def object_meta_errors(kind: str, meta: dict[str, Any], *, name_rule_kind: str | None = None) -> list[FieldError]:
    """Everything ValidateObjectMeta refuses in `meta` of a `kind` object."""
    name = meta.get("name") or ""
    errors = [FieldError("Invalid", "metadata.name", name, m) for m in name_errors(name_rule_kind or kind, name)]
    return errors + label_errors(meta.get("labels")) + annotation_errors(meta.get("annotations"))
