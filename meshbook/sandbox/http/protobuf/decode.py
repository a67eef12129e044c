"""Decode the protobuf request bodies of kubectl >= 1.32 into the JSON form of the object.

kubectl 1.32+ sends `kubectl create namespace|serviceaccount|secret|configmap|deployment|token` as
`application/vnd.kubernetes.protobuf` and does not retry with JSON after a 415, so the sandbox must read
them. It accepts JSON responses (`Accept: application/vnd.kubernetes.protobuf,application/json`), so
decoding is all that is needed: no encoder.

The body is the magic `k8s\\x00` followed by a `runtime.Unknown` envelope whose `raw` field holds the
object's message. One generic decoder walks the wire format guided by the tables in
`protobuf_schema`; the result equals the JSON body an older kubectl sends for the same command (Go
encoding/json rules: omitempty, pointers, `null` for zero times). Unknown fields are skipped.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from meshbook.sandbox.http.protobuf.schema import KINDS, MESSAGES, Schema

__all__ = ["MAGIC", "MEDIA_TYPE", "ProtobufError", "UnsupportedKindError", "decode_object", "is_protobuf"]

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"

_VARINT_TYPES = frozenset({"bool", "int32", "int64"})
_SCALAR_TYPES = _VARINT_TYPES | {"string", "bytes", "raw"}
_GO_ZERO_TIME = -62135596800  # time.Time{}.Unix(): Go encodes it as JSON null


class ProtobufError(ValueError):
    """The body is not a well-formed Kubernetes protobuf object; the message says where and why."""


class UnsupportedKindError(ProtobufError):
    """Well-formed, but of a kind this decoder has no schema for (the server should answer 415)."""


def is_protobuf(content_type: str) -> bool:
    """Whether a Content-Type header names the Kubernetes protobuf media type (parameters ignored)."""
    return content_type.split(";", 1)[0].strip().lower() == MEDIA_TYPE


def decode_object(body: bytes) -> dict[str, Any]:
    """Decode a `k8s\\x00`-prefixed protobuf body into the object's JSON form (apiVersion and kind first)."""
    if not body.startswith(MAGIC):
        raise ProtobufError(f"body does not start with the Kubernetes protobuf magic {MAGIC!r}: got {body[:4]!r}")
    envelope = _decode(body, len(MAGIC), len(body), "Unknown", "Unknown")
    api_version: str = envelope["typeMeta"].get("apiVersion", "")
    kind: str = envelope["typeMeta"].get("kind", "")
    if not api_version or not kind:
        raise ProtobufError(f"Unknown.typeMeta must name apiVersion and kind, got {envelope['typeMeta']!r}")
    if envelope.get("contentEncoding"):
        raise ProtobufError(f"Unknown.contentEncoding {envelope['contentEncoding']!r} is not supported")
    if envelope.get("contentType") not in (None, MEDIA_TYPE):
        raise ProtobufError(f"Unknown.contentType {envelope['contentType']!r} is not {MEDIA_TYPE}")
    message = KINDS.get((api_version, kind))
    if message is None:
        supported = ", ".join(f"{k} ({v})" for v, k in sorted(KINDS))
        raise UnsupportedKindError(f"no protobuf schema for {kind} ({api_version}); supported: {supported}")
    start, end = envelope.get("raw", (len(body), len(body)))
    return {"apiVersion": api_version, "kind": kind, **_decode(body, start, end, message, kind)}


@dataclass(frozen=True, slots=True)
class _Field:
    """One compiled schema entry: where the field sits on the wire and how Go renders it in JSON."""

    number: int
    name: str
    base: str
    shape: Literal["one", "list", "map"]
    pointer: bool
    keep_empty: bool

    @property
    def wire_type(self) -> int:
        """Wire type a field of this shape and base must use (kubectl never packs repeated scalars)."""
        return 0 if self.shape == "one" and self.base in _VARINT_TYPES else 2


def _compile(schema: Schema) -> dict[str, dict[int, _Field]]:
    """Parse the type strings once, failing at import on a typo rather than on a request."""
    compiled: dict[str, dict[int, _Field]] = {}
    for message, fields in schema.items():
        compiled[message] = {}
        for number, (name, spec) in fields.items():
            keep_empty = spec.endswith("!")
            spec = spec.removesuffix("!")
            shape: Literal["one", "list", "map"] = "one"
            if spec.startswith("[]"):
                shape, spec = "list", spec[2:]
            elif spec.startswith("map[string]"):
                shape, spec = "map", spec[len("map[string]") :]
            pointer = spec.startswith("*")
            base = spec.removeprefix("*")
            if base not in _SCALAR_TYPES and base not in schema:
                raise ValueError(f"protobuf schema {message}.{name}: unknown type {base!r}")
            compiled[message][number] = _Field(number, name, base, shape, pointer, keep_empty)
    return compiled


_SCHEMA = _compile(MESSAGES)


def _time(value: dict[str, Any]) -> str | None:
    """metav1.Time: empty message means the zero time (JSON null); nanos are dropped, as upstream does."""
    if not value or value.get("seconds", 0) == _GO_ZERO_TIME:
        return None
    try:
        moment = datetime.fromtimestamp(value.get("seconds", 0), UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ProtobufError(f"Time seconds {value.get('seconds')} is out of range: {exc}") from None
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}Z"


def _int_or_string(value: dict[str, Any]) -> int | str:
    """intstr.IntOrString: type 1 is a string, anything else the int."""
    return str(value.get("strVal", "")) if value.get("type") == 1 else int(value.get("intVal", 0))


_CONVERTERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "Time": _time,
    "Quantity": lambda value: value.get("string", "0"),
    "IntOrString": _int_or_string,
}


class _Item(NamedTuple):
    """One field occurrence: the varint value, or the payload bounds of a length-delimited field."""

    number: int
    wire_type: int
    offset: int
    value: int
    end: int


def _varint(buf: bytes, pos: int, end: int, path: str) -> tuple[int, int]:
    """Read a base-128 varint of at most 64 bits; returns (value, next position)."""
    start, result, shift = pos, 0, 0
    while True:
        if pos >= end:
            raise ProtobufError(f"{path}: truncated varint at byte {start}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift >= 70:
            raise ProtobufError(f"{path}: varint at byte {start} is longer than 10 bytes")
    if result >> 64:
        raise ProtobufError(f"{path}: varint at byte {start} overflows 64 bits")
    return result, pos


def _scan(buf: bytes, pos: int, end: int, path: str) -> Iterator[_Item]:
    """Split a message into field occurrences, checking every length against the enclosing bounds."""
    while pos < end:
        offset = pos
        key, pos = _varint(buf, pos, end, path)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ProtobufError(f"{path}: invalid field number 0 at byte {offset}")
        if wire_type == 0:
            value, pos = _varint(buf, pos, end, path)
            yield _Item(number, 0, offset, value, 0)
        elif wire_type == 2:
            length, pos = _varint(buf, pos, end, path)
            if length > end - pos:
                raise ProtobufError(
                    f"{path}: field {number} at byte {offset} declares {length} bytes, only {end - pos} remain"
                )
            yield _Item(number, 2, offset, pos, pos + length)
            pos += length
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            if size > end - pos:
                raise ProtobufError(f"{path}: truncated fixed{size * 8} field {number} at byte {offset}")
            pos += size
            yield _Item(number, wire_type, offset, 0, 0)
        else:
            raise ProtobufError(f"{path}: field {number} at byte {offset} has unsupported wire type {wire_type}")


def _scalar(base: str, buf: bytes, item: _Item, path: str) -> Any:
    """Convert one occurrence of a scalar or message field to its JSON value."""
    if base == "string":
        return buf[item.value : item.end].decode("utf-8", errors="replace")  # as Go's encoding/json does
    if base == "bytes":
        return base64.b64encode(buf[item.value : item.end]).decode("ascii")
    if base == "raw":
        return (item.value, item.end)  # bounds, so errors inside it report offsets into the whole body
    if base == "bool":
        return item.value != 0
    if base == "int32":
        low = item.value & 0xFFFFFFFF
        return low - (1 << 32) if low >> 31 else low
    if base == "int64":
        return item.value - (1 << 64) if item.value >> 63 else item.value
    decoded = _decode(buf, item.value, item.end, base, path)
    convert = _CONVERTERS.get(base)
    return convert(decoded) if convert else decoded


def _zero(field: _Field, path: str) -> Any:
    """The JSON Go writes for a field that is absent on the wire but never omitted."""
    if field.shape != "one" or field.pointer:
        return None
    if field.base in _SCALAR_TYPES:
        return {"string": "", "bytes": "", "bool": False}.get(field.base, 0)
    return _scalar(field.base, b"", _Item(field.number, 2, 0, 0, 0), path)


def _map_entry(field: _Field, buf: bytes, item: _Item, path: str) -> tuple[str, Any]:
    """Decode one map entry message (key = 1, value = 2); a missing part takes its zero value."""
    value_field = _Field(2, "value", field.base, "one", False, True)
    key, value = "", _zero(value_field, path)
    for part in _scan(buf, item.value, item.end, path):
        expected = 2 if part.number == 1 else value_field.wire_type
        if part.number in (1, 2) and part.wire_type != expected:
            raise ProtobufError(
                f"{path}: map entry field {part.number} at byte {part.offset} has wire type "
                f"{part.wire_type}, expected {expected}"
            )
        if part.number == 1:
            key = _scalar("string", buf, part, path)
        elif part.number == 2:
            value = _scalar(field.base, buf, part, path)
    return key, value


def _decode(buf: bytes, start: int, end: int, message: str, path: str) -> dict[str, Any]:
    """Decode buf[start:end] as `message` into a JSON-form dict, in schema order, Go's omitempty rules."""
    fields = _SCHEMA[message]
    seen: dict[int, list[_Item]] = {}
    for item in _scan(buf, start, end, path):
        field = fields.get(item.number)
        if field is None:
            continue  # unknown field: skipped, like a newer server's field on an older client
        if item.wire_type != field.wire_type:
            raise ProtobufError(
                f"{path}.{field.name}: field {item.number} at byte {item.offset} has wire type "
                f"{item.wire_type}, expected {field.wire_type}"
            )
        seen.setdefault(item.number, []).append(item)
    out: dict[str, Any] = {}
    for field in fields.values():
        sub = f"{path}.{field.name}"
        items = seen.get(field.number, [])
        if field.shape == "list":
            values = [_scalar(field.base, buf, it, f"{sub}[{i}]") for i, it in enumerate(items)]
            if values or field.keep_empty:
                out[field.name] = values or None
        elif field.shape == "map":
            entries = dict(_map_entry(field, buf, it, f"{sub}[{i}]") for i, it in enumerate(items))
            if entries or field.keep_empty:
                out[field.name] = entries or None
        elif items:
            value = _scalar(field.base, buf, items[-1], sub)  # proto2: the last occurrence wins
            if not field.name:
                out.update(value)  # an embedded (inline) struct
            elif field.pointer or field.keep_empty or field.base not in _SCALAR_TYPES or value:
                out[field.name] = value
        elif field.name and (field.keep_empty or (field.base not in _SCALAR_TYPES and not field.pointer)):
            out[field.name] = _zero(field, sub)
    return out
