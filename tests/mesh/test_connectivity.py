"""The connectivity model: DESIGN's table cell by cell, its refinements, and PeerAuthentication precedence."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from meshbook.mesh.capture import ANNOTATION_PREFIX
from meshbook.mesh.connectivity import (
    NO_POLICY,
    REFUSED,
    RESET,
    TLS_TO_HTTP,
    Destination,
    EffectiveMode,
    KubeApiServer,
    Mesh,
    PodContainer,
    PolicyScope,
    PortProtocol,
    Source,
    SourceTraffic,
    Transport,
    Verdict,
    decide,
    effective_mode,
    port_protocol,
    resolve_mtls,
    x509_no_names,
)
from meshbook.params import PeerAuthenticationMode, SidecarMode
from meshbook.podstatus import sidecar_mode
from tests.conftest import ROOT

STRICT, PERMISSIVE, DISABLE = (
    PeerAuthenticationMode.STRICT,
    PeerAuthenticationMode.PERMISSIVE,
    PeerAuthenticationMode.DISABLE,
)
CLASSIC, CNI, NATIVE = SidecarMode.CLASSIC, SidecarMode.CNI, SidecarMode.NATIVE
JAN, JUN = "2024-01-01T00:00:00Z", "2024-06-01T00:00:00Z"


def pa(
    namespace: str,
    name: str,
    mode: str | None = None,
    *,
    selector: dict[str, str] | None = None,
    ports: dict[int, str | None] | None = None,
    created: str | None = JAN,
) -> dict[str, Any]:
    """A PeerAuthentication as the API serves it (portLevelMtls keys are strings in JSON)."""
    spec: dict[str, Any] = {}
    if selector is not None:
        spec["selector"] = {"matchLabels": selector}
    if mode is not None:
        spec["mtls"] = {"mode": mode}
    if ports is not None:
        spec["portLevelMtls"] = {str(port): ({"mode": m} if m else {}) for port, m in ports.items()}
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if created is not None:
        metadata["creationTimestamp"] = created
    return {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": metadata, "spec": spec}


MESH_STRICT = pa("istio-system", "default", "STRICT")
MESH = {
    STRICT: Mesh([MESH_STRICT]),
    PERMISSIVE: Mesh([MESH_STRICT, pa("vault", "default", "PERMISSIVE")]),
    DISABLE: Mesh([MESH_STRICT, pa("vault", "default", "DISABLE")]),
}
VAULT_LABELS = {"app.kubernetes.io/name": "vault", "vault_cr": "vault"}
X509_VAULT = x509_no_names("vault.vault")


def vault(*, sidecar: bool = True, port_name: str = "https-api-port", **extra: Any) -> Destination:
    """Service vault/vault port 8200 in front of vault-0, dialled as https://vault.vault:8200."""
    return Destination(
        "vault", "vault", 8200, port_name=port_name, pod="vault-0", pod_labels=VAULT_LABELS,
        sidecar=sidecar, host="vault.vault", **extra,
    )  # fmt: skip


def app(
    container: str = "app", *, init: bool = False, mode: SidecarMode | None = CLASSIC, **extra: Any
) -> PodContainer:
    return PodContainer("app", "app-x", container, init_container=init, sidecar_mode=mode, **extra)


APP_MAIN = app(proxy_ready=True)
INIT_CLASSIC = app("init-ubuntu", init=True)
INIT_CNI = app("init-ubuntu", init=True, mode=CNI)
INIT_NATIVE = app("init-ubuntu", init=True, mode=NATIVE, proxy_ready=True)

WEBHOOK_LABELS = {"app.kubernetes.io/name": "vault-secrets-webhook", "app.kubernetes.io/instance": "vswh"}
WEBHOOK = Destination(
    "vault-system", "vault-secrets-webhook", 443, port_name="vault-secrets-webhook", target_port=8443,
    pod="vault-secrets-webhook-5f7d8-abcde", pod_labels=WEBHOOK_LABELS, sidecar=True,
)  # fmt: skip


Outcome = tuple[bool, str | None, Transport]


def outcome(verdict: Verdict) -> Outcome:
    return verdict.allowed, verdict.failure, verdict.transport


# --- DESIGN's table: rows are what happens to the source's traffic, columns the destination ------------

ALLOWED_MTLS: Outcome = (True, None, Transport.MTLS)
ALLOWED_PLAIN: Outcome = (True, None, Transport.PLAIN)
REFUSED_X509: Outcome = (False, X509_VAULT, Transport.NONE)
REFUSED_CONN: Outcome = (False, REFUSED, Transport.NONE)
TABLE: dict[SourceTraffic, dict[str, Outcome]] = {
    SourceTraffic.THROUGH_ENVOY: {
        "STRICT": ALLOWED_MTLS, "PERMISSIVE": ALLOWED_MTLS, "DISABLE": ALLOWED_PLAIN, "no-sidecar": ALLOWED_PLAIN,
    },
    SourceTraffic.NOT_CAPTURED: {
        "STRICT": REFUSED_X509, "PERMISSIVE": ALLOWED_PLAIN, "DISABLE": ALLOWED_PLAIN, "no-sidecar": ALLOWED_PLAIN,
    },
    SourceTraffic.NO_ENVOY: {
        "STRICT": REFUSED_CONN, "PERMISSIVE": REFUSED_CONN, "DISABLE": REFUSED_CONN, "no-sidecar": REFUSED_CONN,
    },
}  # fmt: skip


@pytest.mark.parametrize(
    ("source", "traffic"),
    [
        (APP_MAIN, SourceTraffic.THROUGH_ENVOY),
        (INIT_CLASSIC, SourceTraffic.NOT_CAPTURED),
        (INIT_CNI, SourceTraffic.NO_ENVOY),
    ],
    ids=["through-envoy", "not-captured", "no-envoy"],
)
@pytest.mark.parametrize("column", ["STRICT", "PERMISSIVE", "DISABLE", "no-sidecar"])
def test_table_cell(source: PodContainer, traffic: SourceTraffic, column: str) -> None:
    expected = TABLE[traffic][column]
    if column == "no-sidecar":
        verdict = decide(source, vault(sidecar=False), MESH[STRICT])
    else:
        verdict = decide(source, vault(), MESH[PeerAuthenticationMode(column)])
    assert outcome(verdict) == expected
    assert verdict.source_traffic is traffic


def test_plain_text_client_not_captured_under_strict_is_reset_with_the_designs_reason() -> None:
    verdict = decide(INIT_CLASSIC, vault(), MESH[STRICT], client_tls=False)
    assert verdict == Verdict(
        allowed=False,
        failure=RESET,
        transport=Transport.NONE,
        mode=STRICT,
        deciding_object="PeerAuthentication istio-system/default",
        scope=PolicyScope.MESH,
        source_traffic=SourceTraffic.NOT_CAPTURED,
        protocol=PortProtocol.HTTPS,
        reason="PeerAuthentication istio-system/default STRICT applies to vault/vault-0:8200; source app/app-x init "
        "container init-ubuntu runs before istio-init (classic sidecar), so its traffic is plain text and is reset",
    )


def test_tls_client_not_captured_under_strict_fails_the_certificate_check() -> None:
    verdict = decide(INIT_CLASSIC, vault(), MESH[STRICT])
    assert verdict.failure == (
        "tls: failed to verify certificate: x509: "
        "certificate is not valid for any names, but wanted to match vault.vault"
    )
    assert verdict.reason == (
        "PeerAuthentication istio-system/default STRICT applies to vault/vault-0:8200; source app/app-x init container "
        "init-ubuntu runs before istio-init (classic sidecar), so the sidecar answers its TLS with the Istio workload "
        "certificate, which fails the client's check"
    )


def test_cni_init_container_is_refused_with_its_reason() -> None:
    verdict = decide(INIT_CNI, vault(), MESH[PERMISSIVE])
    assert outcome(verdict) == REFUSED_CONN
    assert verdict.reason == (
        "source app/app-x init container init-ubuntu is captured by Istio CNI before istio-proxy starts "
        "(cni sidecar), so its connection to vault/vault:8200 is refused"
    )


def test_destination_without_sidecar_names_the_missing_proxy() -> None:
    verdict = decide(APP_MAIN, vault(sidecar=False), MESH[STRICT])
    assert outcome(verdict) == ALLOWED_PLAIN
    assert (verdict.mode, verdict.deciding_object) == (STRICT, "PeerAuthentication istio-system/default")
    assert verdict.reason == (
        "vault/vault-0 has no istio-proxy, so no PeerAuthentication is enforced on port 8200; source app/app-x "
        "container app goes through its own istio-proxy (classic sidecar), so auto mTLS sends plain text "
        "and is accepted"
    )


# --- each way of passing the source's own Envoy ------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        app(mode=CLASSIC, proxy_ready=True),
        app(mode=CNI, proxy_ready=True),
        app(mode=NATIVE, proxy_ready=True),
        INIT_NATIVE,
    ],
    ids=["classic-main", "cni-main", "native-main", "native-init-after-proxy"],
)
def test_traffic_through_a_running_envoy_uses_mtls_under_strict(source: PodContainer) -> None:
    verdict = decide(source, vault(), MESH[STRICT])
    assert outcome(verdict) == ALLOWED_MTLS
    assert verdict.source_traffic is SourceTraffic.THROUGH_ENVOY


def test_native_init_container_reason() -> None:
    assert decide(INIT_NATIVE, vault(), MESH[STRICT]).reason == (
        "PeerAuthentication istio-system/default STRICT applies to vault/vault-0:8200; source app/app-x init "
        "container init-ubuntu goes through its own istio-proxy (native sidecar), so it uses mTLS"
    )


def test_through_envoy_to_a_disable_workload_sends_plain_text() -> None:
    workload_disable = pa("vault", "vault-disable", "DISABLE", selector={"vault_cr": "vault"})
    verdict = decide(APP_MAIN, vault(), Mesh([MESH_STRICT, workload_disable]))
    assert outcome(verdict) == ALLOWED_PLAIN
    assert verdict.reason == (
        "PeerAuthentication vault/vault-disable DISABLE applies to vault/vault-0:8200; source app/app-x container app "
        "goes through its own istio-proxy (classic sidecar), so auto mTLS sends plain text and DISABLE accepts it "
        "without mTLS"
    )


# --- each way of not being captured ------------------------------------------------------------------------

NOT_CAPTURED_SOURCES: dict[str, Source] = {
    "pod-without-sidecar": app(mode=None),
    "kube-apiserver": KubeApiServer(),
    "classic-init": INIT_CLASSIC,
    "excluded-port": app("init-ubuntu", init=True, mode=CNI, exclude_outbound_ports=frozenset({8200})),
    "excluded-ip-range": app("init-ubuntu", init=True, mode=CNI, exclude_outbound_ip_ranges=("10.96.0.0/12",)),
    "outside-include-ranges": app("init-ubuntu", init=True, mode=CNI, include_outbound_ip_ranges=("10.244.0.0/16",)),
    "uid-1337-cni-init": app("init-ubuntu", init=True, mode=CNI, run_as_user=1337),
    "uid-1337-main": app(proxy_ready=True, run_as_user=1337),
}


@pytest.mark.parametrize("name", list(NOT_CAPTURED_SOURCES))
@pytest.mark.parametrize(
    ("mode", "client_tls", "expected"),
    [
        (STRICT, True, REFUSED_X509),
        (STRICT, False, (False, RESET, Transport.NONE)),
        (PERMISSIVE, True, ALLOWED_PLAIN),
        (DISABLE, True, ALLOWED_PLAIN),
    ],
    ids=["strict-tls", "strict-plain", "permissive", "disable"],
)
def test_not_captured_traffic(name: str, mode: PeerAuthenticationMode, client_tls: bool, expected: Outcome) -> None:
    verdict = decide(NOT_CAPTURED_SOURCES[name], vault(address="10.96.0.20"), MESH[mode], client_tls=client_tls)
    assert verdict.source_traffic is SourceTraffic.NOT_CAPTURED
    assert outcome(verdict) == expected


@pytest.mark.parametrize(
    ("name", "clause"),
    [
        ("pod-without-sidecar", "source app/app-x container app has no istio-proxy"),
        ("kube-apiserver", "source kube-apiserver is outside the mesh"),
        (
            "excluded-port",
            "source app/app-x init container init-ubuntu excludes port 8200 from capture "
            "(traffic.sidecar.istio.io/excludeOutboundPorts)",
        ),
        (
            "excluded-ip-range",
            "source app/app-x init container init-ubuntu excludes 10.96.0.20 from capture "
            "(traffic.sidecar.istio.io/excludeOutboundIPRanges 10.96.0.0/12)",
        ),
        (
            "outside-include-ranges",
            "source app/app-x init container init-ubuntu captures only 10.244.0.0/16 "
            "(traffic.sidecar.istio.io/includeOutboundIPRanges), not 10.96.0.20",
        ),
        (
            "uid-1337-cni-init",
            "source app/app-x init container init-ubuntu runs as uid 1337 (istio-proxy's), "
            "which istio-iptables does not capture",
        ),
    ],
)
def test_not_captured_reasons(name: str, clause: str) -> None:
    verdict = decide(NOT_CAPTURED_SOURCES[name], vault(address="10.96.0.20"), MESH[PERMISSIVE])
    assert verdict.reason == (
        f"PeerAuthentication vault/default PERMISSIVE applies to vault/vault-0:8200; {clause}, "
        "so PERMISSIVE accepts it without mTLS"
    )


def test_excluded_port_lets_a_cni_init_container_through_only_where_plain_text_is_accepted() -> None:
    source = app("init-ubuntu", init=True, mode=CNI, exclude_outbound_ports=frozenset({8200}))
    assert outcome(decide(source, vault(), MESH[PERMISSIVE])) == ALLOWED_PLAIN
    assert outcome(decide(source, vault(), MESH[STRICT])) == REFUSED_X509
    other_port = app("init-ubuntu", init=True, mode=CNI, exclude_outbound_ports=frozenset({8201}))
    assert outcome(decide(other_port, vault(), MESH[PERMISSIVE])) == REFUSED_CONN


def test_ip_range_annotations_need_the_dialled_address() -> None:
    source = NOT_CAPTURED_SOURCES["excluded-ip-range"]
    assert decide(source, vault(), MESH[PERMISSIVE]).source_traffic is SourceTraffic.NO_ENVOY


def test_empty_include_ranges_capture_nothing() -> None:
    source = app("init-ubuntu", init=True, mode=CNI, include_outbound_ip_ranges=())
    verdict = decide(source, vault(address="10.96.0.20"), MESH[PERMISSIVE])
    assert verdict.source_traffic is SourceTraffic.NOT_CAPTURED
    assert 'captures only "" (traffic.sidecar.istio.io/includeOutboundIPRanges), not 10.96.0.20' in verdict.reason


# --- captured, but no Envoy to take the connection ---------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        INIT_CNI,
        app("init-ubuntu", init=True, mode=CNI, proxy_ready=True),  # impossible; CNI init containers never see it
        app(mode=CLASSIC, proxy_ready=False),
        app(mode=NATIVE, proxy_ready=False),
        app("init-ubuntu", init=True, mode=NATIVE, proxy_ready=False),
    ],
    ids=["cni-init", "cni-init-proxy-flag-ignored", "classic-main-racing", "native-main-proxy-down", "native-init"],
)
@pytest.mark.parametrize("column", ["STRICT", "PERMISSIVE", "DISABLE", "no-sidecar"])
def test_captured_without_envoy_is_refused_whatever_the_destination(source: PodContainer, column: str) -> None:
    destination = vault(sidecar=column != "no-sidecar")
    mesh = MESH[STRICT] if column == "no-sidecar" else MESH[PeerAuthenticationMode(column)]
    verdict = decide(source, destination, mesh)
    assert outcome(verdict) == REFUSED_CONN
    assert verdict.source_traffic is SourceTraffic.NO_ENVOY


def test_main_container_racing_the_proxy_reason() -> None:
    assert decide(app(proxy_ready=False), vault(), MESH[STRICT]).reason == (
        "source app/app-x container app is captured but istio-proxy is not ready yet (classic sidecar), "
        "so its connection to vault/vault:8200 is refused"
    )


# --- the kube-apiserver calling the webhook (FACTS 6, istio 52874 / 34543) ---------------------------------


def test_apiserver_to_webhook_with_workload_permissive_exception() -> None:
    exception = pa(
        "vault-system",
        "vault-secrets-webhook",
        "PERMISSIVE",
        selector={"app.kubernetes.io/name": "vault-secrets-webhook"},
    )
    verdict = decide(KubeApiServer(), WEBHOOK, Mesh([MESH_STRICT, exception]))
    assert outcome(verdict) == ALLOWED_PLAIN
    assert (verdict.mode, verdict.deciding_object, verdict.scope) == (
        PERMISSIVE, "PeerAuthentication vault-system/vault-secrets-webhook", PolicyScope.WORKLOAD,
    )  # fmt: skip
    assert verdict.protocol is PortProtocol.AUTO


def test_apiserver_to_webhook_with_port_level_exception_on_the_target_port() -> None:
    exception = pa(
        "vault-system",
        "vault-secrets-webhook",
        selector={"app.kubernetes.io/name": "vault-secrets-webhook"},
        ports={8443: "PERMISSIVE"},
    )
    verdict = decide(KubeApiServer(), WEBHOOK, Mesh([MESH_STRICT, exception]))
    assert outcome(verdict) == ALLOWED_PLAIN
    assert verdict.scope is PolicyScope.PORT
    assert verdict.reason == (
        "PeerAuthentication vault-system/vault-secrets-webhook portLevelMtls 8443 PERMISSIVE applies to "
        "vault-system/vault-secrets-webhook-5f7d8-abcde:8443; source kube-apiserver is outside the mesh, "
        "so PERMISSIVE accepts it without mTLS"
    )


def test_apiserver_to_webhook_port_level_keys_name_the_target_port_not_the_service_port() -> None:
    exception = pa(
        "vault-system",
        "vault-secrets-webhook",
        selector={"app.kubernetes.io/name": "vault-secrets-webhook"},
        ports={443: "PERMISSIVE"},
    )
    verdict = decide(KubeApiServer(), WEBHOOK, Mesh([MESH_STRICT, exception]))
    assert verdict.failure == x509_no_names("vault-secrets-webhook.vault-system.svc")
    assert (verdict.mode, verdict.scope) == (STRICT, PolicyScope.MESH)


def test_apiserver_to_webhook_without_exception_is_refused() -> None:
    verdict = decide(KubeApiServer(), WEBHOOK, Mesh([MESH_STRICT]))
    assert outcome(verdict) == (False, x509_no_names("vault-secrets-webhook.vault-system.svc"), Transport.NONE)
    assert verdict.reason == (
        "PeerAuthentication istio-system/default STRICT applies to "
        "vault-system/vault-secrets-webhook-5f7d8-abcde:8443; source kube-apiserver is outside the mesh, "
        "so the sidecar answers its TLS with the Istio workload certificate, which fails the client's check"
    )


# --- port protocol: a TLS client and a port declared HTTP (FACTS 5) ----------------------------------------


@pytest.mark.parametrize(
    ("port_name", "mode", "expected"),
    [
        ("https-api-port", STRICT, ALLOWED_MTLS),
        ("https-api-port", PERMISSIVE, ALLOWED_MTLS),
        ("api-port", STRICT, ALLOWED_MTLS),  # sniffed: TLS is not HTTP, proxied as TCP (Istio >= 1.8)
        ("tcp-api", STRICT, ALLOWED_MTLS),
        ("http-api-port", STRICT, REFUSED_X509),
        ("http-api-port", PERMISSIVE, (False, RESET, Transport.NONE)),
        ("http-api-port", DISABLE, (False, TLS_TO_HTTP, Transport.NONE)),
        ("grpc-web-api", PERMISSIVE, (False, RESET, Transport.NONE)),
    ],
)
def test_tls_client_through_envoy_by_port_name(port_name: str, mode: PeerAuthenticationMode, expected: Outcome) -> None:
    assert outcome(decide(APP_MAIN, vault(port_name=port_name), MESH[mode])) == expected


def test_tls_client_through_envoy_to_http_port_reason() -> None:
    verdict = decide(APP_MAIN, vault(port_name="http-api-port"), MESH[PERMISSIVE])
    assert verdict.reason == (
        "PeerAuthentication vault/default PERMISSIVE applies to vault/vault-0:8200; source app/app-x container app "
        "goes through its own istio-proxy (classic sidecar), but port http-api-port is declared HTTP and the client "
        "speaks TLS, so Envoy passes it through without mTLS and one-way TLS matches no filter chain of HTTP port "
        "http-api-port and is reset"
    )


def test_tls_client_through_envoy_to_disable_http_port_reason() -> None:
    verdict = decide(APP_MAIN, vault(port_name="http-api-port"), MESH[DISABLE])
    assert verdict.reason == (
        "PeerAuthentication vault/default DISABLE applies to vault/vault-0:8200; source app/app-x container app "
        "goes through its own istio-proxy (classic sidecar), so auto mTLS sends plain text and the sidecar reads "
        "its TLS as HTTP on port http-api-port and answers 400"
    )


def test_http_port_refinements() -> None:
    http = vault(port_name="http-api-port")
    # istioEnabled with TLS off: the client speaks plain HTTP, which Envoy carries over mTLS.
    assert outcome(decide(APP_MAIN, http, MESH[STRICT], client_tls=False)) == ALLOWED_MTLS
    # No sidecar at the destination: the passed-through TLS reaches Vault itself.
    assert outcome(decide(APP_MAIN, vault(port_name="http-api-port", sidecar=False), MESH[STRICT])) == ALLOWED_PLAIN
    # appProtocol wins over the port name.
    assert (
        outcome(decide(APP_MAIN, vault(port_name="http-api-port", app_protocol="https"), MESH[STRICT])) == ALLOWED_MTLS
    )
    # Uncaptured clients meet the same inbound rules.
    assert outcome(decide(INIT_CLASSIC, http, MESH[PERMISSIVE])) == (False, RESET, Transport.NONE)
    assert outcome(decide(INIT_CLASSIC, http, MESH[DISABLE])) == (False, TLS_TO_HTTP, Transport.NONE)
    assert outcome(decide(INIT_CLASSIC, http, MESH[PERMISSIVE], client_tls=False)) == ALLOWED_PLAIN


@pytest.mark.parametrize(
    ("name", "app_protocol", "port", "expected"),
    [
        ("https-api-port", None, 8200, PortProtocol.HTTPS),
        ("http-api-port", None, 8200, PortProtocol.HTTP),
        ("api-port", None, 8200, PortProtocol.AUTO),
        ("", None, 8200, PortProtocol.AUTO),
        ("vault-secrets-webhook", None, 443, PortProtocol.AUTO),
        ("metrics", None, 9091, PortProtocol.AUTO),
        ("tcp", None, 8200, PortProtocol.TCP),
        ("TLS-cluster", None, 8201, PortProtocol.TLS),
        ("grpc", None, 9000, PortProtocol.GRPC),
        ("grpc-web", None, 9000, PortProtocol.GRPC_WEB),
        ("grpc-web-ui", None, 9000, PortProtocol.GRPC_WEB),
        ("http2-api", None, 9000, PortProtocol.HTTP2),
        ("mysql", None, 3306, PortProtocol.MYSQL),
        ("db", None, 3306, PortProtocol.TCP),
        ("http-api-port", "tcp", 8200, PortProtocol.TCP),
        ("api", "kubernetes.io/h2c", 8200, PortProtocol.HTTP2),
        ("api", "kubernetes.io/wss", 8200, PortProtocol.HTTPS),
    ],
)
def test_port_protocol(name: str, app_protocol: str | None, port: int, expected: PortProtocol) -> None:
    assert port_protocol(name, app_protocol, port) is expected


# --- PeerAuthentication precedence --------------------------------------------------------------------------

NS_PERMISSIVE = pa("vault", "default", "PERMISSIVE")
WL_DISABLE = pa("vault", "vault-wl", "DISABLE", selector={"vault_cr": "vault"})


def mode_of(*policies: dict[str, Any], port: int = 8200, labels: dict[str, str] = VAULT_LABELS) -> EffectiveMode:
    return effective_mode(policies, "istio-system", "vault", labels, port)


def test_no_policy_is_permissive() -> None:
    assert mode_of() == (PERMISSIVE, NO_POLICY, PolicyScope.DEFAULT)
    assert NO_POLICY == "no PeerAuthentication (PERMISSIVE by default)"


def test_workload_beats_namespace_beats_mesh() -> None:
    assert mode_of(MESH_STRICT) == (STRICT, "PeerAuthentication istio-system/default", PolicyScope.MESH)
    assert mode_of(MESH_STRICT, NS_PERMISSIVE) == (
        PERMISSIVE,
        "PeerAuthentication vault/default",
        PolicyScope.NAMESPACE,
    )
    assert mode_of(WL_DISABLE, NS_PERMISSIVE, MESH_STRICT) == (
        DISABLE,
        "PeerAuthentication vault/vault-wl",
        PolicyScope.WORKLOAD,
    )


def test_effective_mode_unpacks_as_a_triple() -> None:
    mode, deciding_object, scope = mode_of(MESH_STRICT, NS_PERMISSIVE)
    assert (mode, deciding_object, scope) == (PERMISSIVE, "PeerAuthentication vault/default", PolicyScope.NAMESPACE)


def test_port_level_overrides_only_its_target_port() -> None:
    policy = pa("vault", "vault-wl", "STRICT", selector={"vault_cr": "vault"}, ports={8201: "DISABLE"})
    assert mode_of(MESH_STRICT, policy, port=8201) == (DISABLE, "PeerAuthentication vault/vault-wl", PolicyScope.PORT)
    assert mode_of(MESH_STRICT, policy, port=8200) == (
        STRICT,
        "PeerAuthentication vault/vault-wl",
        PolicyScope.WORKLOAD,
    )


def test_port_level_keys_may_be_integers_as_yaml_gives_them() -> None:
    policy = pa("vault", "vault-wl", selector={"vault_cr": "vault"})
    policy["spec"]["portLevelMtls"] = {8200: {"mode": "PERMISSIVE"}}
    assert mode_of(MESH_STRICT, policy) == (PERMISSIVE, "PeerAuthentication vault/vault-wl", PolicyScope.PORT)


def test_unset_inherits_from_the_parent_level() -> None:
    unset_workload = pa("vault", "vault-wl", selector={"vault_cr": "vault"})
    resolution = resolve_mtls([MESH_STRICT, NS_PERMISSIVE, unset_workload], "istio-system", "vault", VAULT_LABELS, 8200)
    assert resolution.effective() == (PERMISSIVE, "PeerAuthentication vault/default", PolicyScope.NAMESPACE)
    assert resolution.notes == ("PeerAuthentication vault/vault-wl leaves mtls UNSET and inherits",)

    unset_namespace = pa("vault", "default", "UNSET")
    assert mode_of(MESH_STRICT, unset_namespace) == (
        STRICT,
        "PeerAuthentication istio-system/default",
        PolicyScope.MESH,
    )

    unset_port = pa("vault", "vault-wl", "DISABLE", selector={"vault_cr": "vault"}, ports={8200: None})
    resolution = resolve_mtls([MESH_STRICT, unset_port], "istio-system", "vault", VAULT_LABELS, 8200)
    assert resolution.effective() == (DISABLE, "PeerAuthentication vault/vault-wl", PolicyScope.WORKLOAD)
    assert resolution.notes == ("PeerAuthentication vault/vault-wl leaves portLevelMtls 8200 UNSET and inherits",)


def test_unset_mesh_policy_is_permissive() -> None:
    resolution = resolve_mtls([pa("istio-system", "default")], "istio-system", "vault", VAULT_LABELS, 8200)
    assert resolution.effective() == (PERMISSIVE, "PeerAuthentication istio-system/default", PolicyScope.MESH)
    assert resolution.notes == (
        "PeerAuthentication istio-system/default leaves mtls UNSET, which is PERMISSIVE at mesh level",
    )


def test_namespace_wide_port_level_mtls_is_ignored_and_the_reason_says_so() -> None:
    namespace_policy = pa("vault", "default", "STRICT", ports={8200: "PERMISSIVE"})
    assert mode_of(namespace_policy) == (STRICT, "PeerAuthentication vault/default", PolicyScope.NAMESPACE)
    verdict = decide(INIT_CLASSIC, vault(), Mesh([namespace_policy]), client_tls=False)
    assert outcome(verdict) == (False, RESET, Transport.NONE)
    assert verdict.reason == (
        "PeerAuthentication vault/default STRICT applies to vault/vault-0:8200 (PeerAuthentication vault/default sets "
        "portLevelMtls without a selector, which Istio ignores); source app/app-x init container init-ubuntu runs "
        "before istio-init (classic sidecar), so its traffic is plain text and is reset"
    )


def test_oldest_workload_policy_wins() -> None:
    newer = pa("vault", "a-newer", "PERMISSIVE", selector={"vault_cr": "vault"}, created=JUN)
    older = pa("vault", "z-older", "STRICT", selector={"app.kubernetes.io/name": "vault"}, created=JAN)
    resolution = resolve_mtls([newer, older], "istio-system", "vault", VAULT_LABELS, 8200)
    assert resolution.effective() == (STRICT, "PeerAuthentication vault/z-older", PolicyScope.WORKLOAD)
    assert resolution.notes == (
        "PeerAuthentication vault/a-newer is ignored: PeerAuthentication vault/z-older is older",
    )


def test_same_age_workload_policies_tie_break_by_name() -> None:
    b = pa("vault", "b", "STRICT", selector={"vault_cr": "vault"})
    a = pa("vault", "a", "PERMISSIVE", selector={"vault_cr": "vault"})
    assert mode_of(b, a) == (PERMISSIVE, "PeerAuthentication vault/a", PolicyScope.WORKLOAD)


def test_policy_without_creation_timestamp_counts_as_newest() -> None:
    unsaved = pa("vault", "a", "PERMISSIVE", selector={"vault_cr": "vault"}, created=None)
    stored = pa("vault", "b", "STRICT", selector={"vault_cr": "vault"}, created=JUN)
    naive = pa("vault", "c", "DISABLE", selector={"vault_cr": "vault"}, created="2024-06-01T00:00:01")
    assert mode_of(unsaved, naive, stored) == (STRICT, "PeerAuthentication vault/b", PolicyScope.WORKLOAD)


def test_oldest_namespace_policy_wins() -> None:
    newer = pa("vault", "a-newer", "STRICT", created=JUN)
    assert mode_of(newer, NS_PERMISSIVE) == (PERMISSIVE, "PeerAuthentication vault/default", PolicyScope.NAMESPACE)


def test_policies_that_do_not_apply() -> None:
    other_namespace = pa("app", "default", "DISABLE")
    other_workload = pa("vault", "configurer", "DISABLE", selector={"app.kubernetes.io/name": "vault-configurer"})
    root_selector = pa("istio-system", "vault", "DISABLE", selector={"vault_cr": "vault"})
    resolution = resolve_mtls(
        [MESH_STRICT, other_namespace, other_workload, root_selector], "istio-system", "vault", VAULT_LABELS, 8200
    )
    assert resolution.effective() == (STRICT, "PeerAuthentication istio-system/default", PolicyScope.MESH)
    assert resolution.notes == (
        "PeerAuthentication istio-system/vault is ignored: istiod ignores selectors in the root namespace",
    )


def test_invalid_mode_is_ignored_with_a_note() -> None:
    lowercase = pa("vault", "default", "permissive")
    resolution = resolve_mtls([MESH_STRICT, lowercase], "istio-system", "vault", VAULT_LABELS, 8200)
    assert resolution.effective() == (STRICT, "PeerAuthentication istio-system/default", PolicyScope.MESH)
    assert resolution.notes == (
        "PeerAuthentication vault/default is ignored: spec.mtls.mode is not one of UNSET, DISABLE, PERMISSIVE, STRICT",
    )


def test_custom_root_namespace() -> None:
    assert effective_mode([MESH_STRICT], "mesh-root", "vault", VAULT_LABELS, 8200) == (
        PERMISSIVE, NO_POLICY, PolicyScope.DEFAULT,
    )  # fmt: skip
    verdict = decide(INIT_CLASSIC, vault(), Mesh([pa("mesh-root", "default", "STRICT")], root_namespace="mesh-root"))
    assert verdict.deciding_object == "PeerAuthentication mesh-root/default"


# --- reading sources from pod manifests ---------------------------------------------------------------------


def pod(init: list[dict[str, Any]], main: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "app", "name": "app-x", "annotations": extra.pop("annotations", {})},
        "spec": {"initContainers": init, "containers": main, **extra},
    }


def test_from_pod_reads_classic_sidecar_annotations_and_run_as_user() -> None:
    manifest = pod(
        [
            {"name": "copy-vault-env"},
            {"name": "init-ubuntu", "securityContext": {"runAsUser": 1337}},
            {"name": "istio-init"},
        ],
        [{"name": "app"}, {"name": "istio-proxy"}],
        annotations={
            "traffic.sidecar.istio.io/excludeOutboundPorts": "8200, 8201",
            "traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.96.0.0/12",
        },
        securityContext={"runAsUser": 1000},
    )
    assert PodContainer.from_pod(manifest, "init-ubuntu", proxy_ready=False) == PodContainer(
        "app", "app-x", "init-ubuntu", init_container=True, sidecar_mode=CLASSIC, proxy_ready=False,
        run_as_user=1337, exclude_outbound_ports=frozenset({8200, 8201}), exclude_outbound_ip_ranges=("10.96.0.0/12",),
    )  # fmt: skip
    main = PodContainer.from_pod(manifest, "app", proxy_ready=True)
    assert (main.init_container, main.run_as_user, main.include_outbound_ip_ranges) == (False, 1000, ("*",))


@pytest.mark.parametrize(
    ("init", "main", "expected"),
    [
        (
            [{"name": "istio-init"}, {"name": "istio-proxy", "restartPolicy": "Always"}, {"name": "init-ubuntu"}],
            [{"name": "app"}],
            NATIVE,
        ),
        ([{"name": "istio-validation"}, {"name": "init-ubuntu"}], [{"name": "app"}, {"name": "istio-proxy"}], CNI),
        ([{"name": "init-ubuntu"}], [{"name": "app"}], None),
    ],
    ids=["native", "cni", "no-sidecar"],
)
def test_from_pod_detects_the_sidecar_mode(
    init: list[dict[str, Any]], main: list[dict[str, Any]], expected: SidecarMode | None
) -> None:
    assert PodContainer.from_pod(pod(init, main), "init-ubuntu", proxy_ready=True).sidecar_mode is expected


@pytest.mark.parametrize(
    ("init", "main", "expected"),
    [
        ([{"name": "istio-init"}], [{"name": "app"}, {"name": "istio-proxy"}], SidecarMode.CLASSIC),
        ([{"name": "istio-validation"}], [{"name": "istio-proxy"}, {"name": "app"}], SidecarMode.CNI),
        ([], [{"name": "app"}, {"name": "istio-proxy"}], SidecarMode.CNI),
        ([{"name": "istio-init"}, {"name": "istio-proxy", "restartPolicy": "Always"}], [{"name": "app"}], NATIVE),
        ([{"name": "istio-init"}], [{"name": "app"}], None),
    ],
    ids=["classic", "cni", "cni-without-validation", "native", "istio-init-without-proxy"],
)
def test_sidecar_mode_is_read_from_what_the_injector_left(
    init: list[dict[str, Any]], main: list[dict[str, Any]], expected: SidecarMode | None
) -> None:
    assert sidecar_mode(pod(init, main)) is expected


def test_from_pod_errors() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        (pod([], [{"name": "app"}]), "pod app/app-x has no container sidecar"),
        (
            pod([], [{"name": "sidecar"}], annotations={f"{ANNOTATION_PREFIX}excludeOutboundPorts": "vault"}),
            "traffic.sidecar.istio.io/excludeOutboundPorts: 'vault' is not a list of ports",
        ),
        (
            pod([], [{"name": "sidecar"}], annotations={f"{ANNOTATION_PREFIX}excludeOutboundIPRanges": "10.0.0.0/33"}),
            "traffic.sidecar.istio.io/excludeOutboundIPRanges: '10.0.0.0/33' is not an IP range",
        ),
        (
            pod([], [{"name": "sidecar"}], annotations={f"{ANNOTATION_PREFIX}includeOutboundIPRanges": "*,vault"}),
            "traffic.sidecar.istio.io/includeOutboundIPRanges: 'vault' is not an IP range",
        ),
    ]
    for manifest, message in cases:
        with pytest.raises(ValueError) as raised:
            PodContainer.from_pod(manifest, "sidecar", proxy_ready=False)
        assert str(raised.value) == message
    with pytest.raises(ValueError) as raised:
        app(exclude_outbound_ports=frozenset({70000}))
    assert str(raised.value) == "traffic.sidecar.istio.io/excludeOutboundPorts: 70000 is not a port"


def test_source_names() -> None:
    sources: list[Source] = [KubeApiServer(), INIT_CLASSIC, APP_MAIN]
    assert [str(s) for s in sources] == [
        "kube-apiserver",
        "app/app-x init container init-ubuntu",
        "app/app-x container app",
    ]


def test_connectivity_imports_nothing_else_of_meshbook() -> None:
    """The sandbox may import this model and nothing else of meshbook (DESIGN, docs/architecture.md)."""
    code = "import sys, meshbook.mesh.connectivity; print(sorted(m for m in sys.modules if m.startswith('meshbook')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(
        [
            "meshbook", "meshbook.mesh", "meshbook.mesh.capture", "meshbook.mesh.connectivity",
            "meshbook.mesh.peer_authentication", "meshbook.mesh.protocols", "meshbook.param_enums",
            "meshbook.podstatus",
        ]
    )  # fmt: skip
