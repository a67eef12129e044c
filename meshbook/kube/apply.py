"""Idempotent server-side apply of manifests, whatever their kind, through discovery."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client, dynamic
from kubernetes.client.exceptions import ApiException
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
                self._dynamic = dynamic.DynamicClient(self.api)  # type: ignore[no-untyped-call]
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

    def apply(self, obj: Mapping[str, Any]) -> AppliedObject:
        api_version, kind = obj["apiVersion"], obj["kind"]
        meta = obj["metadata"]
        resource = self.resource(api_version, kind)
        namespace = meta.get("namespace") if resource.namespaced else None
        before = None
        try:
            live = resource.get(name=meta["name"], namespace=namespace)
            before = live.metadata.resourceVersion
        except ApiException as exc:
            if exc.status != 404:
                raise _api_error("read", kind, namespace, meta["name"], exc) from None
        try:
            out = resource.server_side_apply(
                body=dict(obj),
                name=meta["name"],
                namespace=namespace,
                field_manager=self.field_manager,
                force_conflicts=True,
            )
        except ApiException as exc:
            raise _api_error("apply", kind, namespace, meta["name"], exc) from None
        return AppliedObject(api_version, kind, namespace, meta["name"], before, out.metadata.resourceVersion)

    def apply_all(self, objects: Iterable[Mapping[str, Any]]) -> list[AppliedObject]:
        return [self.apply(obj) for obj in objects]


def _api_error(verb: str, kind: str, namespace: str | None, name: str, exc: ApiException) -> MeshbookError:
    import json

    try:
        message = json.loads(exc.body or "{}").get("message") or exc.reason
    except ValueError:
        message = exc.reason
    where = f"{namespace}/" if namespace else ""
    return MeshbookError(f"cannot {verb} {kind} {where}{name}: {message} (HTTP {exc.status})")
