"""A structural OpenAPI v3 schema walker: prune unknown fields, check types, enums, formats and required fields.

One walk serves both kinds of objects. For a custom resource the schema is its CRD's openAPIV3Schema
and problems are 422 field errors worded like kube-openapi (`spec.size in body must be of type
integer: "string"`). For a built-in kind the schema comes from the client models (`builtin.py`) and a
wrong JSON type is a decode error worded like Go's encoding/json (`json: cannot unmarshal array into Go
struct field ObjectMeta.metadata.labels of type map[string]string`). Either way unknown fields are
removed and their paths reported, for fieldValidation to refuse, warn about or ignore.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from meshbook.sandbox.apiserver.validation.builtin import model_schema
from meshbook.sandbox.apiserver.validation.errors import FieldError, not_supported

EMBEDDED_FIELDS = ("apiVersion", "kind", "metadata")


def _parses(parse: Callable[[str], object]) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            parse(value)
        except ValueError:
            return False
        return True

    return check


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")

#: The string formats a CRD schema's `format` is checked against (a subset of kube-openapi's registry;
#: other formats pass unchecked).
STRING_FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": lambda v: bool(_DATE_TIME.match(v)),
    "date": lambda v: bool(_DATE.match(v)),
    "byte": _parses(lambda v: base64.b64decode(v, validate=True)),
    "uuid": lambda v: bool(_UUID.match(v)),
    "ipv4": _parses(ipaddress.IPv4Address),
    "ipv6": _parses(ipaddress.IPv6Address),
    "cidr": _parses(lambda v: ipaddress.ip_network(v, strict=False)),
}
_SCHEMA_TYPES = {"string", "integer", "number", "boolean", "object", "array"}


def openapi_type(value: Any) -> str:
    """The OpenAPI type name of a JSON value, as validation errors name what they got."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _go_json_type(value: Any) -> str:
    """How Go's UnmarshalTypeError names the JSON value it could not store."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return f"number {value}" if isinstance(value, float) else "number"
    return {"string": "string", "array": "array", "object": "object"}.get(openapi_type(value), "null")


def _matches(value: Any, schema_type: str, *, builtin: bool) -> bool:
    if schema_type == "integer":
        if builtin:
            return isinstance(value, int) and not isinstance(value, bool)
        return openapi_type(value) == "integer"
    if schema_type == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if schema_type == "boolean":
        return isinstance(value, bool)
    if schema_type == "string":
        return isinstance(value, str)
    if schema_type == "object":
        return isinstance(value, dict)
    if schema_type == "array":
        return isinstance(value, list)
    return True


@dataclass
class SchemaWalk:
    """What one walk found: unknown (pruned) field paths, field errors, the first decode error."""

    builtin: bool
    unknown: list[str] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)
    decode_error: str | None = None

    def walk(self, value: Any, schema: dict[str, Any], path: str = "", go_path: str = "", owner: str = "") -> Any:
        """`value` with unknown fields removed (a new container where it changed)."""
        if "$model" in schema:
            schema = {**model_schema(schema["$model"]), "x-go-type": schema.get("x-go-type", "")}
        if value is None:
            return None
        if schema.get("x-kubernetes-int-or-string"):
            if not (isinstance(value, str) or openapi_type(value) == "integer"):
                self._type_error(value, "integer,string", schema, path, go_path, owner)
            return value
        schema_type = schema.get("type")
        if schema_type in _SCHEMA_TYPES and not _matches(value, schema_type, builtin=self.builtin):
            self._type_error(value, schema_type, schema, path, go_path, owner)
            return value
        if not self.builtin:
            self._check_value(value, schema, path)
        if isinstance(value, dict):
            return self._object(value, schema, path, go_path, owner)
        if isinstance(value, list) and isinstance(schema.get("items"), dict):
            items = schema["items"]
            return [self.walk(v, items, f"{path}[{i}]", go_path, owner) for i, v in enumerate(value)]
        return value

    def _object(
        self, value: dict[str, Any], schema: dict[str, Any], path: str, go_path: str, owner: str
    ) -> dict[str, Any]:
        properties: dict[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        struct = schema.get("x-go-name", owner)
        out: dict[str, Any] = {}
        for key, item in value.items():
            child_path = f"{path}.{key}" if path else key
            if key in properties:
                child = properties[key]
                if item is None and not self.builtin and not child.get("nullable"):
                    continue  # null of a non-nullable field is pruned, as the CRD handler does
                out[key] = self.walk(item, child, child_path, f"{go_path}.{key}" if go_path else key, struct)
            elif isinstance(additional, dict):
                out[key] = self.walk(item, additional, f"{path}[{key}]", go_path, struct)
            elif additional is True or preserve or (embedded and key in EMBEDDED_FIELDS):
                out[key] = item
            else:
                self.unknown.append(child_path)
        if not self.builtin:
            for name in schema.get("required") or []:
                if name not in value or (value[name] is None and not properties.get(name, {}).get("nullable")):
                    self.errors.append(FieldError("Required", f"{path}.{name}" if path else name))
        return out

    def _check_value(self, value: Any, schema: dict[str, Any], path: str) -> None:
        enum = schema.get("enum")
        if enum is not None and value not in enum:
            self.errors.append(not_supported(path, value, list(enum)))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                self.errors.append(
                    FieldError(
                        "Invalid", path, value, f"{path} in body should be greater than or equal to {schema['minimum']}"
                    )
                )
            if "maximum" in schema and value > schema["maximum"]:
                self.errors.append(
                    FieldError(
                        "Invalid", path, value, f"{path} in body should be less than or equal to {schema['maximum']}"
                    )
                )
        format_check = STRING_FORMATS.get(str(schema.get("format", "")))
        if isinstance(value, str) and format_check is not None and not format_check(value):
            self.errors.append(
                FieldError("Invalid", path, value, f'{path} in body must be of type {schema["format"]}: "{value}"')
            )
        if isinstance(value, str) and "maxLength" in schema and len(value) > schema["maxLength"]:
            self.errors.append(FieldError("TooLong", path, None, f"may not be more than {schema['maxLength']} bytes"))

    def _type_error(
        self, value: Any, expected: str, schema: dict[str, Any], path: str, go_path: str, owner: str
    ) -> None:
        if self.builtin:
            if self.decode_error is None:
                self.decode_error = (
                    f"json: cannot unmarshal {_go_json_type(value)} into Go struct field {owner}.{go_path} "
                    f"of type {schema.get('x-go-type', 'interface {}')}"
                )
            return
        got = openapi_type(value)
        self.errors.append(FieldError("Invalid", path, got, f'{path} in body must be of type {expected}: "{got}"'))
