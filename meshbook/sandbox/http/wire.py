"""The API server's wire format: Status bodies, JSON responses, and reading request bodies (JSON, YAML,
kubectl's protobuf) and the Accept header's Table request.

Status bodies are byte for byte what kube-apiserver's JSON encoder writes: metav1.Status's field order
(details before code), its `omitempty` omissions (no empty `group`, `message` or `reason`) and the
newline json.Encoder ends every document with. Bodies are decoded as kube-apiserver's decoders do:
NaN and Infinity are not JSON, nesting stops at Go's 10000 levels, and YAML aliases are limited the way
go-yaml limits them (sigs.k8s.io/yaml), so an alias bomb is refused rather than expanded.

Request bodies are read with kube-apiserver's cap (`MaxRequestBodyBytes`, 3 MiB): a larger body is
refused with 413 after reading at most the cap, so a 100 MB upload never sits in memory.
"""

from __future__ import annotations

import json
import math
from typing import Any

import yaml
from aiohttp import web

from meshbook.sandbox.apiserver.validation.fields import FieldValidation, warn
from meshbook.sandbox.apiserver.verbs import bad_request
from meshbook.sandbox.http.protobuf import decode as protobuf
from meshbook.sandbox.http.served_time import served_body, stored_body
from meshbook.sandbox.storage.store import StoreError

#: StatusDetails fields in metav1's order; each is omitted when empty.
_DETAIL_FIELDS = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")
#: encoding/json's maxNestingDepth.
MAX_NESTING_DEPTH = 10000
#: Python's own recursion stops deeper documents first; they get Go's answer too.
_GO_DEPTH_ERROR = "exceeded max depth"


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure" if code >= 400 else "Success",
    }
    if message:
        body["message"] = message
    if reason:
        body["reason"] = reason
    shown = {k: details[k] for k in _DETAIL_FIELDS if details and details.get(k)}
    if shown:
        body["details"] = shown
    if code:
        body["code"] = code
    return body


def json_response(body: Any, status: int = 200) -> web.Response:
    """A JSON answer; its objects' times as the client's clock shows them (`served_time.py`)."""
    return web.Response(
        body=json.dumps(served_body(body), separators=(",", ":")).encode() + b"\n",
        status=status,
        content_type="application/json",
    )


def error_response(exc: StoreError) -> web.Response:
    return json_response(status_body(exc.code, exc.reason, exc.message, exc.details), exc.code)


def wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


MAX_REQUEST_BODY_BYTES = 3 * 1024 * 1024  # kube-apiserver's MaxRequestBodyBytes (twice etcd's request limit)
_READ_CHUNK = 64 * 1024


def request_entity_too_large() -> StoreError:
    """kube-apiserver's answer to a body over the cap (`apierrors.NewRequestEntityTooLargeError`)."""
    return StoreError("RequestEntityTooLarge", 413, f"Request entity too large: limit is {MAX_REQUEST_BODY_BYTES}")


async def read_capped(request: web.Request, limit: int = MAX_REQUEST_BODY_BYTES) -> bytes:
    """The request body, read chunk by chunk and refused (413) as soon as it passes `limit`.

    A declared Content-Length over the limit is refused before anything is read; aiohttp then drains
    the rest without keeping it, so memory never holds more than `limit` bytes of one request.
    """
    if request.content_length is not None and request.content_length > limit:
        raise request_entity_too_large()
    body = bytearray()
    async for chunk in request.content.iter_chunked(_READ_CHUNK):
        if len(body) + len(chunk) > limit:
            del body[:]
            raise request_entity_too_large()
        body += chunk
    return bytes(body)


class BodyDecodeError(ValueError):
    """A body the API server's decoders refuse; the message is theirs (Go's json / yaml wording)."""


def _refuse_constant(name: str) -> Any:
    if name.startswith("-"):
        raise BodyDecodeError("invalid character 'I' in numeric literal")
    raise BodyDecodeError(f"invalid character '{name[0]}' looking for beginning of value")


def decode_json(raw: bytes) -> Any:
    """JSON as encoding/json reads it: no NaN or Infinity, at most 10000 levels deep."""
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise BodyDecodeError(_GO_DEPTH_ERROR) from None
    except json.JSONDecodeError as exc:
        raise BodyDecodeError(exc.msg.lower()) from None
    except UnicodeDecodeError:
        raise BodyDecodeError("invalid character looking for beginning of value") from None


def duplicate_fields(raw: bytes) -> list[str]:
    """Paths of the fields a JSON document names twice in one object (the last one wins, as in Go)."""
    found: list[tuple[dict[str, Any], str]] = []

    def remember(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:
                found.append((obj, key))
            obj[key] = value
        return obj

    value = json.loads(raw, object_pairs_hook=remember, parse_constant=_refuse_constant)
    if not found:
        return []
    paths: dict[int, str] = {}
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            paths[id(item)] = path
            stack.extend((v, f"{path}.{k}" if path else k) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(item))
    return [f"{paths[id(obj)]}.{key}" if paths.get(id(obj)) else key for obj, key in found]


def _allowed_alias_ratio(decode_count: int) -> float:
    """go-yaml v2's allowedAliasRatio: 99 % for small documents, falling to 10 % at 4 million nodes."""
    if decode_count <= 400_000:
        return 0.99
    if decode_count >= 4_000_000:
        return 0.10
    return 0.99 - 0.89 * (decode_count - 400_000) / 3_600_000


def _check_aliasing(root: yaml.Node) -> None:
    """Count nodes as go-yaml's decoder visits them (aliases expanded) and stop where it stops."""
    decoded = aliased = 0
    # (node, inside an alias)
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    seen: set[int] = set()
    while stack:
        node, in_alias = stack.pop()
        # A node met again is reached through an alias (PyYAML shares the anchored node).
        in_alias = in_alias or id(node) in seen
        seen.add(id(node))
        decoded += 1
        if in_alias:
            aliased += 1
        if aliased > 100 and decoded > 1000 and aliased / decoded > _allowed_alias_ratio(decoded):
            raise BodyDecodeError("yaml: document contains excessive aliasing")
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, in_alias) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend((child, in_alias) for pair in node.value for child in pair)


class _YAMLToJSONLoader(yaml.SafeLoader):
    """YAML as sigs.k8s.io/yaml converts it to JSON: timestamps stay strings."""


_YAMLToJSONLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _json_keys(value: Any) -> Any:
    """Mapping keys as JSON strings (YAML allows `8080:` or `true:` as keys)."""
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else json.dumps(k)): _json_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_keys(v) for v in value]
    return value


def decode_yaml(raw: bytes) -> Any:
    try:
        root = yaml.compose(raw, Loader=_YAMLToJSONLoader)
        if root is None:
            return None
        _check_aliasing(root)
        value = _json_keys(yaml.load(raw, Loader=_YAMLToJSONLoader))
        _refuse_non_finite(value)  # what YAMLToJSON's json.Marshal fails on (.nan, .inf)
        return value
    except RecursionError:
        raise BodyDecodeError(f"yaml: {_GO_DEPTH_ERROR}") from None
    except yaml.YAMLError as exc:
        raise BodyDecodeError(f"yaml: {exc}".replace("\n", " ")) from None


def _refuse_non_finite(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            text = "NaN" if math.isnan(item) else ("+Inf" if item > 0 else "-Inf")
            raise BodyDecodeError(f"json: unsupported value: {text}")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def summarize(raw: bytes, max_length: int = 30) -> str:
    """apiserver's summarizeData: the start of the body, as text for JSON, hex otherwise."""
    if not raw:
        return "<empty>"
    head = raw[:max_length]
    more = " ..." if len(raw) > max_length else ""
    if raw[:1] == b"{":
        return head.decode(errors="replace") + more
    return head.hex() + more


async def read_body(request: web.Request, kind: str | None = None, directive: FieldValidation | None = None) -> Any:
    """The decoded body, its times on the sandbox clock (`served_time.py`); `kind` (of a create or update)
    words refusals as the create handler does, and `directive` says what duplicate fields of its JSON do
    (refused, warned about, or the last one kept)."""
    return stored_body(await _decoded_body(request, kind, directive))


async def _decoded_body(request: web.Request, kind: str | None, directive: FieldValidation | None) -> Any:
    raw = await read_capped(request)
    content_type = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
    if protobuf.is_protobuf(content_type):
        try:
            return protobuf.decode_object(raw)
        except protobuf.ProtobufError as exc:
            raise StoreError("BadRequest", 400, f"the body of the request could not be decoded: {exc}") from None
    if not raw:
        return None
    try:
        if content_type.endswith("yaml"):
            return decode_yaml(raw)
        body = decode_json(raw)
    except BodyDecodeError as exc:
        if kind is None:
            raise bad_request(f"the body of the request was in an unknown format: {exc}") from None
        detail = (
            f"couldn't get version/kind; json parse error: {exc}" if not content_type.endswith("yaml") else str(exc)
        )
        raise bad_request(
            f"the object provided is unrecognized (must be of type {kind}): {detail} ({summarize(raw)})"
        ) from None
    if kind is not None and directive in (FieldValidation.STRICT, FieldValidation.WARN):
        duplicates = duplicate_fields(raw)
        if duplicates and directive is FieldValidation.STRICT:
            version = str(body.get("apiVersion", "") if isinstance(body, dict) else "").rpartition("/")[2]
            fields = ", ".join(f'duplicate field "{path}"' for path in duplicates)
            raise bad_request(
                f'{kind} in version "{version}" cannot be handled as a {kind}: strict decoding error: {fields}'
            )
        for path in duplicates:
            warn(f'duplicate field "{path}"')
    return body
