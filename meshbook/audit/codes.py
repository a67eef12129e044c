"""The audit's findings as data: a stable code, a severity, a title and the guide's remedy for each.

Codes never change meaning once published (CI pipelines and suppressions key on them); a new check gets
a new code. `istioctl analyze` prints IST codes the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class Severity(StrEnum):
    ERROR = "Error"  # a secret will not reach a container that asks for it (exit 1)
    WARNING = "Warning"  # works today, but weaker than the guide's setup
    INFO = "Info"  # a check that could not run


@dataclass(frozen=True)
class Check:
    code: str
    severity: Severity
    title: str
    remedy: str


CHECKS = MappingProxyType(
    {
        check.code: check
        for check in (
            Check(
                "MB0100",
                Severity.INFO,
                "a check could not run",
                "grant the audit what `meshbook manifests auditor-rbac` grants, then audit again",
            ),
            Check(
                "MB0101",
                Severity.ERROR,
                "the API server cannot reach the Bank-Vaults webhook",
                "PERMISSIVE for the webhook's pods (PeerAuthentication with selector "
                "app.kubernetes.io/name=vault-secrets-webhook, or portLevelMtls 8443): "
                "`meshbook manifests webhook-permissive | kubectl apply -f -`",
            ),
            Check(
                "MB0102",
                Severity.ERROR,
                "an init container in the mesh cannot reach Vault",
                "PERMISSIVE in Vault's namespace (`meshbook manifests vault-permissive`), native sidecars, or with "
                'Istio CNI the pod annotation traffic.sidecar.istio.io/excludeOutboundPorts: "8200"',
            ),
            Check(
                "MB0103",
                Severity.ERROR,
                "a container outside the mesh cannot reach a STRICT Vault",
                "PERMISSIVE in Vault's namespace (`meshbook manifests vault-permissive`), or label the app's "
                "namespace istio-injection=enabled and recreate its pods",
            ),
            Check(
                "MB0104",
                Severity.ERROR,
                "Vault's API port is named without a protocol on Istio before 1.8",
                "istioEnabled: true in the Vault CR (the port becomes https-api-port), or upgrade Istio",
            ),
            Check(
                "MB0105",
                Severity.ERROR,
                "a pod runs unmutated with literal vault: references",
                "make the webhook reachable (see MB0101), remove any mutate: skip label, then recreate the pod",
            ),
            Check(
                "MB0106",
                Severity.ERROR,
                "a vault-addr the webhook will not accept",
                "use the webhook's VAULT_ADDR in the vault-addr annotation, or list the address in the webhook's "
                "VAULT_ADDR_ALLOWLIST (Helm: --set env.VAULT_ADDR_ALLOWLIST=...)",
            ),
            Check(
                "MB0107",
                Severity.ERROR,
                "Vault's service account cannot review tokens (no system:auth-delegator)",
                "bind ClusterRole system:auth-delegator to Vault's service account "
                "(`meshbook manifests rbac`: ClusterRoleBinding vault-auth-delegator)",
            ),
            Check(
                "MB0108",
                Severity.WARNING,
                "mesh-wide mTLS is not STRICT",
                "PeerAuthentication default in istio-system with mtls.mode STRICT: "
                "`meshbook manifests mesh-mtls | kubectl apply -f -`",
            ),
            Check(
                "MB0109",
                Severity.ERROR,
                "a container cannot reach Vault",
                "follow the reason: it names the object that refuses the connection",
            ),
        )
    }
)
"""Every finding the audit can report, by code."""
