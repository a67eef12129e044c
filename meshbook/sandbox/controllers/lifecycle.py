"""Cluster housekeeping: bootstrap objects, namespaces, CRDs, garbage collection, volume binding."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Iterable
from typing import Any

from meshbook.sandbox.apiserver.verbs import ApiCore, DeleteOptions
from meshbook.sandbox.config import NODE_IP, NODE_NAME
from meshbook.sandbox.controllers.base import Controller, Key
from meshbook.sandbox.storage.resources import ResourceType
from meshbook.sandbox.storage.store import Object, StoreError, WatchEvent

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
ROOT_CA = "kube-root-ca.crt"
ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as "
    "the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of "
    "Kubernetes clusters."
)


def _rt(core: ApiCore, group: str, version: str, plural: str) -> ResourceType:
    rt = core.registry.lookup(group, version, plural)
    assert rt is not None, plural
    return rt


async def bootstrap(core: ApiCore) -> None:
    """The objects a fresh cluster has: system namespaces, the node, the `kubernetes` Service."""
    core.registry.sync_crds(core.store.list(_rt(core, "apiextensions.k8s.io", "v1", "customresourcedefinitions")))
    ns_rt = _rt(core, "", "v1", "namespaces")
    for name in SYSTEM_NAMESPACES:
        if core.store.get(ns_rt, "", name) is None:
            await core.create(ns_rt, "", {"metadata": {"name": name}})
    node_rt = _rt(core, "", "v1", "nodes")
    if core.store.get(node_rt, "", NODE_NAME) is None:
        core.store.create(node_rt, _node(NODE_NAME, NODE_IP))
    svc_rt = _rt(core, "", "v1", "services")
    if core.store.get(svc_rt, "default", "kubernetes") is None:
        await core.create(
            svc_rt,
            "default",
            {
                "metadata": {
                    "name": "kubernetes",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "clusterIP": "10.96.0.1",
                    "ports": [{"name": "https", "port": 443, "targetPort": 6443}],
                },
            },
        )


def _node(name: str, ip: str) -> Object:
    return {
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node-role.kubernetes.io/control-plane": "",
            },
        },
        "spec": {"podCIDR": "10.244.0.0/16"},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "capacity": {"cpu": "2", "memory": "24Gi", "pods": "1000"},
            "allocatable": {"cpu": "2", "memory": "24Gi", "pods": "1000"},
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}  # noqa: E501
            ],
            "nodeInfo": {
                "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "containerd://1.7.0",
                "kernelVersion": "", "kubeProxyVersion": "", "kubeletVersion": "v1.33.0", "machineID": "",
                "operatingSystem": "linux", "osImage": "meshbook sandbox", "systemUUID": "",
            },
        },
    }  # fmt: skip


class NamespaceController(Controller):
    """Gives each namespace its `default` ServiceAccount and root CA ConfigMap; empties terminating ones."""

    name = "namespace"

    def keys_for(self, event: WatchEvent) -> Iterable[Key]:
        if event.rt_key == "/namespaces":
            yield ("", event.object["metadata"]["name"])
        elif event.type == "DELETED" and event.rt_key in ("/serviceaccounts", "/configmaps"):
            yield ("", event.object["metadata"].get("namespace", ""))

    def initial_keys(self) -> Iterable[Key]:
        for ns in self.core.store.list(_rt(self.core, "", "v1", "namespaces")):
            yield ("", ns["metadata"]["name"])

    async def reconcile(self, key: Key) -> None:
        ns_rt = _rt(self.core, "", "v1", "namespaces")
        ns = self.core.store.get(ns_rt, "", key[1])
        if ns is None:
            return
        name = key[1]
        if ns["metadata"].get("deletionTimestamp"):
            await self._terminate(ns)
            return
        sa_rt = _rt(self.core, "", "v1", "serviceaccounts")
        if self.core.store.get(sa_rt, name, "default") is None:
            await self.core.create(sa_rt, name, {"metadata": {"name": "default"}})
        cm_rt = _rt(self.core, "", "v1", "configmaps")
        if self.core.store.get(cm_rt, name, ROOT_CA) is None:
            ca = self.core.cluster_ca_pem
            await self.core.create(
                cm_rt,
                name,
                {
                    "metadata": {
                        "name": ROOT_CA,
                        "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION},
                    },
                    "data": {"ca.crt": ca},
                },
            )

    async def _terminate(self, ns: Object) -> None:
        name = ns["metadata"]["name"]
        remaining = 0
        for rt in list(self.core.registry.types()):
            if not rt.namespaced or not rt.stored:
                continue
            for obj in list(self.core.store.list(rt, name)):
                remaining += 1
                if not obj["metadata"].get("deletionTimestamp"):
                    with contextlib.suppress(StoreError):
                        await self.core.delete(
                            rt,
                            name,
                            obj["metadata"]["name"],
                            DeleteOptions(grace_period_seconds=0 if rt.kind != "Pod" else None),
                        )
        if remaining:
            return  # deletions in flight re-queue this namespace when they finish
        ns_rt = _rt(self.core, "", "v1", "namespaces")
        live = self.core.store.get(ns_rt, "", name)
        if live is not None:
            self.core.finish_delete(ns_rt, live)

    def on_event(self, event: WatchEvent) -> None:
        super().on_event(event)
        namespace = event.object["metadata"].get("namespace")
        if event.type == "DELETED" and namespace:
            ns = self.core.store.get(_rt(self.core, "", "v1", "namespaces"), "", namespace)
            if ns is not None and ns["metadata"].get("deletionTimestamp"):
                self.enqueue(("", namespace))


class CrdController(Controller):
    """Serves (and stops serving) custom resources as CRDs come and go."""

    name = "crd"

    def keys_for(self, event: WatchEvent) -> Iterable[Key]:
        if event.rt_key == "apiextensions.k8s.io/customresourcedefinitions":
            yield ("", event.object["metadata"]["name"])

    async def reconcile(self, key: Key) -> None:
        crd_rt = _rt(self.core, "apiextensions.k8s.io", "v1", "customresourcedefinitions")
        crds = self.core.store.list(crd_rt)
        self.core.registry.sync_crds(crds)
        crd = self.core.store.get(crd_rt, "", key[1])
        if crd is not None and crd["metadata"].get("deletionTimestamp"):
            # Deleting a CRD deletes its custom resources, then the CRD.
            for version in crd["spec"].get("versions", []):
                group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
                rt = ResourceType(
                    group,
                    version["name"],
                    crd["spec"]["names"]["kind"],
                    plural,
                    crd["spec"].get("scope") == "Namespaced",
                    custom=True,
                )
                for obj in list(self.core.store.list(rt)):
                    self.core.store.delete(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            self.core.finish_delete(crd_rt, crd)


class GarbageCollector:
    """Deletes dependents of deleted owners (Background/Foreground) or orphans them (Orphan)."""

    def __init__(self, core: ApiCore) -> None:
        self.core = core
        self._tasks: set[asyncio.Task[None]] = set()

    def on_delete(self, rt: ResourceType, obj: Object, options: DeleteOptions) -> None:
        gone = self.core.store.get(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"]) is None
        if gone:
            for ref in obj["metadata"].get("ownerReferences") or []:
                self.core.release_foreground(str(ref.get("uid")))
        if not obj["metadata"].get("deletionTimestamp") or rt.kind not in ("Pod",):
            task = asyncio.ensure_future(
                self._collect(obj["metadata"]["uid"], obj["metadata"].get("namespace"), options.propagation_policy)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _collect(self, uid: str, namespace: str | None, policy: str) -> None:
        for rt in list(self.core.registry.types()):
            if not rt.stored:
                continue
            for dependent in list(self.core.store.list(rt, namespace if rt.namespaced and namespace else None)):
                refs = dependent["metadata"].get("ownerReferences") or []
                if not any(r.get("uid") == uid for r in refs):
                    continue
                meta = dependent["metadata"]
                if policy == "Orphan":
                    updated = copy.deepcopy(dependent)
                    updated["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                    if not updated["metadata"]["ownerReferences"]:
                        del updated["metadata"]["ownerReferences"]
                    self.core.store.update(rt, updated)
                    continue
                with contextlib.suppress(StoreError):
                    await self.core.delete(
                        rt,
                        meta.get("namespace", ""),
                        meta["name"],
                        # Foreground propagates: each dependent waits for its own dependents.
                        DeleteOptions(propagation_policy="Foreground" if policy == "Foreground" else "Background"),
                    )


class PersistentVolumeClaimBinder(Controller):
    """Binds every claim at once to a volume of the requested size (a sandbox has endless disk)."""

    name = "pvc"

    def keys_for(self, event: WatchEvent) -> Iterable[Key]:
        if event.rt_key == "/persistentvolumeclaims" and event.type != "DELETED":
            yield (event.object["metadata"]["namespace"], event.object["metadata"]["name"])

    async def reconcile(self, key: Key) -> None:
        rt = _rt(self.core, "", "v1", "persistentvolumeclaims")
        pvc = self.core.store.get(rt, *key)
        if pvc is None or pvc.get("status", {}).get("phase") == "Bound":
            return
        updated: dict[str, Any] = copy.deepcopy(pvc)
        updated["spec"]["volumeName"] = f"pvc-{pvc['metadata']['uid']}"
        updated["status"] = {
            "phase": "Bound",
            "accessModes": pvc["spec"].get("accessModes", ["ReadWriteOnce"]),
            "capacity": {"storage": pvc["spec"].get("resources", {}).get("requests", {}).get("storage", "1Gi")},
        }
        self.core.store.update(rt, updated)
