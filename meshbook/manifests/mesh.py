"""Namespaces and Istio PeerAuthentications: what replaced the guide's MeshPolicy and Policy objects.

Istio 1.6 removed `authentication.istio.io/v1alpha1`; `security.istio.io/v1` PeerAuthentication is the
replacement (FACTS 1). Service targets are gone too, so the webhook's exception selects its pods by label.
"""

from __future__ import annotations

from collections.abc import Mapping

from meshbook.manifests._objects import Manifest, metadata, obj
from meshbook.params import PeerAuthenticationMode, PermissiveScope, RunbookParams

PEER_AUTHENTICATION_API = "security.istio.io/v1"
WEBHOOK_NAME = "vault-secrets-webhook"
WEBHOOK_SELECTOR = {"app.kubernetes.io/name": WEBHOOK_NAME}
"""The webhook chart's pod label (FACTS 3); PeerAuthentication can no longer target the Service."""
WEBHOOK_TARGET_PORT = 8443
"""Service port 443 forwards here; portLevelMtls keys are the workload's target ports, not Service ports."""


def namespace(name: str, inject: bool) -> Manifest:
    """A Namespace with the guide's `name=<ns>` label and, when `inject`, `istio-injection=enabled`.

    Without injection the label is left out (not set to `disabled`), as the guide removes it; applying
    this with the same field manager then removes a label meshbook set earlier.
    """
    labels = {"name": name}
    if inject:
        labels["istio-injection"] = "enabled"
    return obj("v1", "Namespace", metadata(name, labels=labels))


def peer_authentication(
    name: str,
    namespace: str,
    mode: PeerAuthenticationMode | None,
    selector: Mapping[str, str] | None = None,
    port_modes: Mapping[int, PeerAuthenticationMode] | None = None,
) -> Manifest:
    """A PeerAuthentication; `mode=None` leaves `mtls` unset so the workload inherits its parent's mode.

    Port keys are written as strings: that is how the API server returns the map (JSON object keys), so
    a rendered object compares equal to the stored one.
    """
    if port_modes and not selector:
        raise ValueError("portLevelMtls needs a workload selector (Istio ignores it otherwise)")
    spec: dict[str, object] = {}
    if selector:
        spec["selector"] = {"matchLabels": dict(selector)}
    if mode is not None:
        spec["mtls"] = {"mode": mode.value}
    if port_modes:
        spec["portLevelMtls"] = {str(port): {"mode": m.value} for port, m in sorted(port_modes.items())}
    return obj(PEER_AUTHENTICATION_API, "PeerAuthentication", metadata(name, namespace), spec=spec)


def mesh_mtls(params: RunbookParams) -> list[Manifest]:
    """Mesh-wide mTLS: `PeerAuthentication default` in the Istio root namespace (was `MeshPolicy`)."""
    return [peer_authentication("default", params.istio.namespace, params.istio.mesh_mtls_mode)]


def webhook_permissive(params: RunbookParams) -> list[Manifest]:
    """Let the API server (outside the mesh) call the webhook without Istio mTLS.

    Scope `workload` relaxes every port of the webhook pods, as the guide's Policy did; scope `port`
    relaxes only 8443 and states the mesh's own mode for the rest, so nothing else loosens.
    """
    bv = params.bank_vaults
    if bv.webhook_permissive_scope is PermissiveScope.PORT:
        return [
            peer_authentication(
                WEBHOOK_NAME,
                bv.namespace,
                params.istio.mesh_mtls_mode,
                selector=WEBHOOK_SELECTOR,
                port_modes={WEBHOOK_TARGET_PORT: PeerAuthenticationMode.PERMISSIVE},
            )
        ]
    return [
        peer_authentication(WEBHOOK_NAME, bv.namespace, PeerAuthenticationMode.PERMISSIVE, selector=WEBHOOK_SELECTOR)
    ]


def vault_permissive(params: RunbookParams) -> list[Manifest]:
    """PERMISSIVE for the whole Vault namespace, so sidecar-less init containers can reach Vault.

    Safe because Vault serves its own TLS (FACTS 1, seed Scenario 1 step 3).
    """
    return [peer_authentication("default", params.vault.namespace, PeerAuthenticationMode.PERMISSIVE)]
