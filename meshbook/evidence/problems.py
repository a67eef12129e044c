"""pydantic's validation errors as evidence problems: `observed.ready: expected a value matching ..., got '7'`.

A problem names the field (dotted, `[i]` for list items, as a reader of the JSON line would point at it),
what was expected and what was found (cut to 40 characters). Messages are kept in the words the
hand-written validator used, so refusals read the same whichever side (writer or reader) reports them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic_core import ErrorDetails

from meshbook.evidence.payloads import EVIDENCE_RULE, Kind

__all__ = ["describe_errors", "field_path"]

_KIND_TAGS = frozenset(k.value for k in Kind)
_JSON_TYPES = {
    "string_type": "string",
    "int_type": "integer",
    "int_from_float": "integer",
    "bool_type": "boolean",
    "float_type": "number",
    "list_type": "array",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
    "none_required": "null",
}


def field_path(loc: Sequence[int | str]) -> str:
    """`('pod_state', 'observed', 'containers', 0)` -> `observed.containers[0]` (the kind tag dropped)."""
    parts = list(loc)
    if parts and parts[0] in _KIND_TAGS:  # the discriminated union's branch, not a field
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _join(where: str, sub: str) -> str:
    if not sub:
        return where
    if not where:
        return sub
    return where + (sub if sub.startswith("[") else f".{sub}")


def _shown(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)[:40]
    except (TypeError, ValueError):
        return type(value).__name__


def _one(error: ErrorDetails) -> list[str]:
    kind = error["type"]
    where = field_path(error["loc"])
    value = error.get("input")
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if kind == EVIDENCE_RULE:
        return [f"{_join(where, sub)}: {text}" for sub, text in ctx["problems"]]
    if kind == "union_tag_invalid":
        return [f"kind: expected one of {ctx['expected_tags']}, got {ctx['tag']!r}"]
    if kind == "union_tag_not_found":
        return ["kind: required"]
    prefix = f"{where}: " if where else ""
    if kind == "missing":
        return [f"{prefix}required"]
    if kind == "extra_forbidden":
        return [f"{prefix}unknown field"]
    if kind in ("model_type", "dict_type", "model_attributes_type") and not isinstance(value, dict):
        return [f"{prefix}expected an object, got {type(value).__name__}"]
    if kind in _JSON_TYPES:
        return [f"{prefix}expected {_JSON_TYPES[kind]}, got {_shown(value)}"]
    if kind == "string_too_short":
        return [f"{prefix}must not be empty"]
    if kind == "string_pattern_mismatch":
        return [f"{prefix}expected a value matching {ctx['pattern']}, got {str(value)[:40]!r}"]
    if kind == "greater_than_equal":
        return [f"{prefix}expected at least {ctx['ge']}, got {value}"]
    if kind in ("literal_error", "enum"):
        return [f"{prefix}expected {ctx['expected']}, got {value!r}"]
    return [f"{prefix}{error['msg']}"]


def describe_errors(errors: Iterable[ErrorDetails]) -> list[str]:
    """One line per problem, in the order pydantic found them (fields in schema order)."""
    return [problem for error in errors for problem in _one(error)]
