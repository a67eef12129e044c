"""FACTS 5: before Istio 1.8 an unnamed Vault API port broke TLS clients in the mesh (bank-vaults #767)."""

from __future__ import annotations

from meshbook.mesh.connectivity import TLS_TO_HTTP, Destination, Mesh, PodContainer, decide
from meshbook.params import SidecarMode

APP = PodContainer("app", "app-x", "app", sidecar_mode=SidecarMode.CLASSIC, proxy_ready=True)


def _vault(port_name: str) -> Destination:
    return Destination(
        "vault", "vault", 8200, port_name=port_name, pod="vault-0", pod_labels={"app": "vault"}, sidecar=True,
        host="vault.vault",
    )  # fmt: skip


def test_unnamed_port_breaks_tls_before_istio_1_8() -> None:
    verdict = decide(APP, _vault("api-port"), Mesh(istio_version=(1, 7)))
    assert not verdict.allowed
    assert verdict.failure == TLS_TO_HTTP
    assert "Istio 1.7 (before 1.8) sniffs port api-port as HTTP" in verdict.reason


def test_https_port_name_works_before_istio_1_8() -> None:
    assert decide(APP, _vault("https-api-port"), Mesh(istio_version=(1, 7))).allowed


def test_unnamed_port_works_with_current_istio() -> None:
    verdict = decide(APP, _vault("api-port"), Mesh())
    assert verdict.allowed and verdict.transport.value == "mtls"
