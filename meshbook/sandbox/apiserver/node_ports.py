"""NodePort allocation for Services of type NodePort and LoadBalancer, from 30000-32767.

Like the ClusterIP allocator (`cluster_ips.py`): taken ports are read from the stored Services, a port
without a requested nodePort gets one derived from the Service's key and port in the upper part of the
range (the lower band is left to requested ports, as the static subrange does), an update keeps the
nodePorts already given, and a Service that becomes ClusterIP or ExternalName gives them back. The
type-dependent defaults (`externalTrafficPolicy`, `allocateLoadBalancerNodePorts`) are filled here too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from meshbook.sandbox.apiserver.cluster_ips import service_field_invalid
from meshbook.sandbox.storage.resources import ResourceType
from meshbook.sandbox.storage.store import Object, Store, StoreError

FIRST_PORT, LAST_PORT = 30000, 32767
_SIZE = LAST_PORT - FIRST_PORT + 1
_STATIC_BAND = min(max(16, _SIZE // 32), 128)  # kube-apiserver's static subrange of the node ports
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


class NodePortAllocator:
    """Fills `spec.ports[*].nodePort` of NodePort and LoadBalancer Services on create and update."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _taken(self, rt: ResourceType, owner: tuple[str, str]) -> set[int]:
        taken: set[int] = set()
        for svc in self.store.list(rt):
            meta = svc["metadata"]
            if (meta.get("namespace", ""), meta["name"]) != owner:
                taken.update(p["nodePort"] for p in (svc.get("spec") or {}).get("ports") or [] if p.get("nodePort"))
        return taken

    @staticmethod
    def _candidates(owner: tuple[str, str], port: Any) -> Iterator[int]:
        upper = _SIZE - _STATIC_BAND
        seed = f"{owner[0]}/{owner[1]}/{port}".encode()
        start = int.from_bytes(hashlib.sha256(seed).digest()[:8], "big") % upper
        for step in range(upper):
            yield FIRST_PORT + _STATIC_BAND + (start + step) % upper
        yield from range(FIRST_PORT, FIRST_PORT + _STATIC_BAND)

    def allocate(self, rt: ResourceType, obj: Object, old: Object | None) -> None:
        """Give `obj`'s ports their nodePorts (in place), or raise 422 as kube-apiserver words it."""
        spec: dict[str, Any] = obj.setdefault("spec", {})
        ports: list[dict[str, Any]] = spec.get("ports") or []
        kind = spec.get("type", "ClusterIP")
        if kind not in NODE_PORT_TYPES:
            for port in ports:
                port.pop("nodePort", None)
            return
        spec.setdefault("externalTrafficPolicy", "Cluster")
        if kind == "LoadBalancer" and not spec.setdefault("allocateLoadBalancerNodePorts", True):
            return
        meta = obj["metadata"]
        owner = (meta.get("namespace", ""), meta["name"])
        previous = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in _ports(old)}
        taken = self._taken(rt, owner)  # the Service's own ports are not in it: an update keeps them
        for i, port in enumerate(ports):
            wanted = port.get("nodePort") or previous.get((port.get("port"), port.get("protocol", "TCP")))
            where = f"spec.ports[{i}].nodePort"
            if wanted:
                if not isinstance(wanted, int) or not FIRST_PORT <= wanted <= LAST_PORT:
                    raise service_field_invalid(
                        owner[1],
                        where,
                        wanted,
                        "provided port is not in the valid range. "
                        f"The range of valid ports is {FIRST_PORT}-{LAST_PORT}",
                    )
                if wanted in taken:
                    raise service_field_invalid(owner[1], where, wanted, "provided port is already allocated")
            else:
                wanted = next((p for p in self._candidates(owner, port.get("port")) if p not in taken), None)
                if wanted is None:
                    raise StoreError(
                        "InternalError",
                        500,
                        "Internal error occurred: failed to allocate a nodePort: range is full",
                    )
            port["nodePort"] = wanted
            taken.add(wanted)


def _ports(obj: Object | None) -> list[dict[str, Any]]:
    spec = (obj or {}).get("spec") or {}
    return list(spec.get("ports") or []) if spec.get("type") in NODE_PORT_TYPES else []
