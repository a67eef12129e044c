"""The rules on hand-made objects (no cluster): addresses vault-env dials, and what cannot be judged."""

from __future__ import annotations

from typing import Any

import pytest

from meshbook.audit.discover import Discovery
from meshbook.audit.findings import audit


def mutated_pod(address: str) -> dict[str, Any]:
    env = [{"name": "SECRET", "value": "vault:secret/data/x#y"}, {"name": "VAULT_ADDR", "value": address}]
    return {
        "metadata": {"name": "app-1", "namespace": "app", "labels": {"app": "app"}},
        "spec": {
            "initContainers": [{"name": "copy-vault-env"}],
            "containers": [{"name": "app", "command": ["/vault/vault-env"], "env": env}],
        },
        "status": {"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}]},
    }


def test_a_missing_vault_service_is_a_finding_naming_it() -> None:
    result = audit(Discovery(server="x", pods=[mutated_pod("https://vault.vault:8200")]))
    assert [(f.code, f.subject) for f in result.findings] == [("MB0109", "Pod app/app-1")]
    assert "no such host" in result.findings[0].message and "Service vault/vault" in result.findings[0].message
    assert result.containers[0].delivered is False


@pytest.mark.parametrize("address", ["https://vault.example.com:8200", "https://10.0.0.5:8200"])
def test_an_address_outside_the_cluster_is_not_judged(address: str) -> None:
    result = audit(Discovery(server="x", pods=[mutated_pod(address)]))
    assert result.findings == []
    assert result.containers[0].delivered is None and "outside the cluster" in result.containers[0].reason


def test_an_unmutated_pod_is_reported_once_for_all_its_containers() -> None:
    pod = mutated_pod("https://vault.vault:8200")
    pod["spec"]["initContainers"] = []
    result = audit(Discovery(server="x", pods=[pod]))
    assert [(f.code, f.subject) for f in result.findings] == [("MB0105", "Pod app/app-1")]


def _webhook_and_app(image: str) -> Discovery:
    """A Bank-Vaults pods webhook running `image`, and an app whose vault-addr is not the webhook's."""
    webhook_labels = {"app.kubernetes.io/name": "vault-secrets-webhook"}
    configuration = {
        "metadata": {"name": "vault-secrets-webhook"},
        "webhooks": [
            {
                "name": "pods.vault-secrets-webhook.admission.banzaicloud.com",
                "clientConfig": {"service": {"name": "vault-secrets-webhook", "namespace": "vault-system"}},
                "rules": [{"resources": ["pods"]}],
                "failurePolicy": "Ignore",
            }
        ],
    }
    service = {
        "metadata": {"name": "vault-secrets-webhook", "namespace": "vault-system"},
        "spec": {"selector": webhook_labels, "ports": [{"port": 443, "targetPort": 8443}]},
    }

    def deployment(namespace: str, name: str, labels: dict[str, str], container: dict[str, Any]) -> dict[str, Any]:
        template = {"metadata": {"labels": labels, "annotations": {}}, "spec": {"containers": [container]}}
        return {"metadata": {"name": name, "namespace": namespace}, "spec": {"template": template}}

    webhook = deployment(
        "vault-system",
        "vault-secrets-webhook",
        webhook_labels,
        {"name": "webhook", "image": image, "env": [{"name": "VAULT_ADDR", "value": "https://vault.vault:8200"}]},
    )
    app = deployment(
        "app", "app", {"app": "app"}, {"name": "app", "env": [{"name": "SECRET", "value": "vault:secret/data/x#y"}]}
    )
    app["spec"]["template"]["metadata"]["annotations"]["vault.security.banzaicloud.io/vault-addr"] = (
        "https://vault.elsewhere:8200"
    )
    return Discovery(server="x", webhook_configurations=[configuration], services=[service], deployments=[webhook, app])


def test_a_vault_addr_outside_the_allowlist_is_a_finding_only_where_the_webhook_release_checks_pods() -> None:
    # Upstream main (no release yet) refuses such pods; v1.23.1 mutates them (FACTS 4).
    refused = [f for f in audit(_webhook_and_app("ghcr.io/bank-vaults/vault-secrets-webhook:main")).findings]
    assert [(f.subject, f.objects) for f in refused if f.code == "MB0106"] == [
        ("Deployment app/app", ("Deployment app/app", "MutatingWebhookConfiguration vault-secrets-webhook"))
    ]
    assert any("https://vault.elsewhere:8200" in f.message for f in refused if f.code == "MB0106")
    mutated = audit(_webhook_and_app("ghcr.io/bank-vaults/vault-secrets-webhook:v1.23.1"))
    assert [f.code for f in mutated.findings if f.code == "MB0106"] == []
