"""The sandbox's objects seen as connectivity-model inputs: who is calling whom, through which mesh.

Builds `Source`/`Destination`/`Mesh` for the pure model (`meshbook.mesh.connectivity`, objects read by
`meshbook.mesh.model_inputs` as explain and the widgets read them) from the store
at the moment of a connection: the caller's live pod status (is its istio-proxy ready yet?), the
Service port and its name, the ready pods behind it and their sidecars, the PeerAuthentications in
force. Also finds where a connection that is allowed really goes: the process backing the pod port.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshbook.mesh.connectivity import REFUSED, RESET, Destination, KubeApiServer, Mesh, decide
from meshbook.mesh.model_inputs import destination_of_service, pod_source, service_port
from meshbook.sandbox.addons.webhooks import Reachability
from meshbook.sandbox.apiserver.verbs import ApiCore
from meshbook.sandbox.config import NODE_IP
from meshbook.sandbox.node.containers import ContainerContext
from meshbook.sandbox.node.services import PodNetwork
from meshbook.sandbox.storage.store import Object

ROOT_NAMESPACE = "istio-system"


@dataclass(frozen=True)
class Unreachable:
    """A connection that fails before the mesh matters (no Service, no ready endpoint)."""

    failure: str
    reason: str
    allowed: bool = False


def _rt(core: ApiCore, group: str, version: str, plural: str) -> Any:
    rt = core.registry.lookup(group, version, plural)
    assert rt is not None, plural
    return rt


def peer_authentications(core: ApiCore) -> list[Object]:
    for version in ("v1", "v1beta1"):
        rt = core.registry.lookup("security.istio.io", version, "peerauthentications")
        if rt is not None:
            return list(core.store.list(rt))
    return []


def istio_version(core: ApiCore) -> tuple[int, int]:
    """The installed Istio's minor version, from istiod's image tag (default: current)."""
    rt = core.registry.lookup("apps", "v1", "deployments")
    istiod = core.store.get(rt, ROOT_NAMESPACE, "istiod") if rt else None
    for container in (istiod or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
        tag = str(container.get("image", "")).rsplit(":", 1)[-1]
        parts = tag.split(".")
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            return int(parts[0]), int(parts[1])
    return (1, 30)


def mesh_of(core: ApiCore) -> Mesh:
    return Mesh(peer_authentications(core), ROOT_NAMESPACE, istio_version(core))


def _ready(pod: Mapping[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


@dataclass(frozen=True)
class ServiceTarget:
    destination: Destination
    pod: Object
    target_port: int


def service_target(core: ApiCore, namespace: str, name: str, port: int, host: str) -> ServiceTarget | Unreachable:
    """The Service port and a ready pod behind it, as the model's Destination."""
    service = core.store.get(_rt(core, "", "v1", "services"), namespace, name)
    if service is None:
        return Unreachable(f"dial tcp: lookup {host}: no such host", f"Service {namespace}/{name} does not exist")
    entry = service_port(service, port)
    if entry is None:
        return Unreachable(REFUSED, f"Service {namespace}/{name} has no port {port}")
    selector = service["spec"].get("selector") or {}
    pods = [
        p
        for p in core.store.list(_rt(core, "", "v1", "pods"), namespace)
        if selector
        and all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
        and _ready(p)
        and not p["metadata"].get("deletionTimestamp")
    ]
    if not pods:
        return Unreachable(REFUSED, f"Service {namespace}/{name} has no ready endpoints")
    destination = destination_of_service(service, entry, pods[0], host=host)
    return ServiceTarget(destination, pods[0], destination.workload_port)


def split_host(host: str, default_namespace: str) -> tuple[str, str]:
    """`vault`, `vault.vault`, `vault.vault.svc[.cluster.local]` -> (service, namespace)."""
    parts = host.split(".")
    if len(parts) == 1:
        return parts[0], default_namespace
    return parts[0], parts[1]


def judge_from_pod(ctx: ContainerContext, host: str, port: int) -> tuple[Any, tuple[str, int] | None]:
    """The verdict for a connection from this container to `host:port` now, and where it lands."""
    return judge_connection(ctx.services.core, ctx.services.network, ctx.pod, ctx.container["name"], host, port)


def judge_connection(
    core: ApiCore, network: PodNetwork, pod: Mapping[str, Any], container: str, host: str, port: int
) -> tuple[Any, tuple[str, int] | None]:
    """The verdict for a connection from `container` of `pod` to `host:port` now, and where it lands."""
    meta = pod["metadata"]
    live = core.store.get(_rt(core, "", "v1", "pods"), meta["namespace"], meta["name"]) or dict(pod)
    service, namespace = split_host(host, meta["namespace"])
    target = service_target(core, namespace, service, port, host)
    if isinstance(target, Unreachable):
        return target, None
    source = pod_source(live, container)
    verdict = decide(source, target.destination, mesh_of(core))
    if not verdict.allowed:
        return verdict, None
    backend = network.backing_address(target.pod["metadata"]["uid"], target.target_port)
    if backend is None:
        return Unreachable(
            REFUSED, f"nothing listens on {namespace}/{target.pod['metadata']['name']}:{target.target_port}"
        ), None
    return verdict, backend


def judge_webhook_call(core: ApiCore, namespace: str, name: str, port: int) -> Reachability:
    """Can the kube-apiserver reach this webhook Service now? With the error text it would log."""
    host = f"{name}.{namespace}.svc"
    service = core.store.get(_rt(core, "", "v1", "services"), namespace, name)
    if service is None:
        return Reachability(False, f'service "{name}" not found')
    target = service_target(core, namespace, name, port, host)
    if isinstance(target, Unreachable):
        if target.failure == REFUSED and "no ready endpoints" in target.reason:
            return Reachability(False, f'no endpoints available for service "{name}"')
        return Reachability(False, target.failure)
    verdict = decide(KubeApiServer(), target.destination, mesh_of(core))
    if verdict.allowed:
        return Reachability(True)
    pod_ip = target.pod.get("status", {}).get("podIP", "10.244.0.1")
    if verdict.failure == RESET:
        return Reachability(False, f"read tcp {NODE_IP}:48862->{pod_ip}:{target.target_port}: read: {RESET}")
    return Reachability(False, str(verdict.failure))
