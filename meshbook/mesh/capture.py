"""Step 1 of the connectivity model: does the source's traffic pass its own Envoy? (FACTS 6)

Pure, like `connectivity`, which re-exports everything here. Rules, each from FACTS 6 unless noted:

- not captured: the kube-apiserver (outside the mesh; istio issues 52874, 34543); a pod without
  istio-proxy; an init container of a classic-sidecar pod (Istio orders istio-init LAST, so app init
  containers run before the iptables rules exist); traffic istio-iptables RETURNs, in its rule order:
  uid 1337 (istio-proxy's own), a dialled port in `traffic.sidecar.istio.io/excludeOutboundPorts`, a
  dialled address in `excludeOutboundIPRanges` or outside `includeOutboundIPRanges` (default `*`).
- captured, no Envoy: an init container of a CNI pod (capture exists before any container runs and the
  proxy is a regular container, started after the init containers), or any captured container whose
  istio-proxy is not ready (main containers race the proxy unless holdApplicationUntilProxyStarts).
- through its own Envoy: a main container with a ready proxy; with native sidecars also the init
  containers, which Istio places after istio-init and istio-proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeAlias

from meshbook.param_enums import SidecarMode
from meshbook.podstatus import sidecar_mode

PROXY_UID = 1337
ANNOTATION_PREFIX = "traffic.sidecar.istio.io/"


class SourceTraffic(StrEnum):
    """The three rows of DESIGN's connectivity table: what happens to the bytes the source sends."""

    THROUGH_ENVOY = "through its Envoy"
    NOT_CAPTURED = "not captured"
    NO_ENVOY = "captured, Envoy not running"


@dataclass(frozen=True)
class KubeApiServer:
    """The kube-apiserver calling a webhook Service: it is outside the mesh (FACTS 6)."""

    def __str__(self) -> str:
        return "kube-apiserver"


@dataclass(frozen=True)
class PodContainer:
    """A container of a pod, at the moment it opens the connection.

    `sidecar_mode` None means the pod has no istio-proxy. `proxy_ready` is whether istio-proxy is ready
    now; it is ignored for init containers of classic and CNI pods, where the proxy cannot run yet. A
    native-mode init container is taken to run after istio-proxy, where Istio places it. The capture
    fields hold the pod's `traffic.sidecar.istio.io/*` annotations; `from_pod` reads them.
    """

    namespace: str
    pod: str
    container: str
    init_container: bool = False
    sidecar_mode: SidecarMode | None = None
    proxy_ready: bool = False
    run_as_user: int | None = None
    exclude_outbound_ports: frozenset[int] = frozenset()
    exclude_outbound_ip_ranges: tuple[str, ...] = ()
    include_outbound_ip_ranges: tuple[str, ...] = ("*",)

    def __post_init__(self) -> None:
        for port in self.exclude_outbound_ports:
            if not 0 < port < 65536:
                raise ValueError(f"{ANNOTATION_PREFIX}excludeOutboundPorts: {port} is not a port")
        for key, ranges in (
            ("excludeOutboundIPRanges", self.exclude_outbound_ip_ranges),
            ("includeOutboundIPRanges", tuple(r for r in self.include_outbound_ip_ranges if r != "*")),
        ):
            for cidr in ranges:
                try:
                    ipaddress.ip_network(cidr, strict=False)
                except ValueError:
                    raise ValueError(f"{ANNOTATION_PREFIX}{key}: {cidr!r} is not an IP range") from None

    @classmethod
    def from_pod(cls, pod: Mapping[str, Any], container: str, *, proxy_ready: bool) -> PodContainer:
        """Read a pod manifest as the API serves it (after Istio's injection).

        Sidecar mode from what the injector left (`sidecar_mode`). runAsUser: the container's, else the pod's.
        """
        metadata, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        inits, mains = spec.get("initContainers") or [], spec.get("containers") or []
        found = [(c, True) for c in inits if c.get("name") == container]
        found += [(c, False) for c in mains if c.get("name") == container]
        if not found:
            raise ValueError(f"pod {metadata.get('namespace')}/{metadata.get('name')} has no container {container}")
        spec_container, is_init = found[0]
        user = (spec_container.get("securityContext") or {}).get("runAsUser")
        if user is None:
            user = (spec.get("securityContext") or {}).get("runAsUser")
        annotations: Mapping[str, str] = metadata.get("annotations") or {}

        def listed(key: str, default: str = "") -> tuple[str, ...]:
            text = annotations.get(ANNOTATION_PREFIX + key, default)
            return tuple(part.strip() for part in text.split(",") if part.strip())

        ports = listed("excludeOutboundPorts")
        if not all(p.isdigit() for p in ports):
            raise ValueError(f"{ANNOTATION_PREFIX}excludeOutboundPorts: {','.join(ports)!r} is not a list of ports")
        return cls(
            namespace=str(metadata.get("namespace", "")),
            pod=str(metadata.get("name", "")),
            container=container,
            init_container=is_init,
            sidecar_mode=sidecar_mode(pod),
            proxy_ready=proxy_ready,
            run_as_user=user,
            exclude_outbound_ports=frozenset(int(p) for p in ports),
            exclude_outbound_ip_ranges=listed("excludeOutboundIPRanges"),
            include_outbound_ip_ranges=listed("includeOutboundIPRanges", "*"),
        )

    def __str__(self) -> str:
        kind = "init container" if self.init_container else "container"
        return f"{self.namespace}/{self.pod} {kind} {self.container}"


Source: TypeAlias = KubeApiServer | PodContainer


def capture(source: Source, port: int, address: str | None = None) -> tuple[SourceTraffic, str]:
    """Where the source's bytes to `port` (and `address`, when known) go, with a clause saying why."""
    if isinstance(source, KubeApiServer):
        return SourceTraffic.NOT_CAPTURED, "source kube-apiserver is outside the mesh"
    who, mode = f"source {source}", source.sidecar_mode
    if mode is None:
        return SourceTraffic.NOT_CAPTURED, f"{who} has no istio-proxy"
    if source.init_container and mode is SidecarMode.CLASSIC:
        return SourceTraffic.NOT_CAPTURED, f"{who} runs before istio-init (classic sidecar)"
    bypass = _capture_bypass(source, port, address)
    if bypass:
        return SourceTraffic.NOT_CAPTURED, f"{who} {bypass}"
    if source.init_container and mode is SidecarMode.CNI:
        return SourceTraffic.NO_ENVOY, f"{who} is captured by Istio CNI before istio-proxy starts (cni sidecar)"
    if not source.proxy_ready:
        return SourceTraffic.NO_ENVOY, f"{who} is captured but istio-proxy is not ready yet ({mode} sidecar)"
    return SourceTraffic.THROUGH_ENVOY, f"{who} goes through its own istio-proxy ({mode} sidecar)"


def _capture_bypass(source: PodContainer, port: int, address: str | None) -> str | None:
    """The istio-iptables RETURN rule that lets this connection out uncaptured, in rule order."""
    if source.run_as_user == PROXY_UID:
        return f"runs as uid {PROXY_UID} (istio-proxy's), which istio-iptables does not capture"
    if port in source.exclude_outbound_ports:
        return f"excludes port {port} from capture ({ANNOTATION_PREFIX}excludeOutboundPorts)"
    if address is None:
        return None  # IP-range annotations cannot apply without the dialled address
    ip = ipaddress.ip_address(address)
    for cidr in source.exclude_outbound_ip_ranges:
        if ip in ipaddress.ip_network(cidr, strict=False):
            return f"excludes {ip} from capture ({ANNOTATION_PREFIX}excludeOutboundIPRanges {cidr})"
    included = source.include_outbound_ip_ranges
    if "*" not in included and not any(ip in ipaddress.ip_network(c, strict=False) for c in included):
        ranges = ",".join(included) or '""'
        return f"captures only {ranges} ({ANNOTATION_PREFIX}includeOutboundIPRanges), not {ip}"
    return None
