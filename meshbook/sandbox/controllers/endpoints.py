"""Endpoints for Services with a selector: ready pod addresses, not-ready ones apart."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from meshbook.sandbox.apiserver.selectors import label_selector_from_dict
from meshbook.sandbox.controllers.base import Controller, Key
from meshbook.sandbox.controllers.workloads import pod_ready
from meshbook.sandbox.storage.store import Object, WatchEvent


def _target_port(service_port: dict[str, Any], pod: Object) -> int | None:
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in pod["spec"].get("containers", []):
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port["containerPort"])
    return None


class EndpointsController(Controller):
    name = "endpoints"

    def keys_for(self, event: WatchEvent) -> Iterable[Key]:
        if event.rt_key == "/services":
            yield (event.object["metadata"]["namespace"], event.object["metadata"]["name"])
        elif event.rt_key == "/pods":
            ns = event.object["metadata"]["namespace"]
            labels = event.object["metadata"].get("labels") or {}
            old_labels = (event.old or {}).get("metadata", {}).get("labels") or {}
            svc_rt = self.core.registry.lookup("", "v1", "services")
            assert svc_rt is not None
            for svc in self.core.store.list(svc_rt, ns):
                selector = svc["spec"].get("selector")
                if selector and (_matches(selector, labels) or _matches(selector, old_labels)):
                    yield (ns, svc["metadata"]["name"])

    def initial_keys(self) -> Iterable[Key]:
        svc_rt = self.core.registry.lookup("", "v1", "services")
        assert svc_rt is not None
        for svc in self.core.store.list(svc_rt):
            yield (svc["metadata"]["namespace"], svc["metadata"]["name"])

    async def reconcile(self, key: Key) -> None:
        svc_rt = self.core.registry.lookup("", "v1", "services")
        ep_rt = self.core.registry.lookup("", "v1", "endpoints")
        pods_rt = self.core.registry.lookup("", "v1", "pods")
        assert svc_rt and ep_rt and pods_rt
        svc = self.core.store.get(svc_rt, *key)
        existing = self.core.store.get(ep_rt, *key)
        if svc is None:
            if existing is not None:
                self.core.store.delete(ep_rt, *key)
            return
        selector = svc["spec"].get("selector")
        if not selector:
            return  # endpoints of selector-less services are managed by their users
        pods = [
            p
            for p in self.core.store.list(pods_rt, key[0])
            if _matches(selector, p["metadata"].get("labels") or {})
            and p.get("status", {}).get("podIP")
            and not p["metadata"].get("deletionTimestamp")
        ]
        subsets: list[dict[str, Any]] = []
        ports = svc["spec"].get("ports") or []
        if pods and ports:
            ready: list[dict[str, Any]] = []
            not_ready: list[dict[str, Any]] = []
            for pod in pods:
                address = {
                    "ip": pod["status"]["podIP"],
                    "nodeName": pod["spec"].get("nodeName"),
                    "targetRef": {
                        "kind": "Pod",
                        "namespace": key[0],
                        "name": pod["metadata"]["name"],
                        "uid": pod["metadata"]["uid"],
                    },
                }
                (ready if pod_ready(pod) else not_ready).append(address)
            subset: dict[str, Any] = {
                "ports": [
                    {
                        k: v
                        for k, v in {
                            "name": p.get("name"),
                            "port": _target_port(p, pods[0]),
                            "protocol": p.get("protocol", "TCP"),
                        }.items()
                        if v is not None
                    }
                    for p in ports
                ]
            }
            if ready:
                subset["addresses"] = ready
            if not_ready:
                subset["notReadyAddresses"] = not_ready
            subsets.append(subset)
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": key[1],
                "namespace": key[0],
                "labels": dict(svc["metadata"].get("labels") or {}),
            },
        }
        if subsets:
            body["subsets"] = subsets
        if existing is None:
            self.core.store.create(ep_rt, body)
        elif existing.get("subsets") != body.get("subsets"):
            body["metadata"] = {**existing["metadata"]}
            self.core.store.update(ep_rt, body)


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return label_selector_from_dict({"matchLabels": selector}).matches(labels)
