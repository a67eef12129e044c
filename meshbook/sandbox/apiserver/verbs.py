"""The API server's verbs over the store: create, update, patch, delete, with admission and dry-run.

HTTP handlers and the in-process controllers both call these, so a Pod made by the ReplicaSet controller
passes the same defaulting and mutating admission (Istio injection, the Bank-Vaults webhook) as one
made by kubectl, just as on a real cluster.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from meshbook.sandbox.apiserver.admission import AdmissionChain, AdmissionRequest, generate_suffix
from meshbook.sandbox.apiserver.authorization.rbac import RBACAuthorizer
from meshbook.sandbox.apiserver.patch import dispatch as patching
from meshbook.sandbox.storage.resources import ResourceRegistry, ResourceType
from meshbook.sandbox.storage.store import Object, Store, StoreError, not_found, now_rfc3339

# Kinds whose DELETE answers with the object rather than a Status (as the real registries do).
RETURNS_DELETED_OBJECT = {
    "Pod", "Service", "ServiceAccount", "PersistentVolumeClaim", "PersistentVolume", "PodTemplate", "ResourceQuota",
}  # fmt: skip
# Kinds that are deleted gracefully: the kubelet stand-in (pods) or a controller (namespaces) finishes.
GRACEFUL = {"Pod", "Namespace"}

PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "apply",
}


def bad_request(message: str) -> StoreError:
    return StoreError("BadRequest", 400, message)


@dataclass
class DeleteOptions:
    propagation_policy: str = "Background"  # Background, Foreground, Orphan
    grace_period_seconds: int | None = None
    dry_run: bool = False
    preconditions_uid: str | None = None
    preconditions_rv: str | None = None


@dataclass
class ApiCore:
    store: Store
    registry: ResourceRegistry
    admission: AdmissionChain = field(default_factory=AdmissionChain)
    # Called when a namespace or owner is deleted; set by the controllers (garbage collection).
    on_delete: list[Callable[[ResourceType, Object, DeleteOptions], None]] = field(default_factory=list)
    # (involved uid, reason, message) -> Event name, so repeated events bump a count (see events.py).
    event_index: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # The API server's CA: what `kube-root-ca.crt` in every namespace holds.
    cluster_ca_pem: str = ""
    # Who may do what (RBAC); set by the server. Components acting as a service account ask it through
    # `authorization.acting.ActingCore`; None (unit tests of the core alone) means nobody is checked.
    authorizer: RBACAuthorizer | None = None

    def type_of(self, obj: Object) -> ResourceType:
        rt = self.registry.by_kind(obj.get("kind", ""), obj.get("apiVersion"))
        if rt is None:
            raise bad_request(f'no kind "{obj.get("kind")}" is registered for version "{obj.get("apiVersion")}"')
        return rt

    def _check_namespace(self, rt: ResourceType, namespace: str, creating: bool) -> None:
        if not rt.namespaced:
            return
        ns_type = self.registry.lookup("", "v1", "namespaces")
        assert ns_type is not None
        ns = self.store.get(ns_type, "", namespace)
        if ns is None:
            raise StoreError(
                "NotFound",
                404,
                f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )
        if creating and ns["metadata"].get("deletionTimestamp"):
            raise StoreError(
                "Forbidden",
                403,
                f"{rt.plural} is forbidden: unable to create new content in namespace {namespace} "
                "because it is being terminated",
            )

    async def create(
        self,
        rt: ResourceType,
        namespace: str,
        body: Object,
        *,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> Object:
        obj = copy.deepcopy(body)
        self._check_kind(rt, obj)
        meta = obj.setdefault("metadata", {})
        if rt.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise StoreError(
                    "Invalid",
                    422,
                    f'{rt.kind} "" is invalid: metadata.name: Required value: name or generateName is required',
                )
            meta["name"] = meta["generateName"] + generate_suffix()
        for key in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "selfLink"):
            meta.pop(key, None)
        self._check_namespace(rt, namespace, creating=True)
        obj = await self.admission.admit(AdmissionRequest("CREATE", rt, obj, None, namespace, dry_run))
        if field_manager:
            obj = patching.record_update(None, obj, field_manager, rt.kind)
        if self.store.get(rt, namespace, meta["name"]) is not None:
            from meshbook.sandbox.storage.store import already_exists

            raise already_exists(rt, meta["name"])
        if dry_run:
            obj["metadata"].update(uid="00000000-0000-0000-0000-000000000000", creationTimestamp=now_rfc3339())
            return obj
        return self.store.create(rt, obj)

    def _check_kind(self, rt: ResourceType, obj: Object) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind not in (None, rt.kind) or api_version not in (None, rt.api_version, rt.group or None):
            if api_version not in (None, rt.api_version):
                raise bad_request(
                    f"the API version in the data ({api_version}) does not match the expected API version "
                    f"({rt.api_version})"
                )
            raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        obj["kind"] = rt.kind
        obj["apiVersion"] = rt.api_version

    async def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Object,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> Object:
        """PUT semantics: the body replaces the object (or only its status for the status subresource)."""
        live = self.store.get(rt, namespace, name)
        if live is None:
            raise not_found(rt, name)
        obj = copy.deepcopy(body)
        self._check_kind(rt, obj)
        meta = obj.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        expect_rv = meta.get("resourceVersion") or None
        if subresource == "status":
            merged = copy.deepcopy(live)
            merged["status"] = obj.get("status", {})
            obj = merged
        else:
            meta["name"] = name
            if rt.namespaced:
                meta["namespace"] = namespace
            if "status" in rt.subresources or rt.kind in ("Pod", "Namespace"):
                obj["status"] = copy.deepcopy(live.get("status", {}))
            if live["metadata"].get("deletionTimestamp"):
                meta["deletionTimestamp"] = live["metadata"]["deletionTimestamp"]
            obj = await self.admission.admit(AdmissionRequest("UPDATE", rt, obj, live, namespace, dry_run))
        if field_manager:
            obj = patching.record_update(live, obj, field_manager, rt.kind, subresource=subresource)
        if dry_run:
            return obj
        updated = self.store.update(rt, obj, expect_rv=expect_rv)
        self._finish_if_unblocked(rt, updated)
        return updated

    async def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        patch_type: str,
        patch: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
        force: bool = False,
    ) -> tuple[Object, bool]:
        """Apply a patch; returns the result and whether it was created (server-side apply only)."""
        live = self.store.get(rt, namespace, name)
        kind = "" if rt.custom else rt.kind
        try:
            if patch_type == "apply":
                if not isinstance(patch, dict):
                    raise bad_request("apply patches must be a single object")
                manager = field_manager or ""
                if not manager:
                    raise bad_request("PATCH with apply requires a fieldManager")
                result = patching.apply_server_side(
                    copy.deepcopy(live) if live else None, patch, manager, force, kind or rt.kind
                )
                if live is None:
                    if subresource:
                        raise not_found(rt, name)
                    result.setdefault("metadata", {})["name"] = name
                    return await self.create(rt, namespace, result, dry_run=dry_run), True
            else:
                if live is None:
                    raise not_found(rt, name)
                base = copy.deepcopy(live)
                if patch_type == "json":
                    if not isinstance(patch, list):
                        raise bad_request("json patch must be a list of operations")
                    result = patching.apply_json_patch(base, patch)
                elif patch_type == "merge":
                    if not isinstance(patch, dict):
                        raise bad_request("merge patch must be an object")
                    result = patching.apply_merge_patch(base, patch)
                elif patch_type == "strategic":
                    if rt.custom:
                        raise StoreError(
                            "UnsupportedMediaType",
                            415,
                            "strategic merge patch is not supported for custom resources; use a merge patch",
                        )
                    if not isinstance(patch, dict):
                        raise bad_request("strategic merge patch must be an object")
                    result = patching.apply_strategic_merge_patch(base, patch, rt.kind)
                else:
                    raise StoreError("UnsupportedMediaType", 415, f"unsupported patch type {patch_type!r}")
        except patching.ConflictError as exc:
            raise StoreError(
                "Conflict", 409, str(exc), {"name": name, "kind": rt.plural, "causes": exc.causes()}
            ) from None
        except patching.PatchError as exc:
            if exc.code == 400:
                raise bad_request(str(exc)) from None
            raise StoreError("Invalid", 422, f'{rt.kind} "{name}" is invalid: {exc}') from None
        assert live is not None
        result.setdefault("metadata", {})
        result["metadata"]["resourceVersion"] = _patched_rv(patch) or live["metadata"]["resourceVersion"]
        writer = None if patch_type == "apply" else field_manager
        updated = await self.update(
            rt, namespace, name, result, subresource=subresource, dry_run=dry_run, field_manager=writer
        )
        return updated, False

    async def delete(self, rt: ResourceType, namespace: str, name: str, options: DeleteOptions) -> tuple[Object, bool]:
        """Delete or start deleting; returns (object, gone) where gone means it left the store."""
        live = self.store.require(rt, namespace, name)
        meta = live["metadata"]
        if options.preconditions_uid and options.preconditions_uid != meta.get("uid"):
            raise StoreError(
                "Conflict",
                409,
                f"Precondition failed: UID in precondition: {options.preconditions_uid}, "
                f"UID in object meta: {meta.get('uid')}",
            )
        if options.preconditions_rv and options.preconditions_rv != meta.get("resourceVersion"):
            raise StoreError(
                "Conflict",
                409,
                f"Precondition failed: ResourceVersion in precondition: {options.preconditions_rv}, "
                f"ResourceVersion in object meta: {meta.get('resourceVersion')}",
            )
        if options.dry_run:
            return live, False
        finalizers = list(meta.get("finalizers") or [])
        if options.propagation_policy == "Foreground" and self._has_dependents(live):
            # The owner stays (with this finalizer) until the garbage collector has removed its dependents.
            finalizers.append("foregroundDeletion")
            live = {**live, "metadata": {**meta, "finalizers": finalizers}}
        graceful = rt.kind in GRACEFUL and options.grace_period_seconds != 0
        if rt.kind == "Pod" and not live.get("spec", {}).get("nodeName"):
            graceful = False  # an unscheduled pod has no kubelet to wait for
        if finalizers or graceful:
            if meta.get("deletionTimestamp"):
                return live, False
            updated = copy.deepcopy(live)
            updated["metadata"]["finalizers"] = finalizers
            if not updated["metadata"]["finalizers"]:
                del updated["metadata"]["finalizers"]
            updated["metadata"]["deletionTimestamp"] = now_rfc3339()
            grace = options.grace_period_seconds
            if rt.kind == "Pod":
                grace = grace if grace is not None else live["spec"].get("terminationGracePeriodSeconds", 30)
            updated["metadata"]["deletionGracePeriodSeconds"] = grace if grace is not None else 0
            if rt.kind == "Namespace":
                updated.setdefault("status", {})["phase"] = "Terminating"
            stored = self.store.update(rt, updated)
            for callback in self.on_delete:
                callback(rt, stored, options)
            return stored, False
        gone = self.store.delete(rt, namespace, name)
        for callback in self.on_delete:
            callback(rt, gone, options)
        return gone, True

    def _has_dependents(self, owner: Object) -> bool:
        uid = owner["metadata"]["uid"]
        for rt in self.registry.types():
            if rt.stored:
                for obj in self.store.iter_all(rt.storage_key):
                    if any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or []):
                        return True
        return False

    def release_foreground(self, owner_uid: str) -> None:
        """The garbage collector removed the last dependent: drop the finalizer so the owner goes."""
        for rt in list(self.registry.types()):
            if not rt.stored:
                continue
            for obj in list(self.store.iter_all(rt.storage_key)):
                meta = obj["metadata"]
                if meta.get("uid") == owner_uid and "foregroundDeletion" in (meta.get("finalizers") or []):
                    if self._has_dependents(obj):
                        return
                    updated = copy.deepcopy(obj)
                    updated["metadata"]["finalizers"] = [f for f in meta["finalizers"] if f != "foregroundDeletion"]
                    self._finish_if_unblocked(rt, self.store.update(rt, updated))
                    return

    def finish_delete(self, rt: ResourceType, obj: Object) -> None:
        """Remove an object whose graceful deletion is complete (kubelet or namespace controller)."""
        if self.store.get(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"]) is None:
            return
        gone = self.store.delete(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        for callback in self.on_delete:
            callback(rt, gone, DeleteOptions())

    def _finish_if_unblocked(self, rt: ResourceType, obj: Object) -> None:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and rt.kind not in GRACEFUL:
            self.finish_delete(rt, obj)


def _patched_rv(patch: Any) -> str | None:
    if isinstance(patch, dict):
        rv = (patch.get("metadata") or {}).get("resourceVersion")
        return str(rv) if rv else None
    return None
