"""Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks the API server for.

kubectl prints whatever columns the server sends, so the sandbox must send those of a real API server:
the built-in printers' columns (`table_columns.COLUMNS`), a CRD's `additionalPrinterColumns` evaluated
as the CRD table convertor does (simple JSONPath, typed cells, dates as ages), and `NAME AGE` for custom
resources without printer columns and for kinds the sandbox has no printer for. Like a real server,
every column is always computed; kubectl hides priority-1 columns unless asked for `-o wide`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from meshbook.podstatus import dig, parse_time
from meshbook.sandbox.http.tables.cells import Cell, Obj, age, human_duration
from meshbook.sandbox.http.tables.columns import COLUMNS, NAME, Column, columns_of

__all__ = ["COLUMNS", "Column", "find_results", "go_text", "human_duration", "to_table"]

INCLUDE_OBJECT = ("", "None", "Metadata", "Object")
_DEFAULT_PRINTER_COLUMNS = ({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},)
_POD_ROW_CONDITIONS = {
    phase: [{"type": "Completed", "status": "True", "reason": phase, "message": message}]
    for phase, message in (
        ("Succeeded", "The pod has completed successfully."),
        ("Failed", "The pod failed."),
    )
}


def to_table(
    kind: str,
    objects: Sequence[Obj],
    *,
    now: datetime,
    printer_columns: Sequence[Mapping[str, Any]] | None = None,
    include_object: str = "Metadata",
    minor: int = 33,
) -> dict[str, Any]:
    """The Table of `objects` of `kind`, as `?includeObject=` asks (None, Metadata or Object).

    `printer_columns` (a CRD version's `additionalPrinterColumns`, possibly empty) marks a custom
    resource; otherwise `kind` selects the built-in columns (as a 1.`minor` server prints them).
    `metadata.resourceVersion` (and `continue`)
    are the caller's to set; rows reference the objects' dicts rather than copying them. Raises
    ValueError for an `include_object` the API does not accept (the server answers 400 to that).
    """
    if include_object not in INCLUDE_OBJECT:
        supported = '"None", "Metadata", "Object"'
        raise ValueError(f'includeObject: Unsupported value: "{include_object}": supported values: {supported}')
    if printer_columns is not None:
        columns = custom_columns(printer_columns)
    else:
        columns = columns_of(kind, minor) or custom_columns(())
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [column.value(obj, now) for column in columns]}
        conditions = _POD_ROW_CONDITIONS.get(dig(obj, "status", "phase")) if kind == "Pod" else None
        if conditions and printer_columns is None:
            row["conditions"] = conditions
        row["object"] = _row_object(obj, include_object or "Metadata")
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": [column.definition() for column in columns],
        "rows": rows,
    }


def _row_object(obj: Obj, include_object: str) -> Obj | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        # managedFields are the bulk of a row and kubectl never reads them from a Table
        "metadata": {k: v for k, v in obj.get("metadata", {}).items() if k != "managedFields"},
    }


def custom_columns(printer_columns: Sequence[Mapping[str, Any]]) -> tuple[Column, ...]:
    """Name, then a CRD's printer columns (or `Age` when it has none), as the CRD convertor builds them."""
    columns = [NAME]
    for spec in printer_columns or _DEFAULT_PRINTER_COLUMNS:
        path = str(spec.get("jsonPath") or spec.get("JSONPath") or "")
        kind = str(spec.get("type") or "string")
        description = spec.get("description") or f"Custom resource definition column (in JSONPath format): {path}"
        value = partial(_custom_cell, path, kind)
        columns.append(
            Column(
                str(spec.get("name", "")),
                kind,
                description,
                value,
                int(spec.get("priority") or 0),
                str(spec.get("format") or ""),
            )
        )
    return tuple(columns)


def _custom_cell(path: str, kind: str, obj: Obj, now: datetime) -> Cell:
    """`cellForJSONValue`: the first JSONPath result, typed as the column says, else null."""
    results = find_results(path, obj)
    if not results or results[0] is None:
        return None
    value = results[0]
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return go_text(value)
    if kind == "integer" and number and math.isfinite(value):
        return int(value)
    if kind == "number" and number:
        return float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, str):
        if not value:
            return "<unknown>"
        return "<invalid>" if parse_time(value) is None else age(value, now)
    return None


def go_text(value: Any) -> str | None:
    """A JSON value as Go's jsonpath prints it: scalars with `fmt`, objects and lists as compact JSON."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, dict | list):
        text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return str(value)


def _go_float(value: float) -> str:
    """Go's `%v` for float64: shortest digits, in exponent form below 1e-4 and from 1e6 up."""
    if math.isnan(value) or math.isinf(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if value == 0:
        return "0"
    exact = Decimal(repr(abs(value))).normalize()
    digits = "".join(map(str, exact.as_tuple().digits))
    point = len(digits) + int(exact.as_tuple().exponent)
    sign = "-" if value < 0 else ""
    if point - 1 < -4 or point - 1 >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'+' if point >= 1 else '-'}{abs(point - 1):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


_SEGMENT = re.compile(r"""\.\.|\.((?:\\.|[^.\[\\])+)|\[\s*(?:(-?\d+)|\*|'([^']*)'|"([^"]*)"|\?\((.*?)\))\s*\]""")
_FILTER = re.compile(r"""@((?:\.[^\s=!<>]+)*)\s*(?:(==|!=|<=|>=|<|>)\s*('[^']*'|"[^"]*"|[^\s)]+))?\s*""")


def find_results(path: str, data: Any) -> list[Any]:
    """Evaluate the JSONPath subset of printer columns (`.a.b`, `[0]`, `[*]`, `['k']`, `[?(@.x=="y")]`).

    Missing keys give no result, as with `AllowMissingKeys(true)`; unsupported syntax gives none either.
    """
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    nodes, pos = [data], 0
    while pos < len(text):
        match = _SEGMENT.match(text, pos)
        if match is None or match.group() == "..":
            return []
        pos = match.end()
        name, index, single, double, condition = match.groups()
        key = name.replace("\\.", ".") if name else single if single is not None else double
        if key == "*" or match.group().replace(" ", "") == "[*]":
            nodes = [v for n in nodes for v in _children(n)]
        elif key is not None:
            nodes = [n[key] for n in nodes if isinstance(n, dict) and key in n]
        elif index is not None:
            nodes = [n[int(index)] for n in nodes if isinstance(n, list) and -len(n) <= int(index) < len(n)]
        else:
            nodes = [item for n in nodes if isinstance(n, list) for item in n if _matches(condition, item)]
    return nodes


def _matches(condition: str, item: Any) -> bool:
    match = _FILTER.fullmatch(condition)
    if match is None:
        return False
    relative, op, literal = match.groups()
    found = find_results(relative or "", item) if relative else [item]
    if op is None:
        return bool(found)
    if not found:
        return False
    want: Any = literal[1:-1] if literal[0] in "'\"" else json.loads(literal) if _is_json(literal) else literal
    have = found[0]
    if _kind(have) != _kind(want):
        return op == "!="
    if op in ("==", "!="):
        return bool(have == want) == (op == "==")
    if _kind(have) not in ("number", "string"):
        return False
    return bool({"<": have < want, ">": have > want, "<=": have <= want, ">=": have >= want}[op])


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else "other"


def _children(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return list(node.values())
    return list(node) if isinstance(node, list) else []


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
