"""fieldValidation (Strict / Warn / Ignore) and the decoding of an object against its kind's schema.

kube-apiserver drops unknown fields whatever the directive (they are never stored); the directive only
says what the client hears: Strict refuses the request (400 `strict decoding error: unknown field
"dataa"`), Warn (the default when the parameter is absent) adds a `Warning` header per field, which
kubectl prints, and Ignore says nothing. Server-side apply refuses unknown fields in any case.
Warnings collect in `request_warnings`, a context variable the HTTP handler sets per request.
"""

from __future__ import annotations

from contextvars import ContextVar
from enum import StrEnum
from typing import Any

from meshbook.sandbox.apiserver.validation.builtin import model_for, model_schema
from meshbook.sandbox.apiserver.validation.errors import invalid_status, not_supported
from meshbook.sandbox.apiserver.validation.structural import SchemaWalk
from meshbook.sandbox.storage.resources import ResourceType
from meshbook.sandbox.storage.store import StoreError

Object = dict[str, Any]

request_warnings: ContextVar[list[str] | None] = ContextVar("request_warnings", default=None)


class FieldValidation(StrEnum):
    IGNORE = "Ignore"
    WARN = "Warn"
    STRICT = "Strict"


#: What each write operation's options kind is called in the 422 for a bad directive.
OPTIONS_KIND = {"create": "CreateOptions", "update": "UpdateOptions", "patch": "PatchOptions"}


def parse_directive(value: str | None, operation: str) -> FieldValidation:
    """The `fieldValidation` query value; absent means Warn (the default since Kubernetes 1.27)."""
    if not value:
        return FieldValidation.WARN
    try:
        return FieldValidation(value)
    except ValueError:
        error = not_supported("fieldValidation", value, [d.value for d in FieldValidation])
        raise invalid_status(OPTIONS_KIND.get(operation, "CreateOptions"), "meta.k8s.io", "", [error]) from None


def warn(text: str) -> None:
    """Send `text` as a Warning header with the response (when a request is being served)."""
    warnings = request_warnings.get()
    if warnings is not None and text not in warnings:
        warnings.append(text)


def _schema_of(rt: ResourceType) -> dict[str, Any] | None:
    if rt.custom:
        return dict(rt.schema) if rt.schema else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    model = model_for(rt.group, rt.version, rt.kind)
    return model_schema(model) if model else None


def decode(
    rt: ResourceType, obj: Object, directive: FieldValidation, operation: str, *, tolerated: Object | None = None
) -> Object:
    """`obj` as the API server would store it: unknown fields dropped, types and (CRDs) schema checked.

    `operation` is create, update or patch: it decides the wording of a refusal, as the request
    handlers of kube-apiserver word it differently. Unknown fields `tolerated` already holds (a patch's
    live object, written by an in-process controller) are dropped without a word.
    """
    pruned, meta_walk, walk = _walk(rt, obj)
    decode_error = meta_walk.decode_error or walk.decode_error
    if decode_error:
        raise _decode_failure(rt, obj, decode_error, operation)
    unknown = meta_walk.unknown + walk.unknown
    if unknown and tolerated is not None:
        _, live_meta, live = _walk(rt, tolerated)
        unknown = [p for p in unknown if p not in {*live_meta.unknown, *live.unknown}]
    if unknown:
        _report_unknown(rt, obj, unknown, directive, operation)
    if walk.errors:
        name = (obj.get("metadata") or {}).get("name", "")
        raise invalid_status(rt.kind, rt.group, name, walk.errors)
    return pruned


def unknown_fields(rt: ResourceType, applied: Object) -> None:
    """Refuse a server-side apply configuration that names fields the kind's schema lacks."""
    _, meta_walk, walk = _walk(rt, applied)
    unknown = meta_walk.unknown + walk.unknown
    if unknown:
        _report_unknown(rt, applied, unknown, FieldValidation.STRICT, "apply")


def _walk(rt: ResourceType, obj: Object) -> tuple[Object, SchemaWalk, SchemaWalk]:
    """The pruned object, with the walks of its metadata and of the rest (one walk for built-ins)."""
    schema = _schema_of(rt)
    meta_walk = SchemaWalk(builtin=True)
    walk = SchemaWalk(builtin=not rt.custom)
    if rt.custom and schema is not None:
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        root = {**schema, "properties": dict(schema.get("properties") or {})}
        root["properties"].pop("metadata", None)
        pruned: Object = walk.walk(body, root)
        meta = meta_walk.walk(obj.get("metadata"), {"$model": "V1ObjectMeta", "x-go-type": "v1.ObjectMeta"},
                              "metadata", "metadata", rt.kind)  # fmt: skip
        head = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": meta}
        pruned = {**{k: v for k, v in head.items() if k in obj}, **pruned}
    elif schema is not None:
        pruned = walk.walk(obj, schema)
    else:
        pruned = obj
    return pruned, meta_walk, walk


def _decode_failure(rt: ResourceType, obj: Object, message: str, operation: str) -> StoreError:
    if operation in ("create", "update"):
        version = str(obj.get("apiVersion") or rt.api_version).rpartition("/")[2]
        message = f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: {message}'
    return StoreError("BadRequest", 400, message)


def _report_unknown(
    rt: ResourceType, obj: Object, unknown: list[str], directive: FieldValidation, operation: str
) -> None:
    if operation == "apply":
        gvk = f"{rt.group}/{rt.version}, Kind={rt.kind}"
        problems = [f".{path}: field not declared in schema" for path in unknown]
        text = problems[0] if len(problems) == 1 else "\n".join(["errors:", *(f"  {p}" for p in problems)])
        raise StoreError("BadRequest", 400, f"failed to create typed patch object ({gvk}): {text}")
    if directive is FieldValidation.STRICT:
        message = "strict decoding error: " + ", ".join(f'unknown field "{path}"' for path in unknown)
        raise _decode_failure(rt, obj, message, operation)
    if directive is FieldValidation.WARN:
        for path in unknown:
            warn(f'unknown field "{path}"')
