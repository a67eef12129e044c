"""The API server's wire format: Status bodies, JSON responses, and reading request bodies (JSON, YAML,
kubectl's protobuf) and the Accept header's Table request.

Request bodies are read with kube-apiserver's cap (`MaxRequestBodyBytes`, 3 MiB): a larger body is
refused with 413 after reading at most the cap, so a 100 MB upload never sits in memory.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from aiohttp import web

from meshbook.sandbox.apiserver.verbs import bad_request
from meshbook.sandbox.http.protobuf import decode as protobuf
from meshbook.sandbox.storage.store import StoreError


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure" if code >= 400 else "Success",
        "message": message,
    }
    if reason:  # StatusReasonUnknown is "" and omitted, as for errors that are not API errors
        body["reason"] = reason
    body["code"] = code
    if details:
        body["details"] = details
    return body


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(), status=status, content_type="application/json"
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


async def read_body(request: web.Request) -> Any:
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
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"the body of the request was in an unknown format: {exc}") from None
