"""Field errors and the 422 Invalid Status they make, worded as k8s.io/apimachinery/pkg/util/validation/field.

A field error renders as `<field>: <Type>: <value>: <detail>`; the Status message names the kind
qualified by its group (`Deployment.apps "web" is invalid: ...`), one error plain, several as `[a, b]`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from meshbook.sandbox.storage.store import StoreError

#: Error type -> (how it reads, the cause's reason, whether the value is shown).
ERROR_TYPES: dict[str, tuple[str, str, bool]] = {
    "Invalid": ("Invalid value", "FieldValueInvalid", True),
    "Required": ("Required value", "FieldValueRequired", False),
    "NotSupported": ("Unsupported value", "FieldValueNotSupported", True),
    "Duplicate": ("Duplicate value", "FieldValueDuplicate", True),
    "Forbidden": ("Forbidden", "FieldValueForbidden", False),
    "TooLong": ("Too long", "FieldValueTooLong", False),
    "TooMany": ("Too many", "FieldValueTooMany", False),
}


class GoText(str):
    """A value already in Go's notation (a struct printed with %#v): shown bare, not quoted."""


def go_value(value: Any) -> str:
    """A value as Go's %v/%q shows it in field errors: strings quoted, numbers and booleans bare."""
    if isinstance(value, GoText):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class FieldError:
    type: str  # a key of ERROR_TYPES
    field: str
    value: Any = None
    detail: str = ""

    @property
    def body(self) -> str:
        label, _, shows_value = ERROR_TYPES[self.type]
        text = f"{label}: {go_value(self.value)}" if shows_value else label
        return f"{text}: {self.detail}" if self.detail else text

    def __str__(self) -> str:
        return f"{self.field}: {self.body}" if self.field else self.body

    def cause(self) -> dict[str, str]:
        return {"reason": ERROR_TYPES[self.type][1], "message": self.body, "field": self.field}


def not_supported(field: str, value: Any, supported: list[Any]) -> FieldError:
    return FieldError("NotSupported", field, value, "supported values: " + ", ".join(go_value(v) for v in supported))


def qualified_kind(kind: str, group: str) -> str:
    return f"{kind}.{group}" if group else kind


def invalid_status(kind: str, group: str, name: str, errors: list[FieldError]) -> StoreError:
    """The 422 Invalid Status for `errors` (errors.NewInvalid)."""
    text = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(str(e) for e in errors) + "]"
    details: dict[str, Any] = {"name": name, "group": group, "kind": kind, "causes": [e.cause() for e in errors]}
    return StoreError("Invalid", 422, f'{qualified_kind(kind, group)} "{name}" is invalid: {text}', details)
