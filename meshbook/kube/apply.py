"""Idempotent server-side apply of manifests, whatever their kind, through discovery."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client, dynamic
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.discovery import LazyDiscoverer
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from meshbook.errors import MeshbookError, UnreachableError

FIELD_MANAGER = "meshbook"


@dataclass(frozen=True)
class AppliedObject:
    """What one apply did: the object, and its resourceVersion before (None: created) and after."""

    api_version: str
    kind: str
    namespace: str | None
    name: str
    resource_version_before: str | None
    resource_version_after: str

    @property
    def ref(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"

    @property
    def changed(self) -> bool:
        return self.resource_version_before != self.resource_version_after


# A path that can never exist (a file below /dev/null), so the discoverer never reads a cache file.
_NO_CACHE_FILE = os.path.join(os.devnull, "meshbook-discovery.json")


class InMemoryDiscoverer(LazyDiscoverer):
    """The official client's lazy discovery, held for the client's life and never written to a file.

    By default the client caches discovery in the temp directory under a name made from the server URL
    alone, and reads it back in any later process: a fresh sandbox on a reused port (or a new cluster
    behind the same address) was then served another cluster's kinds, listed as served and 404 when used.
    """

    def _write_cache(self) -> None:
        return None


class Applier:
    """Applies objects with server-side apply (field manager `meshbook`, conflicts forced)."""

    def __init__(self, api: client.ApiClient, field_manager: str = FIELD_MANAGER) -> None:
        self.api = api
        self.field_manager = field_manager
        self._dynamic: dynamic.DynamicClient | None = None

    @property
    def dynamic(self) -> dynamic.DynamicClient:
        if self._dynamic is None:
            try:
                self._dynamic = dynamic.DynamicClient(  # type: ignore[no-untyped-call]
                    self.api, cache_file=_NO_CACHE_FILE, discoverer=InMemoryDiscoverer
                )
            except Exception as exc:  # urllib3/ssl errors: the cluster cannot be reached
                raise UnreachableError(f"cannot reach the cluster at {self.api.configuration.host}: {exc}") from None
        return self._dynamic

    def resource(self, api_version: str, kind: str) -> Any:
        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            self.dynamic.resources.invalidate_cache()  # a CRD applied a moment ago
            try:
                return self.dynamic.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                raise MeshbookError(
                    f"the cluster does not serve {kind} ({api_version}); is its CustomResourceDefinition installed?"
                ) from None

    def read(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The live object as a plain dict, or None when it does not exist."""
        resource = self.resource(api_version, kind)
        try:
            live = resource.get(name=name, namespace=namespace if resource.namespaced else None)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _api_error("read", kind, namespace, name, exc) from None
        return dict(live.to_dict())

    def apply(self, obj: Mapping[str, Any]) -> AppliedObject:
        api_version, kind = obj["apiVersion"], obj["kind"]
        meta = obj["metadata"]
        resource = self.resource(api_version, kind)
        namespace = meta.get("namespace") if resource.namespaced else None
        live = self.read(api_version, kind, meta["name"], namespace)
        before = live["metadata"]["resourceVersion"] if live else None
        out = self._server_side_apply(resource, obj, namespace, dry_run=False)
        return AppliedObject(api_version, kind, namespace, meta["name"], before, out["metadata"]["resourceVersion"])

    def drift(self, obj: Mapping[str, Any]) -> list[str]:
        """What applying `obj` would change, found with a dry-run apply; nothing is persisted.

        Empty when the cluster already matches. Used by `mode: check`, which must move no resourceVersion.
        """
        api_version, kind = obj["apiVersion"], obj["kind"]
        meta = obj["metadata"]
        resource = self.resource(api_version, kind)
        namespace = meta.get("namespace") if resource.namespaced else None
        live = self.read(api_version, kind, meta["name"], namespace)
        where = f"{namespace}/" if namespace else ""
        if live is None:
            return [f"{kind} {where}{meta['name']} does not exist"]
        would = self._server_side_apply(resource, obj, namespace, dry_run=True)
        changes = _differences(_comparable(live), _comparable(would))
        return [f"{kind} {where}{meta['name']}: {change}" for change in changes]

    def _server_side_apply(
        self, resource: Any, obj: Mapping[str, Any], namespace: str | None, *, dry_run: bool
    ) -> dict[str, Any]:
        extra = {"dry_run": "All"} if dry_run else {}
        try:
            out = resource.server_side_apply(
                body=dict(obj),
                name=obj["metadata"]["name"],
                namespace=namespace,
                field_manager=self.field_manager,
                force_conflicts=True,
                **extra,
            )
        except ApiException as exc:
            raise _api_error("apply", obj["kind"], namespace, obj["metadata"]["name"], exc) from None
        return dict(out.to_dict())

    def apply_all(self, objects: Iterable[Mapping[str, Any]]) -> list[AppliedObject]:
        return [self.apply(obj) for obj in objects]


_VOLATILE_METADATA = ("resourceVersion", "managedFields", "generation", "creationTimestamp", "uid")


def _comparable(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _VOLATILE_METADATA}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}


def _differences(live: Any, wanted: Any, path: str = "") -> list[str]:
    """Paths where `wanted` differs from `live` (values are not shown: they may be secret)."""
    if isinstance(live, Mapping) and isinstance(wanted, Mapping):
        out: list[str] = []
        for key in sorted(set(live) | set(wanted), key=str):
            out += _differences(live.get(key), wanted.get(key), f"{path}.{key}" if path else str(key))
        return out
    return [] if live == wanted else [f"{path or '(object)'} differs"]


def _api_error(verb: str, kind: str, namespace: str | None, name: str, exc: ApiException) -> MeshbookError:
    import json

    try:
        message = json.loads(exc.body or "{}").get("message") or exc.reason
    except ValueError:
        message = exc.reason
    where = f"{namespace}/" if namespace else ""
    return MeshbookError(f"cannot {verb} {kind} {where}{name}: {message} (HTTP {exc.status})")
