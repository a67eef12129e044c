"""The connection view's prediction: the pure connectivity model over the planned cluster (fixtures, no cluster)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from meshbook.manifests import peer_authentication
from meshbook.params import (
    FailurePolicy,
    PeerAuthenticationMode,
    RunbookName,
    RunbookParams,
    SidecarMode,
    load_params,
)
from meshbook.runbook.expectations import expected_pods
from meshbook.widgets import LiveState, Toggles, predict, prediction_frame
from meshbook.widgets.predict import COLUMNS, MESH_LAYOUT, planned_policies

PARAMS = load_params()


def _with(**changes: Any) -> RunbookParams:
    return dataclasses.replace(Toggles.of(PARAMS), **changes).apply_to(PARAMS)


def _verdicts(runbook: str, live: LiveState | None = None, **changes: Any) -> dict[str, tuple[bool, str, str]]:
    params = _with(**changes)
    return {
        p.connection: (p.verdict.allowed, p.verdict.reason, p.consequence)
        for p in predict(runbook, params, live or LiveState())
    }


WEBHOOK = "kube-apiserver → vault-system/vault-secrets-webhook:443"
INIT = "app/app init container init-ubuntu → vault/vault:8200"
APP = "app/app container app → vault/vault:8200"


def test_scenario_2_refusal_is_predicted_when_vault_permissive_is_toggled_off() -> None:
    on = _verdicts("20-scenario-2", vault_permissive=True)
    assert on[INIT][0] and on[APP][0]
    assert "PeerAuthentication vault/default PERMISSIVE applies to vault/vault-0:8200" in on[INIT][1]
    off = _verdicts("20-scenario-2", vault_permissive=False)
    assert not off[INIT][0] and not off[APP][0]
    assert off[INIT][1].startswith("PeerAuthentication istio-system/default STRICT applies to vault/vault-0:8200")
    assert "has no istio-proxy" in off[INIT][1]
    assert off[INIT][2] == "vault-env in init-ubuntu gives up: the pod stays in Init (no secret)"
    frame = prediction_frame(predict("20-scenario-2", _with(vault_permissive=False), LiveState()))
    assert list(frame.columns) == list(COLUMNS)
    assert (
        frame.loc[frame.connection == INIT, "verdict"].item().startswith("refused: tls: failed to verify certificate")
    )


def test_scenario_1_does_not_need_vault_permissive() -> None:
    """Vault has no sidecar in scenario 1: nothing enforces the policy, whatever the toggle."""
    for permissive in (True, False):
        verdicts = _verdicts("10-scenario-1", vault_permissive=permissive)
        assert all(allowed for allowed, _, _ in verdicts.values())
        assert "vault/vault-0 has no istio-proxy" in verdicts[INIT][1]


@pytest.mark.parametrize(
    ("mode", "init_allowed", "clause"),
    [
        (SidecarMode.CLASSIC, False, "runs before istio-init (classic sidecar)"),
        (SidecarMode.CNI, False, "is captured by Istio CNI before istio-proxy starts"),
        (SidecarMode.NATIVE, True, "goes through its own istio-proxy (native sidecar), so it uses mTLS"),
    ],
)
def test_scenario_3_init_container_depends_on_sidecar_mode(mode: SidecarMode, init_allowed: bool, clause: str) -> None:
    verdicts = _verdicts("30-scenario-3", vault_permissive=False, sidecar_mode=mode)
    assert verdicts[INIT][0] is init_allowed
    assert clause in verdicts[INIT][1]
    assert verdicts[APP][0]  # the main container always goes through its ready Envoy


@pytest.mark.parametrize(
    ("policy", "consequence", "app_consequence"),
    [
        (FailurePolicy.IGNORE, "failurePolicy Ignore: new pods are created unmutated", "vault-env was not injected"),
        (FailurePolicy.FAIL, "failurePolicy Fail: the API server rejects every new pod", "the pod is never created"),
    ],
)
def test_webhook_without_permissive_is_refused(policy: FailurePolicy, consequence: str, app_consequence: str) -> None:
    verdicts = _verdicts("10-scenario-1", webhook_permissive=False, failure_policy=policy)
    allowed, reason, said = verdicts[WEBHOOK]
    assert not allowed
    assert reason.startswith("PeerAuthentication istio-system/default STRICT applies to vault-system/")
    assert "source kube-apiserver is outside the mesh" in reason
    assert said.startswith(consequence)
    assert verdicts[INIT][2].endswith(app_consequence)


def test_webhook_outside_the_mesh_needs_no_exception() -> None:
    params = load_params(overrides=["bank_vaults.inject_sidecar=false", "bank_vaults.webhook_permissive=false"])
    verdicts = {p.connection: p.verdict for p in predict("01-prereq-bank-vaults", params, LiveState())}
    assert verdicts[WEBHOOK].allowed
    assert "has no istio-proxy" in verdicts[WEBHOOK].reason


def test_later_runbooks_read_the_webhook_namespace_label_from_the_cluster() -> None:
    params = _with(webhook_permissive=False)
    outside = LiveState(namespace_labels={"vault-system": {"name": "vault-system"}})
    inside = LiveState(namespace_labels={"vault-system": {"istio-injection": "enabled"}})
    verdicts = [{p.connection: p.verdict for p in predict("20-scenario-2", params, live)} for live in (outside, inside)]
    assert verdicts[0][WEBHOOK].allowed
    assert not verdicts[1][WEBHOOK].allowed


def test_live_policies_the_runbooks_do_not_manage_are_kept_and_managed_ones_replaced() -> None:
    strict_vault = dict(
        peer_authentication(
            "vault-strict", "vault", PeerAuthenticationMode.STRICT, selector={"app.kubernetes.io/name": "vault"}
        )
    )
    stale_default = dict(peer_authentication("default", "vault", PeerAuthenticationMode.STRICT))
    live = LiveState(peer_authentications=(strict_vault, stale_default))
    names = [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in planned_policies(PARAMS, live)]
    assert names == [
        ("vault", "vault-strict"),
        ("istio-system", "default"),
        ("vault-system", "vault-secrets-webhook"),
        ("vault", "default"),
    ]
    verdicts = _verdicts("20-scenario-2", live, vault_permissive=True)
    assert not verdicts[INIT][0]  # the workload-level STRICT policy wins over the namespace's PERMISSIVE
    assert "PeerAuthentication vault/vault-strict STRICT" in verdicts[INIT][1]


def test_mesh_layout_matches_the_expected_ready_counts() -> None:
    """The prediction's layout (who is in the mesh) is the one the expectations count containers for."""
    for name in (RunbookName.SCENARIO_1, RunbookName.SCENARIO_2, RunbookName.SCENARIO_3):
        vault, app = expected_pods(name, PARAMS)
        assert MESH_LAYOUT[name] == (vault.ready["vault"] == "4/4", app.ready["app"] == "2/2")
    assert MESH_LAYOUT[RunbookName.PREREQ_ISTIO] == MESH_LAYOUT[RunbookName.SCENARIO_1]


def test_toggles_round_trip_through_params() -> None:
    toggles = Toggles(SidecarMode.NATIVE, False, False, FailurePolicy.FAIL, False)
    params = toggles.apply_to(PARAMS)
    assert Toggles.of(params) == toggles
    assert (params.istio.sidecar_mode, params.vault.permissive, params.bank_vaults.pods_failure_policy) == (
        SidecarMode.NATIVE,
        False,
        FailurePolicy.FAIL,
    )
    assert params.app == PARAMS.app and params.istio.namespace == PARAMS.istio.namespace
    assert Toggles.of(PARAMS).changed(toggles) == [
        "sidecar_mode",
        "webhook_permissive",
        "vault_permissive",
        "failure_policy",
        "istio_enabled",
    ]
