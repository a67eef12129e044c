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
