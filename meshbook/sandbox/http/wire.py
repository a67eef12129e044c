"""The API server's wire format: Status bodies, JSON responses, and reading request bodies (JSON, YAML,
kubectl's protobuf) and the Accept header's Table request."""

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
        "reason": reason,
        "code": code,
    }
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


async def read_body(request: web.Request) -> Any:
    raw = await request.read()
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
