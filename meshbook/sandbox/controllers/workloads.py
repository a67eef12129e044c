"""Workload controllers: Deployment -> ReplicaSet -> Pods, StatefulSet -> ordinal Pods, DaemonSet."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from meshbook.param_enums import SandboxSpeed
from meshbook.sandbox.apiserver import events
from meshbook.sandbox.apiserver.verbs import ApiCore, DeleteOptions
from meshbook.sandbox.controllers.base import Controller, Key, controller_uid, owner_reference
from meshbook.sandbox.storage.resources import ResourceType
from meshbook.sandbox.storage.store import Object, StoreError, WatchEvent, now_rfc3339

_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: dict[str, Any]) -> str:
    """A pod-template-hash in the alphabet Kubernetes uses (stable for equal templates)."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    value = int.from_bytes(digest[:8], "big")
    out = ""
    for _ in range(10):
        value, rest = divmod(value, len(_SAFE))
        out += _SAFE[rest]
    return out


def pod_ready(pod: Object) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in pod.get("status", {}).get("conditions", [])
    )


def pod_active(pod: Object) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and pod.get("status", {}).get("phase") not in (
        "Succeeded",
        "Failed",
    )


class _WorkloadController(Controller):
    group = "apps"
    plural = ""

    @property
    def rt(self) -> ResourceType:
        rt = self.core.registry.lookup(self.group, "v1", self.plural)
        assert rt is not None
        return rt

    @property
    def pods_rt(self) -> ResourceType:
        rt = self.core.registry.lookup("", "v1", "pods")
        assert rt is not None
        return rt

    def keys_for(self, event: WatchEvent) -> Iterable[Key]:
        if event.rt_key == self.rt.storage_key and event.type != "DELETED":
            yield (event.object["metadata"]["namespace"], event.object["metadata"]["name"])
        elif event.rt_key == "/pods":
            for ref in event.object["metadata"].get("ownerReferences") or []:
                if ref.get("controller") and ref.get("kind") == self.rt.kind:
                    yield (event.object["metadata"]["namespace"], ref["name"])

    def initial_keys(self) -> Iterable[Key]:
        for obj in self.core.store.list(self.rt):
            yield (obj["metadata"]["namespace"], obj["metadata"]["name"])

    def owned_pods(self, owner: Object) -> list[Object]:
        uid = owner["metadata"]["uid"]
        return [
            p for p in self.core.store.list(self.pods_rt, owner["metadata"]["namespace"]) if controller_uid(p) == uid
        ]

    async def create_pod(self, owner: Object, name: str | None, extra_labels: dict[str, str]) -> None:
        template = copy.deepcopy(owner["spec"]["template"])
        meta = template.setdefault("metadata", {})
        meta["labels"] = {**(meta.get("labels") or {}), **extra_labels}
        if name:
            meta["name"] = name
        else:
            meta["generateName"] = f"{owner['metadata']['name']}-"
        meta["ownerReferences"] = [owner_reference(owner)]
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template.get("spec", {})}
        await self.core.create(self.pods_rt, owner["metadata"]["namespace"], body)

    async def delete_pod(self, pod: Object) -> None:
        with contextlib.suppress(StoreError):
            await self.core.delete(self.pods_rt, pod["metadata"]["namespace"], pod["metadata"]["name"], DeleteOptions())

    def write_status(self, owner: Object, status: dict[str, Any]) -> None:
        always = {"replicas", "observedGeneration", "availableReplicas", "currentNumberScheduled",
                  "numberMisscheduled", "desiredNumberScheduled", "numberReady"}  # fmt: skip
        status = {k: v for k, v in status.items() if v not in (None, 0) or k in always}
        if owner.get("status") == status:
            return
        updated = copy.copy(owner)
        updated["metadata"] = copy.deepcopy(owner["metadata"])
        updated["status"] = status
        self.core.store.update(self.rt, updated)


class ReplicaSetController(_WorkloadController):
    name = "replicaset"
    plural = "replicasets"
    component = "replicaset-controller"  # the source of its events

    def __init__(self, core: ApiCore, speed: SandboxSpeed) -> None:
        super().__init__(core, speed)
        self._failures: dict[Key, int] = {}

    async def reconcile(self, key: Key) -> None:
        rs = self.core.store.get(self.rt, *key)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        pods = [p for p in self.owned_pods(rs) if pod_active(p)]
        want = rs["spec"].get("replicas", 1)
        hash_label = {k: v for k, v in (rs["spec"]["template"].get("metadata", {}).get("labels") or {}).items()}
        failure = None
        for _ in range(want - len(pods)):
            try:
                await self.create_pod(rs, None, hash_label)
            except StoreError as exc:  # e.g. a webhook with failurePolicy Fail that cannot be reached
                failure = exc.message
                events.record(
                    self.core, rs, "Warning", "FailedCreate", f"Error creating: {exc.message}", self.component
                )
                break
        if len(pods) > want:
            # Prefer deleting pods that are not ready, then the newest (as the real controller ranks them).
            ranked = sorted(pods, key=lambda p: (pod_ready(p), p["metadata"]["creationTimestamp"]))
            for pod in ranked[: len(pods) - want]:
                await self.delete_pod(pod)
        pods = [p for p in self.owned_pods(rs) if pod_active(p)]
        ready = sum(1 for p in pods if pod_ready(p))
        rs = self.core.store.get(self.rt, *key) or rs
        status: dict[str, Any] = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        if failure is not None:
            status["conditions"] = [
                {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": failure,
                 "lastTransitionTime": now_rfc3339()}
            ]  # fmt: skip
            # Retry with back-off, as the real controller requeues a failed create.
            attempts = self._failures[key] = self._failures.get(key, 0) + 1
            asyncio.get_running_loop().call_later(min(0.1 * 2**attempts, 30.0), self.enqueue, key)
        else:
            self._failures.pop(key, None)
        self.write_status(rs, status)


class ReplicationControllerController(ReplicaSetController):
    """A ReplicationController is a ReplicaSet with an equality-based selector: the same reconcile."""

    name = "replicationcontroller"
    group = ""
    plural = "replicationcontrollers"
    component = "replication-controller"


class DeploymentController(_WorkloadController):
    name = "deployment"
    plural = "deployments"

    def keys_for(self, event: WatchEvent) -> Iterable[Key]:
        if event.rt_key == self.rt.storage_key and event.type != "DELETED":
            yield (event.object["metadata"]["namespace"], event.object["metadata"]["name"])
        elif event.rt_key == "apps/replicasets":
            for ref in event.object["metadata"].get("ownerReferences") or []:
                if ref.get("controller") and ref.get("kind") == "Deployment":
                    yield (event.object["metadata"]["namespace"], ref["name"])

    def _replicasets(self, deploy: Object) -> list[Object]:
        rs_rt = self.core.registry.lookup("apps", "v1", "replicasets")
        assert rs_rt is not None
        uid = deploy["metadata"]["uid"]
        return [r for r in self.core.store.list(rs_rt, deploy["metadata"]["namespace"]) if controller_uid(r) == uid]

    async def reconcile(self, key: Key) -> None:
        deploy = self.core.store.get(self.rt, *key)
        if deploy is None or deploy["metadata"].get("deletionTimestamp"):
            return
        rs_rt = self.core.registry.lookup("apps", "v1", "replicasets")
        assert rs_rt is not None
        template = deploy["spec"]["template"]
        digest = template_hash(template)
        name = f"{key[1]}-{digest}"
        owned = self._replicasets(deploy)
        current = next((r for r in owned if r["metadata"]["name"] == name), None)
        revisions = [
            int(r["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", "0")) for r in owned
        ]
        want = deploy["spec"].get("replicas", 1)
        if current is None:
            new_template = copy.deepcopy(template)
            new_template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = digest
            selector = copy.deepcopy(deploy["spec"]["selector"])
            selector.setdefault("matchLabels", {})["pod-template-hash"] = digest
            revision = str(max(revisions, default=0) + 1)
            body = {
                "metadata": {
                    "name": name,
                    "labels": {
                        **(template.get("metadata", {}).get("labels") or {}),
                        "pod-template-hash": digest,
                    },
                    "annotations": {
                        "deployment.kubernetes.io/desired-replicas": str(want),
                        "deployment.kubernetes.io/max-replicas": str(want + 1),
                        "deployment.kubernetes.io/revision": revision,
                    },
                    "ownerReferences": [owner_reference(deploy)],
                },
                "spec": {"replicas": want, "selector": selector, "template": new_template},
            }
            current = await self.core.create(rs_rt, key[0], body)
        elif current["spec"].get("replicas") != want:
            updated = copy.deepcopy(current)
            updated["spec"]["replicas"] = want
            updated["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/desired-replicas"] = str(want)
            current = self.core.store.update(rs_rt, updated)
        for old in owned:
            if old["metadata"]["name"] != name and old["spec"].get("replicas", 0) != 0:
                updated = copy.deepcopy(old)
                updated["spec"]["replicas"] = 0
                self.core.store.update(rs_rt, updated)
        owned = self._replicasets(deploy)
        total = sum(r.get("status", {}).get("replicas", 0) for r in owned)
        ready = sum(r.get("status", {}).get("readyReplicas", 0) for r in owned)
        new_status = (current.get("status") or {}) if current else {}
        updated_replicas = new_status.get("replicas", 0)
        available = sum(r.get("status", {}).get("availableReplicas", 0) for r in owned)
        deploy = self.core.store.get(self.rt, *key) or deploy
        now = now_rfc3339()
        complete = updated_replicas == want and total == want and available == want
        previous = {c["type"]: c for c in (deploy.get("status") or {}).get("conditions", [])}

        def condition(kind: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
            before = previous.get(kind)
            status = "True" if ok else "False"
            since = (
                before["lastTransitionTime"]
                if before and before.get("status") == status and before.get("reason") == reason
                else now
            )
            return {
                "type": kind,
                "status": status,
                "lastUpdateTime": now
                if not before or before.get("reason") != reason
                else before.get("lastUpdateTime", now),
                "lastTransitionTime": since,
                "reason": reason,
                "message": message,
            }

        rs_name = current["metadata"]["name"] if current else name
        self.write_status(
            deploy,
            {
                "observedGeneration": deploy["metadata"].get("generation", 1),
                "replicas": total,
                "updatedReplicas": updated_replicas,
                "readyReplicas": ready,
                "availableReplicas": available,
                "unavailableReplicas": max(0, want - available),
                "conditions": [
                    condition(
                        "Available",
                        available >= want,
                        "MinimumReplicasAvailable" if available >= want else "MinimumReplicasUnavailable",
                        "Deployment has minimum availability."
                        if available >= want
                        else "Deployment does not have minimum availability.",
                    ),
                    condition(
                        "Progressing",
                        True,
                        "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                        f'ReplicaSet "{rs_name}" has successfully progressed.'
                        if complete
                        else f'ReplicaSet "{rs_name}" is progressing.',
                    ),
                ],
            },
        )


class StatefulSetController(_WorkloadController):
    name = "statefulset"
    plural = "statefulsets"

    async def reconcile(self, key: Key) -> None:
        sts = self.core.store.get(self.rt, *key)
        if sts is None or sts["metadata"].get("deletionTimestamp"):
            return
        want = sts["spec"].get("replicas", 1)
        revision = f"{key[1]}-{template_hash(sts['spec']['template'])}"
        pods = {p["metadata"]["name"]: p for p in self.owned_pods(sts)}
        ordered = sts["spec"].get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        for i in range(want):
            name = f"{key[1]}-{i}"
            pod = pods.get(name)
            if pod is None:
                if self.core.store.get(self.pods_rt, key[0], name) is not None:
                    break  # the previous pod of this name is still terminating
                labels = {
                    "controller-revision-hash": revision,
                    "statefulset.kubernetes.io/pod-name": name,
                    "apps.kubernetes.io/pod-index": str(i),
                }
                try:
                    await self.create_pod(sts, name, labels)
                except StoreError as exc:  # e.g. a webhook with failurePolicy Fail that cannot be reached
                    message = f"create Pod {name} in StatefulSet {key[1]} failed error: {exc.message}"
                    events.record(self.core, sts, "Warning", "FailedCreate", message, "statefulset-controller")
                    raise  # the controller retries with back-off, as the real one requeues
                if ordered:
                    break
            elif ordered and not pod_ready(pod):
                break
        for name, pod in pods.items():
            index = int(name.rsplit("-", 1)[-1]) if name.rsplit("-", 1)[-1].isdigit() else -1
            if index >= want and not pod["metadata"].get("deletionTimestamp"):
                await self.delete_pod(pod)
        pods_now = [p for p in self.owned_pods(sts) if pod_active(p)]
        ready = sum(1 for p in pods_now if pod_ready(p))
        sts = self.core.store.get(self.rt, *key) or sts
        self.write_status(
            sts,
            {
                "observedGeneration": sts["metadata"].get("generation", 1),
                "replicas": len(pods_now),
                "readyReplicas": ready,
                "currentReplicas": len(pods_now),
                "updatedReplicas": len(pods_now),
                "availableReplicas": ready,
                "currentRevision": revision,
                "updateRevision": revision,
                "collisionCount": 0,
            },
        )


class DaemonSetController(_WorkloadController):
    name = "daemonset"
    plural = "daemonsets"

    async def reconcile(self, key: Key) -> None:
        ds = self.core.store.get(self.rt, *key)
        if ds is None or ds["metadata"].get("deletionTimestamp"):
            return
        pods = [p for p in self.owned_pods(ds) if pod_active(p)]
        if not pods:
            await self.create_pod(ds, None, {"controller-revision-hash": template_hash(ds["spec"]["template"])})
            pods = [p for p in self.owned_pods(ds) if pod_active(p)]
        for extra in pods[1:]:
            await self.delete_pod(extra)
        ready = sum(1 for p in pods[:1] if pod_ready(p))
        ds = self.core.store.get(self.rt, *key) or ds
        self.write_status(
            ds,
            {
                "observedGeneration": ds["metadata"].get("generation", 1),
                "desiredNumberScheduled": 1,
                "currentNumberScheduled": min(1, len(pods)),
                "numberMisscheduled": 0,
                "numberReady": ready,
                "updatedNumberScheduled": min(1, len(pods)),
                "numberAvailable": ready,
                "numberUnavailable": 1 - ready,
            },
        )
