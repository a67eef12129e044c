"""DESIGN's connectivity table, cell by cell: the data `decide` looks up, and `decide` itself on every cell.

The expected table below is copied from DESIGN "The connectivity model"; if `DECISION_TABLE` or `decide`
drift from it, a cell here fails and names itself.
"""

from __future__ import annotations

from typing import Any

import pytest

from meshbook.mesh.connectivity import (
    DECISION_TABLE,
    REFUSED,
    RESET,
    TLS_TO_HTTP,
    CellOutcome,
    Destination,
    DestinationClass,
    KubeApiServer,
    Mesh,
    PodContainer,
    Source,
    SourceTraffic,
    Transport,
    decide,
    destination_class,
    x509_no_names,
)
from meshbook.params import PeerAuthenticationMode, SidecarMode

STRICT, PERMISSIVE, DISABLE = (
    PeerAuthenticationMode.STRICT,
    PeerAuthenticationMode.PERMISSIVE,
    PeerAuthenticationMode.DISABLE,
)
THROUGH, UNCAPTURED, NO_ENVOY = SourceTraffic.THROUGH_ENVOY, SourceTraffic.NOT_CAPTURED, SourceTraffic.NO_ENVOY
STRICT_SIDECAR, PLAIN_SIDECAR, NO_SIDECAR = (
    DestinationClass.STRICT_SIDECAR,
    DestinationClass.PLAIN_ACCEPTING_SIDECAR,
    DestinationClass.NO_SIDECAR,
)

DESIGN_TABLE: dict[SourceTraffic, dict[DestinationClass, CellOutcome]] = {
    THROUGH: {STRICT_SIDECAR: CellOutcome.MTLS, PLAIN_SIDECAR: CellOutcome.MTLS, NO_SIDECAR: CellOutcome.PLAIN},
    UNCAPTURED: {
        STRICT_SIDECAR: CellOutcome.MTLS_REQUIRED, PLAIN_SIDECAR: CellOutcome.PLAIN, NO_SIDECAR: CellOutcome.PLAIN,
    },
    NO_ENVOY: {
        STRICT_SIDECAR: CellOutcome.NO_LISTENER, PLAIN_SIDECAR: CellOutcome.NO_LISTENER,
        NO_SIDECAR: CellOutcome.NO_LISTENER,
    },
}  # fmt: skip
CELLS = [(row, column) for row in SourceTraffic for column in DestinationClass]


def _app(container: str = "app", **fields: Any) -> PodContainer:
    return PodContainer("app", "app-x", container, **fields)


ROW_SOURCES: dict[SourceTraffic, dict[str, Source]] = {
    THROUGH: {
        "classic-main": _app(sidecar_mode=SidecarMode.CLASSIC, proxy_ready=True),
        "cni-main": _app(sidecar_mode=SidecarMode.CNI, proxy_ready=True),
        "native-main": _app(sidecar_mode=SidecarMode.NATIVE, proxy_ready=True),
        "native-init": _app("init-ubuntu", init_container=True, sidecar_mode=SidecarMode.NATIVE, proxy_ready=True),
    },
    UNCAPTURED: {
        "kube-apiserver": KubeApiServer(),
        "no-sidecar": _app(),
        "classic-init": _app("init-ubuntu", init_container=True, sidecar_mode=SidecarMode.CLASSIC),
        "uid-1337": _app(sidecar_mode=SidecarMode.CLASSIC, proxy_ready=True, run_as_user=1337),
        "excluded-port": _app(
            "init-ubuntu", init_container=True, sidecar_mode=SidecarMode.CNI, exclude_outbound_ports=frozenset({8200})
        ),
    },
    NO_ENVOY: {
        "cni-init": _app("init-ubuntu", init_container=True, sidecar_mode=SidecarMode.CNI),
        "main-racing-proxy": _app(sidecar_mode=SidecarMode.CLASSIC, proxy_ready=False),
        "native-proxy-down": _app(sidecar_mode=SidecarMode.NATIVE, proxy_ready=False),
    },
}

MESH_STRICT = {"metadata": {"namespace": "istio-system", "name": "default"}, "spec": {"mtls": {"mode": "STRICT"}}}


def mesh_with(mode: PeerAuthenticationMode) -> Mesh:
    """Mesh-wide STRICT with Vault's namespace at `mode`."""
    namespace_policy = {"metadata": {"namespace": "vault", "name": "default"}, "spec": {"mtls": {"mode": mode.value}}}
    return Mesh([MESH_STRICT, namespace_policy])


def vault(*, sidecar: bool = True, port_name: str = "https-api-port") -> Destination:
    return Destination(
        "vault", "vault", 8200, port_name=port_name, pod="vault-0", pod_labels={"app": "vault"}, sidecar=sidecar,
        host="vault.vault",
    )  # fmt: skip


COLUMN_DESTINATIONS: dict[DestinationClass, dict[str, tuple[Destination, Mesh]]] = {
    STRICT_SIDECAR: {"STRICT": (vault(), mesh_with(STRICT))},
    PLAIN_SIDECAR: {"PERMISSIVE": (vault(), mesh_with(PERMISSIVE)), "DISABLE": (vault(), mesh_with(DISABLE))},
    NO_SIDECAR: {"no-sidecar": (vault(sidecar=False), mesh_with(STRICT)), "no-policy": (vault(sidecar=False), Mesh())},
}


def test_the_table_has_every_cell_and_no_other() -> None:
    assert sorted(DECISION_TABLE) == sorted(CELLS)
    assert len(CELLS) == 9


@pytest.mark.parametrize(("row", "column"), CELLS, ids=[f"{r.name}-{c.name}" for r, c in CELLS])
def test_each_cell_of_the_table_says_what_design_says(row: SourceTraffic, column: DestinationClass) -> None:
    assert DECISION_TABLE[row, column].outcome is DESIGN_TABLE[row][column]


def expected_verdict(
    cell: CellOutcome, client_tls: bool, host: str = "vault.vault"
) -> tuple[bool, str | None, Transport]:
    """DESIGN's words for a cell as (allowed, failure, transport)."""
    if cell is CellOutcome.MTLS:
        return True, None, Transport.MTLS
    if cell is CellOutcome.PLAIN:
        return True, None, Transport.PLAIN
    if cell is CellOutcome.MTLS_REQUIRED:
        return False, x509_no_names(host) if client_tls else RESET, Transport.NONE
    return False, REFUSED, Transport.NONE


WALK = [
    (row, source_name, column, destination_name)
    for row in SourceTraffic
    for source_name in ROW_SOURCES[row]
    for column in DestinationClass
    for destination_name in COLUMN_DESTINATIONS[column]
    # Through Envoy, auto mTLS sends plain text to DISABLE: a refinement (test_envoy_forwards_plain_text...).
    if not (row is THROUGH and destination_name == "DISABLE")
]


@pytest.mark.parametrize("client_tls", [True, False], ids=["tls-client", "plain-client"])
@pytest.mark.parametrize(("row", "source_name", "column", "destination_name"), WALK)
def test_decide_walks_every_cell(
    row: SourceTraffic, source_name: str, column: DestinationClass, destination_name: str, client_tls: bool
) -> None:
    destination, mesh = COLUMN_DESTINATIONS[column][destination_name]
    verdict = decide(ROW_SOURCES[row][source_name], destination, mesh, client_tls=client_tls)
    assert verdict.source_traffic is row
    assert destination_class(destination, verdict.mode) is column
    allowed, failure, transport = expected_verdict(DESIGN_TABLE[row][column], client_tls)
    assert (verdict.allowed, verdict.failure, verdict.transport) == (allowed, failure, transport)


def test_designs_example_reason() -> None:
    """DESIGN: the reason names the deciding object, what it applies to, and why the source is in its row."""
    source = ROW_SOURCES[UNCAPTURED]["classic-init"]
    reason = decide(source, vault(), Mesh([MESH_STRICT])).reason
    assert reason.startswith(
        "PeerAuthentication istio-system/default STRICT applies to vault/vault-0:8200; "
        "source app/app-x init container init-ubuntu runs before istio-init"
    )


@pytest.mark.parametrize(
    ("row", "column", "consequence"),
    [
        (THROUGH, STRICT_SIDECAR, ", so it uses mTLS"),
        (THROUGH, PLAIN_SIDECAR, ", so it uses mTLS"),
        (THROUGH, NO_SIDECAR, ", so auto mTLS sends plain text and is accepted"),
        (UNCAPTURED, STRICT_SIDECAR, ", so the sidecar answers its TLS with the Istio workload certificate"),
        (UNCAPTURED, PLAIN_SIDECAR, ", so PERMISSIVE accepts it without mTLS"),
        (UNCAPTURED, NO_SIDECAR, ", so it connects directly and is accepted"),
        (NO_ENVOY, STRICT_SIDECAR, ", so its connection to vault/vault:8200 is refused"),
        (NO_ENVOY, PLAIN_SIDECAR, ", so its connection to vault/vault:8200 is refused"),
        (NO_ENVOY, NO_SIDECAR, ", so its connection to vault/vault:8200 is refused"),
    ],
)
def test_each_cells_reason_is_decision_source_and_consequence(
    row: SourceTraffic, column: DestinationClass, consequence: str
) -> None:
    source = next(iter(ROW_SOURCES[row].values()))
    destination, mesh = next(iter(COLUMN_DESTINATIONS[column].values()))
    verdict = decide(source, destination, mesh)
    decision = {
        STRICT_SIDECAR: "PeerAuthentication vault/default STRICT applies to vault/vault-0:8200; ",
        PLAIN_SIDECAR: "PeerAuthentication vault/default PERMISSIVE applies to vault/vault-0:8200; ",
        NO_SIDECAR: "vault/vault-0 has no istio-proxy, so no PeerAuthentication is enforced on port 8200; ",
    }[column]
    if row is NO_ENVOY:
        decision = ""  # the connection never reaches the destination, so nothing there decides
    source_clause = "source app/app-x container app goes through its own istio-proxy (classic sidecar)"
    if row is UNCAPTURED:
        source_clause = "source kube-apiserver is outside the mesh"
    if row is NO_ENVOY:
        source_clause = "source app/app-x init container init-ubuntu is captured by Istio CNI before istio-proxy starts"
    assert verdict.reason.startswith(decision + source_clause)
    assert consequence in verdict.reason


# --- the refinements, each a named step before or after the lookup -------------------------------------------

THROUGH_ENVOY = ROW_SOURCES[THROUGH]["classic-main"]
CLASSIC_INIT = ROW_SOURCES[UNCAPTURED]["classic-init"]


@pytest.mark.parametrize(
    ("port_name", "expected"),
    [
        ("https-api-port", (True, None, Transport.PLAIN)),
        ("http-api-port", (False, TLS_TO_HTTP, Transport.NONE)),  # then the HTTP-port refinement
    ],
)
def test_envoy_forwards_plain_text_to_disable_and_the_uncaptured_row_decides(
    port_name: str, expected: tuple[bool, str | None, Transport]
) -> None:
    through = decide(THROUGH_ENVOY, vault(port_name=port_name), mesh_with(DISABLE))
    uncaptured = decide(CLASSIC_INIT, vault(port_name=port_name), mesh_with(DISABLE))
    assert (through.allowed, through.failure, through.transport) == expected
    assert (uncaptured.allowed, uncaptured.failure, uncaptured.transport) == expected
    assert through.source_traffic is THROUGH  # the verdict keeps the source's own row
    assert ", so auto mTLS sends plain text and " in through.reason


@pytest.mark.parametrize(
    ("mode", "sidecar", "expected"),
    [
        (STRICT, True, (False, x509_no_names("vault.vault"), Transport.NONE)),
        (PERMISSIVE, True, (False, RESET, Transport.NONE)),
        (DISABLE, True, (False, TLS_TO_HTTP, Transport.NONE)),
        (STRICT, False, (True, None, Transport.PLAIN)),  # no sidecar: the client's TLS reaches Vault itself
    ],
)
def test_tls_client_through_envoy_to_a_port_declared_http(
    mode: PeerAuthenticationMode, sidecar: bool, expected: tuple[bool, str | None, Transport]
) -> None:
    verdict = decide(THROUGH_ENVOY, vault(port_name="http-api-port", sidecar=sidecar), mesh_with(mode))
    assert (verdict.allowed, verdict.failure, verdict.transport) == expected


@pytest.mark.parametrize(
    ("mode", "sidecar", "version", "expected"),
    [
        (STRICT, True, (1, 7), (False, TLS_TO_HTTP, Transport.NONE)),
        (PERMISSIVE, True, (1, 7), (False, TLS_TO_HTTP, Transport.NONE)),
        (STRICT, True, (1, 8), (True, None, Transport.MTLS)),
        (DISABLE, True, (1, 7), (True, None, Transport.PLAIN)),  # auto mTLS sends plain text first
        (STRICT, False, (1, 7), (True, None, Transport.PLAIN)),  # no sidecar sniffs nothing
    ],
)
def test_legacy_sniffing_refines_only_the_mtls_cells(
    mode: PeerAuthenticationMode, sidecar: bool, version: tuple[int, int], expected: tuple[bool, str | None, Transport]
) -> None:
    base = mesh_with(mode)
    mesh = Mesh(base.peer_authentications, istio_version=version)
    verdict = decide(THROUGH_ENVOY, vault(port_name="api-port", sidecar=sidecar), mesh)
    assert (verdict.allowed, verdict.failure, verdict.transport) == expected
    assert decide(THROUGH_ENVOY, vault(port_name="api-port", sidecar=sidecar), mesh, client_tls=False).allowed


def test_capture_bypass_moves_a_source_to_the_uncaptured_row() -> None:
    """uid 1337 and excluded ports are decided before the lookup: a CNI init container then meets PERMISSIVE."""
    cni_init = ROW_SOURCES[NO_ENVOY]["cni-init"]
    assert decide(cni_init, vault(), mesh_with(PERMISSIVE)).failure == REFUSED
    excluded = ROW_SOURCES[UNCAPTURED]["excluded-port"]
    verdict = decide(excluded, vault(), mesh_with(PERMISSIVE))
    assert (verdict.allowed, verdict.transport, verdict.source_traffic) == (True, Transport.PLAIN, UNCAPTURED)
