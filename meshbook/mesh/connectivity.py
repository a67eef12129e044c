"""Who reaches whom in an Istio sidecar mesh, and why: the pure connectivity model.

The sandbox asks it what vault-env and the API server's webhook calls experience; `meshbook explain` and
the widgets ask it to predict. No I/O and no Kubernetes client: it imports the standard library,
`meshbook.param_enums` and its siblings `capture` and `peer_authentication` only (whose public names it
re-exports), so the sandbox may import it.

DESIGN's 3x3 table is data here (`DECISION_TABLE`: the source's row, the destination's column -> a
`Cell`); `decide` finds the row (step 1), lets the refinements of step 2 move a row, looks the cell up,
and applies the refinements of steps 2 and 3 that depend on the port's protocol. Reasons are assembled
from parts (`_Reason`). The rules, each naming its source:

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
   (h2, http/1.1) and fed TLS to the HTTP codec; Istio 1.8 fixed that; the model follows current Istio unless
   `Mesh.istio_version` says older (`_legacy_sniffing`).
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
from types import MappingProxyType
from typing import Any

from meshbook.mesh.capture import KubeApiServer, PodContainer, Source, SourceTraffic, capture
from meshbook.mesh.peer_authentication import (
    NO_POLICY,
    EffectiveMode,
    MtlsResolution,
    PolicyScope,
    effective_mode,
    resolve_mtls,
)
from meshbook.mesh.protocols import PortProtocol, port_protocol
from meshbook.param_enums import PeerAuthenticationMode
from meshbook.podstatus import sidecar_mode

__all__ = [
    "DECISION_TABLE",
    "NO_POLICY",
    "REFUSED",
    "RESET",
    "TLS_TO_HTTP",
    "Cell",
    "CellOutcome",
    "Destination",
    "DestinationClass",
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
    "destination_class",
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


class DestinationClass(StrEnum):
    """The three columns of DESIGN's connectivity table: what receives the connection at the destination."""

    STRICT_SIDECAR = "sidecar, mode STRICT"
    PLAIN_ACCEPTING_SIDECAR = "sidecar, PERMISSIVE or DISABLE"
    NO_SIDECAR = "no sidecar"


def destination_class(destination: Destination, mode: PeerAuthenticationMode) -> DestinationClass:
    """The column of `destination` whose effective mode for the dialled port is `mode`."""
    if not destination.sidecar:
        return DestinationClass.NO_SIDECAR
    if mode is PeerAuthenticationMode.STRICT:
        return DestinationClass.STRICT_SIDECAR
    return DestinationClass.PLAIN_ACCEPTING_SIDECAR


class CellOutcome(StrEnum):
    """What a cell of DESIGN's table says, before the refinements."""

    MTLS = "allowed (mTLS)"
    PLAIN = "allowed (plain)"
    MTLS_REQUIRED = "refused: mTLS required"  # a TLS client fails the certificate check, plain text is reset
    NO_LISTENER = "refused: connection refused"  # the redirect to port 15001 finds no Envoy


@dataclass(frozen=True)
class Cell:
    """One cell: its outcome and the words that follow `<why the source is in its row>, so ...`.

    `{mode}` (the effective mode) and `{target}` (`namespace/service:port`) are filled in. A
    MTLS_REQUIRED cell has none: what follows depends on whether the client speaks TLS (`_mtls_required`).
    """

    outcome: CellOutcome
    consequence: str = ""


_TO_NOWHERE = Cell(CellOutcome.NO_LISTENER, "its connection to {target} is refused")
DECISION_TABLE: Mapping[tuple[SourceTraffic, DestinationClass], Cell] = MappingProxyType(
    {
        (SourceTraffic.THROUGH_ENVOY, DestinationClass.STRICT_SIDECAR): Cell(CellOutcome.MTLS, "it uses mTLS"),
        (SourceTraffic.THROUGH_ENVOY, DestinationClass.PLAIN_ACCEPTING_SIDECAR): Cell(CellOutcome.MTLS, "it uses mTLS"),
        (SourceTraffic.THROUGH_ENVOY, DestinationClass.NO_SIDECAR): Cell(
            CellOutcome.PLAIN, "auto mTLS sends plain text and is accepted"
        ),
        (SourceTraffic.NOT_CAPTURED, DestinationClass.STRICT_SIDECAR): Cell(CellOutcome.MTLS_REQUIRED),
        (SourceTraffic.NOT_CAPTURED, DestinationClass.PLAIN_ACCEPTING_SIDECAR): Cell(
            CellOutcome.PLAIN, "{mode} accepts it without mTLS"
        ),
        (SourceTraffic.NOT_CAPTURED, DestinationClass.NO_SIDECAR): Cell(
            CellOutcome.PLAIN, "it connects directly and is accepted"
        ),
        (SourceTraffic.NO_ENVOY, DestinationClass.STRICT_SIDECAR): _TO_NOWHERE,
        (SourceTraffic.NO_ENVOY, DestinationClass.PLAIN_ACCEPTING_SIDECAR): _TO_NOWHERE,
        (SourceTraffic.NO_ENVOY, DestinationClass.NO_SIDECAR): _TO_NOWHERE,
    }
)
"""DESIGN "The connectivity model": (source's traffic, destination) -> outcome. `decide` looks it up."""

_TRANSPORT = {
    CellOutcome.MTLS: Transport.MTLS,
    CellOutcome.PLAIN: Transport.PLAIN,
    CellOutcome.MTLS_REQUIRED: Transport.NONE,
    CellOutcome.NO_LISTENER: Transport.NONE,
}


@dataclass(frozen=True)
class _Outcome:
    """A connection's outcome and the words after the source clause (`connector` joins them)."""

    failure: str | None
    transport: Transport
    consequence: str
    connector: str | None = None  # None: the usual ", so "


@dataclass(frozen=True)
class _Reason:
    """A verdict's one line, in parts: what decides at the destination, why the source is in its row, what follows.

    `decision` is e.g. `PeerAuthentication istio-system/default STRICT applies to vault/vault-0:8200` (absent
    when the connection never reaches the destination); `source` e.g. `source app/app-x init container
    init-ubuntu runs before istio-init (classic sidecar)`.
    """

    decision: str | None
    source: str
    connector: str
    consequence: str

    def __str__(self) -> str:
        head = f"{self.decision}; " if self.decision else ""
        return f"{head}{self.source}{self.connector}{self.consequence}"


def decide(source: Source, destination: Destination, mesh: Mesh | None = None, *, client_tls: bool = True) -> Verdict:
    """Whether `source` can connect to `destination`; `client_tls` says the client speaks TLS itself.

    vault-env speaks HTTPS to Vault and the API server HTTPS to webhooks, hence the default. Steps: the
    source's row (`capture`), Envoy forwarding without mTLS (`_envoy_without_mtls`), the table lookup,
    then the port-protocol refinements (`_tls_to_declared_http_port`, `_legacy_sniffing`).
    """
    mesh = mesh or Mesh()
    resolution = resolve_mtls(
        mesh.peer_authentications,
        mesh.root_namespace,
        destination.namespace,
        destination.pod_labels,
        destination.workload_port,
    )
    traffic, source_clause = capture(source, destination.port, destination.address)
    column = destination_class(destination, resolution.mode)
    row = traffic
    forwarded_plain = _envoy_without_mtls(traffic, column, resolution.mode, client_tls, destination)
    if forwarded_plain is not None:
        # The source's Envoy forwards the bytes as they are: they arrive as an uncaptured client's would.
        row, source_clause = SourceTraffic.NOT_CAPTURED, source_clause + forwarded_plain
    cell = DECISION_TABLE[row, column]
    outcome = (
        _tls_to_declared_http_port(cell, column, resolution.mode, client_tls, destination)
        or _legacy_sniffing(cell, client_tls, destination, mesh)
        or _cell_outcome(cell, resolution.mode, client_tls, destination)
    )
    reason = _Reason(
        decision=None if cell.outcome is CellOutcome.NO_LISTENER else _decision(column, resolution, destination),
        source=source_clause,
        # The forwarding clause already says "so ...": the consequence follows with "and".
        connector=outcome.connector or (" and " if forwarded_plain else ", so "),
        consequence=outcome.consequence,
    )
    return Verdict(
        allowed=outcome.failure is None,
        failure=outcome.failure,
        transport=outcome.transport,
        mode=resolution.mode,
        deciding_object=resolution.deciding_object,
        scope=resolution.scope,
        source_traffic=traffic,
        protocol=destination.protocol,
        reason=str(reason),
    )


def _cell_outcome(cell: Cell, mode: PeerAuthenticationMode, client_tls: bool, destination: Destination) -> _Outcome:
    """The table's answer, unrefined."""
    if cell.outcome is CellOutcome.MTLS_REQUIRED:
        return _mtls_required(client_tls, destination)
    target = f"{destination.namespace}/{destination.service}:{destination.port}"
    failure = REFUSED if cell.outcome is CellOutcome.NO_LISTENER else None
    return _Outcome(failure, _TRANSPORT[cell.outcome], cell.consequence.format(mode=mode.value, target=target))


def _mtls_required(client_tls: bool, destination: Destination) -> _Outcome:
    """A STRICT sidecar meets traffic without Istio mTLS: a TLS client gets the workload certificate."""
    if client_tls:
        return _Outcome(
            x509_no_names(destination.dialled_host),
            Transport.NONE,
            "the sidecar answers its TLS with the Istio workload certificate, which fails the client's check",
        )
    return _Outcome(RESET, Transport.NONE, "its traffic is plain text and is reset")


def _speaks_tls_to_declared_http(client_tls: bool, destination: Destination) -> bool:
    return client_tls and destination.protocol.is_http


def _envoy_without_mtls(
    traffic: SourceTraffic,
    column: DestinationClass,
    mode: PeerAuthenticationMode,
    client_tls: bool,
    destination: Destination,
) -> str | None:
    """Before the lookup: why the source's own Envoy sends to a sidecar without mTLS (None: it uses mTLS).

    Auto mTLS sends plain text to a DISABLE workload port; a TLS client to a port declared HTTP falls to
    the passthrough chain. A destination without a sidecar gets plain text anyway (its own cell).
    """
    if traffic is not SourceTraffic.THROUGH_ENVOY or column is DestinationClass.NO_SIDECAR:
        return None
    if mode is PeerAuthenticationMode.DISABLE:
        return ", so auto mTLS sends plain text"
    if _speaks_tls_to_declared_http(client_tls, destination):
        return (
            f", but {_port_label(destination)} is declared {destination.protocol.value} and the client speaks TLS,"
            " so Envoy passes it through without mTLS"
        )
    return None


def _tls_to_declared_http_port(
    cell: Cell, column: DestinationClass, mode: PeerAuthenticationMode, client_tls: bool, destination: Destination
) -> _Outcome | None:
    """After the lookup: one-way TLS reaching a PERMISSIVE or DISABLE sidecar on a port declared HTTP."""
    if cell.outcome is not CellOutcome.PLAIN or column is not DestinationClass.PLAIN_ACCEPTING_SIDECAR:
        return None
    if not _speaks_tls_to_declared_http(client_tls, destination):
        return None
    port = _port_label(destination)
    if mode is PeerAuthenticationMode.PERMISSIVE:
        return _Outcome(RESET, Transport.NONE, f"one-way TLS matches no filter chain of HTTP {port} and is reset")
    return _Outcome(TLS_TO_HTTP, Transport.NONE, f"the sidecar reads its TLS as HTTP on {port} and answers 400")


def _legacy_sniffing(cell: Cell, client_tls: bool, destination: Destination, mesh: Mesh) -> _Outcome | None:
    """After the lookup: Istio before 1.8 sniffed a TLS client on an unnamed port as HTTP (FACTS 5, bank-vaults 767).

    Its sniffing chain matched the ClientHello's ALPN (h2, http/1.1) and handed the TLS bytes to the HTTP
    codec, which answered in plain HTTP.
    """
    if cell.outcome is not CellOutcome.MTLS or not client_tls or not mesh.legacy_sniffing:
        return None
    if destination.protocol is not PortProtocol.AUTO:
        return None
    version = ".".join(map(str, mesh.istio_version))
    return _Outcome(
        TLS_TO_HTTP,
        Transport.NONE,
        f"Istio {version} (before 1.8) sniffs {_port_label(destination)} as HTTP and the client speaks TLS,"
        " so the sidecar answers in plain HTTP (name the port https-*)",
        connector=", but ",
    )


def _decision(column: DestinationClass, resolution: MtlsResolution, destination: Destination) -> str:
    """What decides at the destination, and what it applies to."""
    if column is DestinationClass.NO_SIDECAR:
        return (
            f"{destination.workload} has no istio-proxy, so no PeerAuthentication is enforced on port "
            f"{destination.workload_port}"
        )
    applies_to = f"{destination.workload}:{destination.workload_port}"
    if resolution.scope is PolicyScope.DEFAULT:
        clause = f"no PeerAuthentication applies to {applies_to} (PERMISSIVE by default)"
    else:
        clause = f"{_deciding_policy(resolution, destination)} applies to {applies_to}"
    return f"{clause} ({'; '.join(resolution.notes)})" if resolution.notes else clause


def _deciding_policy(resolution: MtlsResolution, destination: Destination) -> str:
    """The deciding object and its mode, e.g. `PeerAuthentication istio-system/default STRICT`."""
    if resolution.scope is PolicyScope.PORT:
        return f"{resolution.deciding_object} portLevelMtls {destination.workload_port} {resolution.mode.value}"
    return f"{resolution.deciding_object} {resolution.mode.value}"


def _port_label(destination: Destination) -> str:
    if destination.app_protocol is not None:
        return f"port {destination.port} (appProtocol {destination.app_protocol})"
    return f"port {destination.port_name}" if destination.port_name else f"port {destination.port}"
