"""PartialObjectMetadata(List) responses: objects reduced to their metadata when the Accept header asks.

Metadata informers (client-go's metadata client, kube-controller-manager's garbage collector, kubectl
in places) send `Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` for lists
and `as=PartialObjectMetadata` for gets and watches, usually followed by a plain `application/json`
fallback. Like kube-apiserver, the first clause decides: a conversion to `meta.k8s.io` v1 or v1beta1
is served, `as=Table` is the Table printer's, a clause without `as` is the full object, and a
conversion that does not fit the request (a list asked as PartialObjectMetadata) is a 406.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from meshbook.sandbox.storage.resources import ResourceType
from meshbook.sandbox.storage.store import Object, StoreError

Verb = Literal["get", "list", "watch"]
PARTIAL = "PartialObjectMetadata"
PARTIAL_LIST = "PartialObjectMetadataList"
_META_GROUP = "meta.k8s.io"
_META_VERSIONS = ("v1", "v1beta1")


def _clauses(accept: str) -> Iterable[dict[str, str]]:
    for clause in accept.split(","):
        parts = [p.strip() for p in clause.split(";")]
        params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        yield {k.strip(): v.strip() for k, v in params.items()}


def requested(accept: str, verb: Verb, rt: ResourceType) -> tuple[str, str] | None:
    """(kind, apiVersion) of the metadata-only answer the first Accept clause asks, else None.

    None also when the first clause asks for a Table or the full object: those are answered as before.
    """
    for params in _clauses(accept):
        kind = params.get("as")
        if kind is None or kind == "Table":
            return None
        if kind not in (PARTIAL, PARTIAL_LIST) or params.get("g") != _META_GROUP:
            continue  # a conversion the server does not offer: the next clause may be acceptable
        version = params.get("v", "")
        if version not in _META_VERSIONS:
            continue
        wants_list = kind == PARTIAL_LIST
        if wants_list != (verb == "list"):
            shown = f"*v1.{rt.kind}List" if verb == "list" else f"*v1.{rt.kind}"
            what = "is a list" if verb == "list" else "is not a list"
            raise StoreError("NotAcceptable", 406, f"you requested {kind}, but the requested object {what} ({shown})")
        return kind, f"{_META_GROUP}/{version}"
    return None


def partial_object(obj: Object, api_version: str) -> dict[str, Any]:
    return {"kind": PARTIAL, "apiVersion": api_version, "metadata": obj.get("metadata", {})}


def partial_list(items: Iterable[Object], api_version: str, list_meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": PARTIAL_LIST,
        "apiVersion": api_version,
        "metadata": list_meta,
        "items": [partial_object(obj, api_version) for obj in items],
    }
