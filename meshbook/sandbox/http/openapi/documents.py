"""The `/openapi/v3` root and per group-version documents, computed from the `ResourceRegistry`.

kubectl reads these to decide how to talk to the server: `apply`/`create`/`replace` look up the PATCH
operation carrying the object's `x-kubernetes-group-version-kind` and send `fieldValidation=Strict`
(skipping client-side schema checks) when it declares that parameter; `apply`/`diff` compute a
strategic merge patch from the schemas when that operation accepts
`application/strategic-merge-patch+json` (built-ins only; custom resources get JSON merge patches);
`explain` renders the schemas. Documents are addressed by a content hash and answered with ETags the
way the real server does, so kubectl's disk cache revalidates instead of refetching.

`/openapi/v2` is served as a minimal document (no definitions): kubectl 1.27 and 1.28 refuse to
`apply`/`create` with validation on when it is missing (their Validator loads it first), yet with
server-side field validation advertised in v3 they never consult its definitions, and their apply
patcher falls back silently to compiled-in types for a kind v2 does not describe.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from meshbook.sandbox.http.openapi.paths import JSON, PathBuilder, operation_group, tag
from meshbook.sandbox.http.openapi.schemas import SchemaSet, go_package, ref
from meshbook.sandbox.storage.resources import ResourceRegistry, ResourceType

OPENAPI_VERSION = "3.0.0"
KUBERNETES_VERSION = "v1.33.0"


def gv_path(group: str, version: str) -> str:
    """The root's key for a group-version: api/v1, apis/apps/v1."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_document(registry: ResourceRegistry, group: str, version: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group-version; None when it is not served (answer 404)."""
    types = registry.in_group_version(group, version)
    if not types:
        return None
    builder = PathBuilder(group, version, SchemaSet(go_package(group, version)))
    resources = f"/{gv_path(group, version)}/"
    builder.paths[resources] = {
        "get": {
            "tags": [tag(group, version)],
            "description": "get available resources",
            "operationId": f"get{operation_group(group, version)}APIResources",
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {JSON: {"schema": ref(builder.schemas.name_of("V1APIResourceList"))}},
                },
                "401": {"description": "Unauthorized"},
            },
        }
    }
    for t in types:
        builder.add_resource(t)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": builder.paths,
        "components": {
            "schemas": dict(sorted(builder.schemas.schemas.items())),
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer Token authentication",
                    "name": "authorization",
                    "in": "header",
                }
            },
        },
    }


def serialize(doc: dict[str, Any]) -> bytes:
    """Canonical bytes of a document: the hash (and so the ETag) depends on content only."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def content_hash(data: bytes) -> str:
    """The real server's document hash: upper-case hex SHA-512 of the served bytes."""
    return hashlib.sha512(data).hexdigest().upper()


def server_relative_url(path: str, digest: str) -> str:
    return f"/openapi/v3/{path}?hash={digest}"


@dataclass(frozen=True)
class SerializedDocument:
    """A document's served bytes and their hash (the ETag and the `hash` of its URL)."""

    data: bytes
    digest: str


_CACHE_SIZE = 64
_document_cache: dict[tuple[Any, ...], SerializedDocument] = {}


def _fingerprint(types: list[ResourceType]) -> tuple[Any, ...]:
    """Everything a document depends on; ResourceType equality ignores schema, so add it."""
    return tuple((t, json.dumps(t.schema, sort_keys=True, default=str) if t.custom else None) for t in types)


def serialized_document(registry: ResourceRegistry, group: str, version: str) -> SerializedDocument | None:
    """The document of a group-version as bytes, built once per distinct set of served types.

    kubectl fetches the root (which needs every document's hash) on each command; building the
    documents anew each time would cost tens of milliseconds on the server's event loop.
    """
    types = registry.in_group_version(group, version)
    if not types:
        return None
    key = (group, version, _fingerprint(types))
    cached = _document_cache.get(key)
    if cached is None:
        doc = openapi_v3_document(registry, group, version)
        assert doc is not None
        data = serialize(doc)
        cached = SerializedDocument(data, content_hash(data))
        if len(_document_cache) >= _CACHE_SIZE:
            _document_cache.pop(next(iter(_document_cache)))
        _document_cache[key] = cached
    return cached


def openapi_v3_root(registry: ResourceRegistry) -> dict[str, Any]:
    """`/openapi/v3`: each group-version with a URL whose hash changes whenever its document does."""
    paths = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            doc = serialized_document(registry, group, version)
            if doc is not None:
                path = gv_path(group, version)
                paths[path] = {"serverRelativeURL": server_relative_url(path, doc.digest)}
    return {"paths": dict(sorted(paths.items()))}


#: kubectl asks for the "...spec.v2@v1.0+protobuf" form; the answer must use this one: Go's mime parser
#: rejects the "@", and client-go parses the response Content-Type.
OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def _proto_bytes(field_number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (all this document needs)."""
    assert len(payload) < 128, "single-byte lengths only"
    return bytes([field_number << 3 | 2, len(payload)]) + payload


def openapi_v2_document(protobuf: bool) -> bytes:
    """`/openapi/v2`: swagger 2.0 with info only, as gnostic protobuf (what kubectl asks for) or JSON."""
    if not protobuf:
        body = {"swagger": "2.0", "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION}, "paths": {}}
        return serialize(body)
    info = _proto_bytes(1, b"Kubernetes") + _proto_bytes(2, KUBERNETES_VERSION.encode())
    return _proto_bytes(1, b"2.0") + _proto_bytes(2, info)


@dataclass(frozen=True)
class HttpAnswer:
    """What to send back: status, headers and body bytes (the server copies them as they are)."""

    status: int
    headers: dict[str, str]
    body: bytes = b""


def _accepts_json(accept: str | None) -> bool:
    for part in (accept or "*/*").split(","):
        media = part.split(";")[0].strip().lower()
        if media in (JSON, "application/*", "*/*"):
            return True
    return False


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


def serve_openapi_v3(
    registry: ResourceRegistry,
    path: str,
    *,
    query_hash: str | None = None,
    if_none_match: str | None = None,
    accept: str | None = None,
    now: float | None = None,
) -> HttpAnswer:
    """Answer GET /openapi/v3[/<path>] like kube-openapi's handler3 does.

    path is '' for the root or e.g. 'apis/apps/v1'. ETag on every answer and 304 on a matching
    If-None-Match; a document asked for with a stale `hash` is redirected (301) to the current one, and
    one asked for with the current hash is marked immutable for a year, so kubectl's disk cache keeps it.
    """
    path = path.strip("/")
    if not path:
        data = serialize(openapi_v3_root(registry))
        etag = f'"{content_hash(data)}"'
        headers = {"Content-Type": JSON, "ETag": etag}
        if _etag_matches(if_none_match, etag):
            return HttpAnswer(304, headers)
        return HttpAnswer(200, headers, data)
    parts = path.split("/")
    doc: SerializedDocument | None = None
    if parts[0] == "api" and len(parts) == 2:
        doc = serialized_document(registry, "", parts[1])
    elif parts[0] == "apis" and len(parts) == 3:
        doc = serialized_document(registry, parts[1], parts[2])
    if doc is None:
        return HttpAnswer(404, {"Content-Type": "text/plain"}, b"404 page not found\n")
    if not _accepts_json(accept):
        return HttpAnswer(406, {"Vary": "Accept"})
    data, digest = doc.data, doc.digest
    headers = {"Vary": "Accept", "Content-Type": JSON, "ETag": f'"{digest}"'}
    if query_hash:
        if query_hash != digest:
            return HttpAnswer(301, {"Location": server_relative_url(path, digest)})
        expires = email.utils.formatdate((time.time() if now is None else now) + 365 * 86400, usegmt=True)
        headers |= {"Cache-Control": "public, immutable", "Expires": expires}
    if _etag_matches(if_none_match, headers["ETag"]):
        return HttpAnswer(304, headers)
    return HttpAnswer(200, headers, data)


def serve_openapi_v2(*, accept: str | None = None, if_none_match: str | None = None) -> HttpAnswer:
    """Answer GET /openapi/v2: protobuf when asked for it (kubectl), else JSON; ETag and 304."""
    protobuf = "protobuf" in (accept or "")
    data = openapi_v2_document(protobuf)
    headers = {
        "Content-Type": OPENAPI_V2_PROTOBUF if protobuf else JSON,
        "ETag": f'"{content_hash(data)}"',
        "Vary": "Accept",
    }
    if _etag_matches(if_none_match, headers["ETag"]):
        return HttpAnswer(304, headers)
    return HttpAnswer(200, headers, data)
