"""What each runbook expects to see, as data: the guide's READY counts per workload (DESIGN's table).

The counts follow from which namespaces are in the mesh at that point of the guide: a pod in an injected
namespace carries one more container, `istio-proxy`.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshbook.params import RunbookName, RunbookParams


@dataclass(frozen=True)
class PodExpectation:
    namespace: str
    ready: dict[str, str]  # workload -> READY column, e.g. {"vault": "3/3"}
    counts: dict[str, int]  # workload -> number of pods, where the guide says


def _ready(containers: int, in_mesh: bool) -> str:
    total = containers + (1 if in_mesh else 0)
    return f"{total}/{total}"


# Which of (vault namespace, app namespace) are in the mesh after each scenario's steps.
_MESH_MEMBERSHIP: dict[RunbookName, tuple[bool, bool]] = {
    RunbookName.SCENARIO_1: (False, True),
    RunbookName.SCENARIO_2: (True, False),
    RunbookName.SCENARIO_3: (True, True),
}


def expected_pods(runbook: RunbookName | str, params: RunbookParams) -> list[PodExpectation]:
    name = RunbookName(str(runbook))
    if name is RunbookName.PREREQ_ISTIO:
        return [PodExpectation(params.istio.namespace, {"istiod": "1/1"}, {"istiod": 1})]
    if name is RunbookName.PREREQ_BANK_VAULTS:
        bv = params.bank_vaults
        ready = _ready(1, bv.inject_sidecar)
        return [
            PodExpectation(
                bv.namespace,
                {"vault-secrets-webhook": ready, "vault-operator": ready},
                {"vault-secrets-webhook": bv.webhook_replicas, "vault-operator": 1},
            )
        ]
    vault_in_mesh, app_in_mesh = _MESH_MEMBERSHIP[name]
    return [
        PodExpectation(
            params.vault.namespace,
            {"vault": _ready(3, vault_in_mesh), "vault-configurer": _ready(1, vault_in_mesh)},
            {"vault": 1, "vault-configurer": 1},
        ),
        PodExpectation(params.app.namespace, {params.app.name: _ready(1, app_in_mesh)}, {params.app.name: 1}),
    ]
