"""Who reaches whom in an Istio sidecar mesh, and why: the pure connectivity model.

The sandbox asks it what vault-env and the API server's webhook calls experience; `meshbook explain` and
the widgets ask it to predict. No I/O and no Kubernetes client: it imports the standard library,
`meshbook.params` enums and its siblings `capture` and `peer_authentication` only (whose public names it
re-exports), so the sandbox may import it.

A connection is judged in three steps (DESIGN "The connectivity model"; each rule names its source):

1. Capture at the source (`SourceTraffic`, rules in `meshbook.mesh.capture`, FACTS 6): not captured
   (kube-apiserver, no sidecar, classic init container, uid 1337, excluded port or address), captured
   with no Envoy running (CNI init container, proxy not ready: the redirect to port 15001 finds no
   listener, `connection refused` whatever the destination), or through its own Envoy.
2. The source's Envoy (FACTS 6 "Auto mTLS"): mTLS to a destination with a sidecar, plain text to one
   without, and plain text where the destination workload's mode for that port is DISABLE (istiod checks
   workload and port policies per endpoint: pilot/pkg/xds/endpoints/mtls_checker.go). Exception: a TLS
   client to a port DECLARED HTTP (name prefix or appProtocol http, http2, grpc, grpc-web): since Istio
   1.8 the outbound HTTP filter chains match only `raw_buffer`, so TLS falls to the passthrough chain and
   leaves WITHOUT mTLS (pilot/pkg/networking/core/listener.go), then meets step 3.
   An unnamed or unknown port (`api-port`) is sniffed: TLS is not HTTP, so it is proxied as TCP with
   mTLS and works. Bank-vaults issue 767 (FACTS 5) saw "server gave HTTP response to HTTPS client" on
   `api-port` with Istio 1.4, whose sniffing chains matched the ALPN of the client's TLS ClientHello
   (h2, http/1.1) and fed TLS to the HTTP codec; Istio 1.8 fixed that; the model follows current Istio.
3. The destination's sidecar, for traffic arriving without Istio mTLS:
   - STRICT: plain text matches no filter chain and is reset (`connection reset by peer`); a TLS client
     gets Envoy's TLS handshake with the Istio workload certificate, which has no DNS names, so Go clients
     fail the host name check (`x509: certificate is not valid for any names, ...`: tektoncd/pipeline
     3276, istio 39290, open-telemetry-operator 4097, knative net-istio 150).
   - PERMISSIVE: accepted, except one-way TLS to a port declared HTTP, for which the inbound listener has
     no filter chain (istio pilot/pkg/networking/core/filterchain_options.go): reset.
   - DISABLE: accepted, except TLS to a port declared HTTP, which the HTTP codec answers with a 400:
     `server gave HTTP response to HTTPS client` (minio/operator issue 749).
   A destination without a sidecar enforces nothing: everything that leaves the source arrives.

Not modelled: DestinationRules, Sidecar resources, REGISTRY_ONLY outbound policy, ambient mode, TLS
clients that skip server verification, UDP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from meshbook.mesh.capture import KubeApiServer, PodContainer, Source, SourceTraffic, capture, sidecar_mode
from meshbook.mesh.peer_authentication import (
    NO_POLICY,
    EffectiveMode,
    MtlsResolution,
    PolicyScope,
    effective_mode,
    resolve_mtls,
)
from meshbook.params import PeerAuthenticationMode

__all__ = [
    "NO_POLICY",
    "REFUSED",
    "RESET",
    "TLS_TO_HTTP",
    "Destination",
    "EffectiveMode",
    "KubeApiServer",
    "Mesh",
    "MtlsResolution",
    "PodContainer",
    "PolicyScope",
    "PortProtocol",
    "Source",
    "SourceTraffic",
    "Transport",
    "Verdict",
    "decide",
    "effective_mode",
    "port_protocol",
    "resolve_mtls",
    "sidecar_mode",
    "x509_no_names",
]

RESET = "connection reset by peer"
REFUSED = "connection refused"
TLS_TO_HTTP = "server gave HTTP response to HTTPS client"


def x509_no_names(host: str) -> str:
    """What a Go TLS client says when Envoy answers with an Istio workload certificate (SPIFFE URI only)."""
    return (
        f"tls: failed to verify certificate: x509: certificate is not valid for any names, but wanted to match {host}"
    )


class Transport(StrEnum):
    """How the bytes travel between the pods when the connection succeeds."""

    MTLS = "mtls"
    PLAIN = "plain"  # not Istio mTLS; the client's own TLS, if any, is untouched
    NONE = "none"  # refused


class PortProtocol(StrEnum):
    """Istio's protocol of a Service port (istio pkg/config/protocol); AUTO means sniffed."""

    HTTP = "HTTP"
    HTTP2 = "HTTP2"
    HTTP_PROXY = "HTTP_PROXY"
    GRPC = "GRPC"
    GRPC_WEB = "GRPC-Web"
    HTTPS = "HTTPS"
    TLS = "TLS"
    TCP = "TCP"
    UDP = "UDP"
    MONGO = "Mongo"
    REDIS = "Redis"
    MYSQL = "MySQL"
    AUTO = "auto-detect"

    @property
    def is_http(self) -> bool:
        return self in _HTTP_FAMILY


_HTTP_FAMILY = frozenset(
    {PortProtocol.HTTP, PortProtocol.HTTP2, PortProtocol.HTTP_PROXY, PortProtocol.GRPC, PortProtocol.GRPC_WEB}
)
_BY_NAME = {p.value.lower(): p for p in PortProtocol if p is not PortProtocol.AUTO}
_K8S_APP_PROTOCOLS = {
    "kubernetes.io/h2c": PortProtocol.HTTP2,
    "kubernetes.io/ws": PortProtocol.HTTP,
    "kubernetes.io/wss": PortProtocol.HTTPS,
}
_WELL_KNOWN_TCP_PORTS = frozenset({25, 53, 3306, 27017})  # never sniffed (server-first protocols)


def port_protocol(port_name: str, app_protocol: str | None = None, port: int = 0) -> PortProtocol:
    """Istio's protocol selection: appProtocol, else the `<protocol>[-suffix]` port name, else sniffing.

    Mirrors istio pkg/config/kube/conversion.go `ConvertProtocol` (case-insensitive prefix).
    """
    name = port_name
    if app_protocol is not None:
        if app_protocol in _K8S_APP_PROTOCOLS:
            return _K8S_APP_PROTOCOLS[app_protocol]
        name = app_protocol
    if name[:8].lower() == "grpc-web":
        return PortProtocol.GRPC_WEB
    protocol = _BY_NAME.get(name.split("-", 1)[0].lower())
    if protocol is None:
        return PortProtocol.TCP if port in _WELL_KNOWN_TCP_PORTS else PortProtocol.AUTO
    return protocol


@dataclass(frozen=True)
class Destination:
    """A Service port and the pods behind it.

    `port` is the Service port the client dials (capture exclusions match it); `target_port` (default:
    `port`) is the workload port that PeerAuthentication `portLevelMtls` keys name. `pod` names the
    workload in reasons (the Service name stands in when absent). `address` is the dialled IP, needed only
    for IP-range exclusions; `host` the dialled name (default `<service>.<namespace>.svc`, the API
    server's form; vault-env dials what `vault-addr` says, e.g. `vault.vault`).
    """

    namespace: str
    service: str
    port: int
    port_name: str = ""
    app_protocol: str | None = None
    target_port: int | None = None
    pod: str | None = None
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    sidecar: bool = False
    address: str | None = None
    host: str | None = None

    @property
    def workload_port(self) -> int:
        return self.port if self.target_port is None else self.target_port

    @property
    def protocol(self) -> PortProtocol:
        return port_protocol(self.port_name, self.app_protocol, self.port)

    @property
    def dialled_host(self) -> str:
        return self.host or f"{self.service}.{self.namespace}.svc"

    @property
    def workload(self) -> str:
        return f"{self.namespace}/{self.pod or self.service}"


@dataclass(frozen=True)
class Mesh:
    """Cluster-wide Istio state: the PeerAuthentication objects (API dicts) and the root namespace."""

    peer_authentications: Sequence[Mapping[str, Any]] = ()
    root_namespace: str = "istio-system"
    istio_version: tuple[int, int] = (1, 30)
    """Before 1.8 Istio's sniffing fed a TLS client's traffic on an unnamed port to the HTTP codec."""

    @property
    def legacy_sniffing(self) -> bool:
        return self.istio_version < (1, 8)


@dataclass(frozen=True)
class Verdict:
    """The outcome of one connection attempt; `failure` is what the client reports, `reason` is one line.

    `mode`, `deciding_object` and `scope` are the PeerAuthentication outcome for the destination port,
    reported even when the destination has no sidecar to enforce it.
    """

    allowed: bool
    failure: str | None
    transport: Transport
    mode: PeerAuthenticationMode
    deciding_object: str
    scope: PolicyScope
    source_traffic: SourceTraffic
    protocol: PortProtocol
    reason: str


def decide(source: Source, destination: Destination, mesh: Mesh | None = None, *, client_tls: bool = True) -> Verdict:
    """Whether `source` can connect to `destination`; `client_tls` says the client speaks TLS itself.

    vault-env speaks HTTPS to Vault and the API server HTTPS to webhooks, hence the default.
    """
    mesh = mesh or Mesh()
    port = destination.workload_port
    resolution = resolve_mtls(
        mesh.peer_authentications, mesh.root_namespace, destination.namespace, destination.pod_labels, port
    )
    traffic, source_clause = capture(source, destination.port, destination.address)
    protocol = destination.protocol

    def verdict(failure: str | None, transport: Transport, reason: str) -> Verdict:
        return Verdict(
            allowed=failure is None,
            failure=failure,
            transport=transport,
            mode=resolution.mode,
            deciding_object=resolution.deciding_object,
            scope=resolution.scope,
            source_traffic=traffic,
            protocol=protocol,
            reason=reason,
        )

    target = f"{destination.namespace}/{destination.service}:{destination.port}"
    if traffic is SourceTraffic.NO_ENVOY:
        return verdict(REFUSED, Transport.NONE, f"{source_clause}, so its connection to {target} is refused")
    if not destination.sidecar:
        how = "auto mTLS sends plain text" if traffic is SourceTraffic.THROUGH_ENVOY else "it connects directly"
        return verdict(
            None,
            Transport.PLAIN,
            f"{destination.workload} has no istio-proxy, so no PeerAuthentication is enforced on port {port}; "
            f"{source_clause}, so {how} and is accepted",
        )

    policy_clause = _policy_clause(resolution, destination)
    mode = resolution.mode
    tls_to_http = client_tls and protocol.is_http
    if traffic is SourceTraffic.THROUGH_ENVOY:
        if mode is PeerAuthenticationMode.DISABLE:
            source_clause += ", so auto mTLS sends plain text"
        elif tls_to_http:
            source_clause += (
                f", but {_port_label(destination)} is declared {protocol.value} and the client speaks TLS,"
                " so Envoy passes it through without mTLS"
            )
        elif client_tls and protocol is PortProtocol.AUTO and mesh.legacy_sniffing:
            # FACTS 5 / bank-vaults issue 767: Istio < 1.8 matched the ClientHello's ALPN (h2, http/1.1) in its
            # sniffing chain and handed the TLS bytes to the HTTP codec, which answered in plain HTTP.
            version = ".".join(map(str, mesh.istio_version))
            return verdict(
                TLS_TO_HTTP,
                Transport.NONE,
                f"{policy_clause}; {source_clause}, but Istio {version} (before 1.8) sniffs {_port_label(destination)}"
                " as HTTP and the client speaks TLS, so the sidecar answers in plain HTTP (name the port https-*)",
            )
        else:
            return verdict(None, Transport.MTLS, f"{policy_clause}; {source_clause}, so it uses mTLS")
    failure, consequence = _inbound_plain(mode, client_tls, tls_to_http, destination)
    joiner = " and " if ", so " in source_clause else ", so "
    reason = f"{policy_clause}; {source_clause}{joiner}{consequence}"
    return verdict(failure, Transport.NONE if failure else Transport.PLAIN, reason)


def _inbound_plain(
    mode: PeerAuthenticationMode, client_tls: bool, tls_to_http: bool, destination: Destination
) -> tuple[str | None, str]:
    """Step 3: the destination sidecar's answer to traffic without Istio mTLS: (failure, consequence)."""
    if mode is PeerAuthenticationMode.STRICT and client_tls:
        return (
            x509_no_names(destination.dialled_host),
            "the sidecar answers its TLS with the Istio workload certificate, which fails the client's check",
        )
    if mode is PeerAuthenticationMode.STRICT:
        return RESET, "its traffic is plain text and is reset"
    if tls_to_http and mode is PeerAuthenticationMode.PERMISSIVE:
        return RESET, f"one-way TLS matches no filter chain of HTTP {_port_label(destination)} and is reset"
    if tls_to_http:
        return TLS_TO_HTTP, f"the sidecar reads its TLS as HTTP on {_port_label(destination)} and answers 400"
    return None, f"{mode.value} accepts it without mTLS"


def _policy_clause(resolution: MtlsResolution, destination: Destination) -> str:
    where = f"{destination.workload}:{destination.workload_port}"
    if resolution.scope is PolicyScope.DEFAULT:
        clause = f"no PeerAuthentication applies to {where} (PERMISSIVE by default)"
    elif resolution.scope is PolicyScope.PORT:
        clause = (
            f"{resolution.deciding_object} portLevelMtls {destination.workload_port} {resolution.mode.value}"
            f" applies to {where}"
        )
    else:
        clause = f"{resolution.deciding_object} {resolution.mode.value} applies to {where}"
    return f"{clause} ({'; '.join(resolution.notes)})" if resolution.notes else clause


def _port_label(destination: Destination) -> str:
    if destination.app_protocol is not None:
        return f"port {destination.port} (appProtocol {destination.app_protocol})"
    return f"port {destination.port_name}" if destination.port_name else f"port {destination.port}"
