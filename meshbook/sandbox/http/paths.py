"""What a resource path names: `/api/v1/...` and `/apis/GROUP/VERSION/...` to a resource type,
namespace, name and subresource, answering 404 as the API server does for anything else."""

from __future__ import annotations

from dataclasses import dataclass

from meshbook.sandbox.apiserver.verbs import ApiCore
from meshbook.sandbox.storage.resources import ResourceType
from meshbook.sandbox.storage.store import StoreError


@dataclass(frozen=True)
class Target:
    """What a resource path names."""

    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


def resolve(core: ApiCore, path: str) -> Target:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise StoreError("NotFound", 404, "the server could not find the requested resource")
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        candidate = core.registry.lookup(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        raise StoreError("NotFound", 404, "the server could not find the requested resource")
    rt = core.registry.lookup(group, version, rest[0])
    if rt is None:
        raise StoreError("NotFound", 404, "the server could not find the requested resource")
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and sub not in rt.subresources:
        raise StoreError("NotFound", 404, "the server could not find the requested resource")
    return Target(rt, namespace, name, sub)
