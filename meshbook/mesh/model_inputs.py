"""The connectivity model's inputs read from Kubernetes objects (plain dicts as the API serves them).

`meshbook explain` (objects from the official client), the sandbox (objects from its store) and the
widgets' prediction (objects from the rendered manifests) each turn a Service port and a pod behind it
into a `Destination`, and a pod's container into a `PodContainer`. One reading here keeps them agreeing
on what a named targetPort, an appProtocol or a sidecar is. Pure (no client calls): it imports only the
connectivity model, so the sandbox may use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshbook.mesh.connectivity import Destination, PodContainer, sidecar_mode

PROXY = "istio-proxy"


def has_sidecar(pod: Mapping[str, Any]) -> bool:
    """Whether the pod (or pod template) has istio-proxy, as a container or a native-sidecar init container."""
    return sidecar_mode(pod) is not None


def proxy_ready(pod: Mapping[str, Any]) -> bool:
    """Whether the pod's istio-proxy reports ready now: until then its captured traffic finds no Envoy."""
    status = pod.get("status") or {}
    for entry in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if entry.get("name") == PROXY:
            return bool(entry.get("ready"))
    return False


def pod_source(pod: Mapping[str, Any], container: str) -> PodContainer:
    """The model's source for `container` of a live pod, with its proxy's readiness at this moment.

    Raises ValueError (from `PodContainer.from_pod`) when the pod has no such container or its capture
    annotations do not parse.
    """
    return PodContainer.from_pod(pod, container, proxy_ready=proxy_ready(pod))


def service_port(service: Mapping[str, Any], port: int) -> Mapping[str, Any] | None:
    """The Service's `spec.ports` entry for the port clients dial, or None."""
    ports = (service.get("spec") or {}).get("ports") or []
    return next((p for p in ports if p.get("port") == port), None)


def target_port(port_entry: Mapping[str, Any], pod: Mapping[str, Any]) -> int:
    """The pod port a Service port forwards to: a number, or a name looked up among the pod's container ports.

    PeerAuthentication `portLevelMtls` keys name this port, not the Service port. An unknown name falls
    back to the Service port.
    """
    target = port_entry.get("targetPort", port_entry["port"])
    if isinstance(target, int):
        return target
    if str(target).isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for declared in container.get("ports") or []:
            if declared.get("name") == target:
                return int(declared["containerPort"])
    return int(port_entry["port"])


def destination_of_service(
    service: Mapping[str, Any],
    port_entry: Mapping[str, Any],
    pod: Mapping[str, Any],
    *,
    host: str,
    sidecar: bool | None = None,
) -> Destination:
    """The model's Destination for a Service port (`port_entry`, from `service_port`) and one pod behind it.

    `pod` may be a pod template (no name: the Service name stands in, in reasons). `sidecar` overrides
    what the pod shows, for a prediction of a pod not yet injected.
    """
    metadata, pod_metadata = service.get("metadata") or {}, pod.get("metadata") or {}
    name = pod_metadata.get("name")
    return Destination(
        namespace=str(metadata.get("namespace") or ""),
        service=str(metadata.get("name") or ""),
        port=int(port_entry["port"]),
        port_name=str(port_entry.get("name") or ""),
        app_protocol=port_entry.get("appProtocol"),
        target_port=target_port(port_entry, pod),
        pod=str(name) if name else None,
        pod_labels=dict(pod_metadata.get("labels") or {}),
        sidecar=has_sidecar(pod) if sidecar is None else sidecar,
        host=host,
    )
