"""What-if variants of the guide: each toggle breaks (or not) the scenarios it should, for the reason it should.

Every failing variant exits 1 and its summary and evidence name the objects that decided the failure (the
connectivity model's verdicts: the PeerAuthentication, the source container and why its traffic was or
was not captured). Per-notebook outcomes come from summary.json, per-container outcomes from the
secret_delivery records in evidence.jsonl.

Failing variants keep the default `timeouts.pods_ready` (180 s): an app pod whose init container can never
reach Vault crash-loops, and the wait gives up on the crash loop with its reason rather than sitting out
the timeout (each failing variant checks that), while the healthy pods of the same run get a bound that a
busy machine cannot exceed. Each variant is one `meshbook run` with a fresh sandbox.
"""

from __future__ import annotations

import pytest

from meshbook.evidence import check_record
from tests.runbook import UP_TO_SCENARIO_1, Run, meshbook, pod_ready_by_workload, run_args

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

STRICT_ON_VAULT = "PeerAuthentication istio-system/default STRICT applies to vault/vault-0:8200; source app/app-"
STRICT_ON_WEBHOOK = "PeerAuthentication istio-system/default STRICT applies to vault-system/vault-secrets-webhook-"
NOT_MUTATED = (
    "the pod was not mutated (the app printed the literal vault: reference): "
    "the vault-secrets-webhook did not mutate the pod: "
)


def _variant(factory: pytest.TempPathFactory, name: str, *sets: str, only: tuple[str, ...] = ()) -> Run:
    home = factory.mktemp(name)
    run = meshbook(home, *run_args(home / "runs", *sets, only=only))
    assert run.run_dir is not None, run.describe()
    assert {r["seq"]: check_record(r) for r in run.evidence if check_record(r)} == {}
    return run


def _not_delivered(run: Run, notebook: str, container: str) -> str:
    """Assert one container's verdict is 'not delivered' and return its reason."""
    record = run.verdict(notebook, container)
    assert record["outcome"] == "fail"
    assert record["subject"] == f"app/app/{container}"
    observed = record["observed"]
    assert (observed["container"], observed["delivered"], observed["matches_vault"]) == (container, False, False)
    # Nothing was shown, so nothing is fingerprinted as observed; the expected value's fingerprint (Vault's,
    # what the container should have printed) stays on record beside it, never a value itself.
    assert observed["fingerprint"] is None
    assert record["expected"]["fingerprint"].startswith("hmac-sha256:")
    return str(record["reason"])


def _not_run(run: Run, notebook: str, container: str) -> None:
    """Assert a container that never started (it waits behind a failed init container) has one record saying so."""
    records = run.deliveries(notebook)[container]
    assert len(records) == 1, records
    assert (records[0]["outcome"], records[0]["observed"]) == ("fail", None)
    assert records[0]["reason"].startswith(f"container {container} has not run: "), records[0]["reason"]
    assert "PodInitializing" in records[0]["reason"]


def _delivered(run: Run, notebook: str) -> None:
    for container in ("app", "init-ubuntu"):
        records = run.deliveries(notebook)[container]
        assert len(records) == 1, records
        assert (records[0]["outcome"], records[0]["observed"]["delivered"]) == ("pass", True)


# -- the webhook without its PERMISSIVE exception ----------------------------------------------------------


@pytest.fixture(scope="module")
def webhook_strict(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _variant(tmp_path_factory, "webhook-strict", "bank_vaults.webhook_permissive=false", only=UP_TO_SCENARIO_1)


def test_webhook_strict_fails_scenario_1(webhook_strict: Run) -> None:
    run = webhook_strict
    assert run.code == 1, run.describe()
    assert run.summary["exit_code"] == 1
    assert run.outcomes() == {"00-prereq-istio": "pass", "01-prereq-bank-vaults": "pass", "10-scenario-1": "fail"}
    entry = run.notebook("10-scenario-1")
    assert entry["error"] == "ExpectationFailed"
    assert entry["reason"].startswith(f"10-scenario-1: 2 expectation(s) failed: {NOT_MUTATED}{STRICT_ON_WEBHOOK}")


def test_webhook_strict_evidence_names_the_webhook_and_the_mesh_policy(webhook_strict: Run) -> None:
    run = webhook_strict
    skipped = [r for r in run.records("mesh_policy", "01-prereq-bank-vaults") if r["outcome"] == "skip"]
    assert [(r["subject"], r["reason"]) for r in skipped] == [
        (
            "vault-system/vault-secrets-webhook",
            "bank_vaults.webhook_permissive is false: no PERMISSIVE exception for the webhook",
        )
    ]
    for container in ("app", "init-ubuntu"):
        reason = _not_delivered(run, "10-scenario-1", container)
        assert reason.startswith(NOT_MUTATED + STRICT_ON_WEBHOOK), reason
        assert reason.endswith(
            ":8443; source kube-apiserver is outside the mesh, so the sidecar answers its TLS with the Istio "
            "workload certificate, which fails the client's check"
        ), reason
        assert len(run.deliveries("10-scenario-1")[container]) == 1
    # The unmutated pod runs (it just prints the reference), with its sidecar: READY 2/2.
    assert pod_ready_by_workload(run, "10-scenario-1") == {"vault-0": ["3/3"], "configurer": ["1/1"], "app": ["2/2"]}


# -- Vault without its PERMISSIVE policy (classic sidecars) ------------------------------------------------


@pytest.fixture(scope="module")
def vault_strict(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _variant(tmp_path_factory, "vault-strict", "vault.permissive=false")


def test_vault_strict_holds_scenario_1_and_fails_2_and_3(vault_strict: Run) -> None:
    run = vault_strict
    assert run.code == 1, run.describe()
    assert run.summary["exit_code"] == 1
    assert run.outcomes() == {
        "00-prereq-istio": "pass",
        "01-prereq-bank-vaults": "pass",
        "10-scenario-1": "pass",
        "20-scenario-2": "fail",
        "30-scenario-3": "fail",
    }
    for name in ("20-scenario-2", "30-scenario-3"):
        entry = run.notebook(name)
        assert entry["error"] == "ExpectationFailed"
        assert entry["reason"].startswith(f"{name}: 3 expectation(s) failed: ")
        assert "PeerAuthentication istio-system/default STRICT" in entry["reason"]


def test_vault_strict_scenario_1_delivers(vault_strict: Run) -> None:
    skipped = [r for r in vault_strict.records("mesh_policy", "10-scenario-1") if r["outcome"] == "skip"]
    assert [(r["subject"], r["reason"]) for r in skipped] == [
        ("vault/default", "vault.permissive is false: no PERMISSIVE policy in the Vault namespace")
    ]
    _delivered(vault_strict, "10-scenario-1")


def test_vault_strict_scenario_2_refuses_the_app_outside_the_mesh(vault_strict: Run) -> None:
    run = vault_strict
    init = _not_delivered(run, "20-scenario-2", "init-ubuntu")
    assert init.startswith(STRICT_ON_VAULT), init
    assert init.endswith(
        " init container init-ubuntu has no istio-proxy, so the sidecar answers its TLS with the Istio workload "
        "certificate, which fails the client's check"
    ), init
    # The app container waits behind the failing init container.
    _not_run(run, "20-scenario-2", "app")
    ready = pod_ready_by_workload(run, "20-scenario-2")
    assert ready == {"vault-0": ["4/4"], "configurer": ["2/2"], "app": ["0/1"]}


def test_vault_strict_scenario_3_fails_the_classic_init_container(vault_strict: Run) -> None:
    run = vault_strict
    init = _not_delivered(run, "30-scenario-3", "init-ubuntu")
    assert init.startswith(STRICT_ON_VAULT), init
    assert init.endswith(
        " init container init-ubuntu runs before istio-init (classic sidecar), so the sidecar answers its TLS with "
        "the Istio workload certificate, which fails the client's check"
    ), init
    # Only the init container's connection fails: the app container waits behind it and never runs.
    _not_run(run, "30-scenario-3", "app")
    assert pod_ready_by_workload(run, "30-scenario-3") == {"vault-0": ["4/4"], "configurer": ["2/2"], "app": ["0/2"]}


# -- Vault without PERMISSIVE, native sidecars: scenario 3 holds -------------------------------------------


@pytest.fixture(scope="module")
def vault_strict_native(tmp_path_factory: pytest.TempPathFactory) -> Run:
    # Scenario 3 straight after scenario 1 (its steps put both namespaces in the mesh and recreate the
    # pods either way); scenario 2 under vault.permissive=false is covered above.
    only = (*UP_TO_SCENARIO_1, "30-scenario-3")
    sets = ("vault.permissive=false", "istio.sidecar_mode=native")
    return _variant(tmp_path_factory, "vault-strict-native", *sets, only=only)


def test_native_sidecars_hold_scenario_3_without_vault_permissive(vault_strict_native: Run) -> None:
    run = vault_strict_native
    assert run.code == 0, run.describe()
    assert run.outcomes() == {
        "00-prereq-istio": "pass",
        "01-prereq-bank-vaults": "pass",
        "10-scenario-1": "pass",
        "30-scenario-3": "pass",
    }
    _delivered(run, "30-scenario-3")
    # A native sidecar is an init container that kubectl counts in READY.
    assert pod_ready_by_workload(run, "30-scenario-3") == {"vault-0": ["4/4"], "configurer": ["2/2"], "app": ["2/2"]}


# -- Istio CNI: the init container is captured before the proxy runs ---------------------------------------


@pytest.fixture(scope="module")
def cni(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _variant(tmp_path_factory, "cni", "istio.sidecar_mode=cni", only=UP_TO_SCENARIO_1)


def test_cni_fails_scenario_1_init_container_connection_refused(cni: Run) -> None:
    run = cni
    assert run.code == 1, run.describe()
    assert run.outcomes() == {"00-prereq-istio": "pass", "01-prereq-bank-vaults": "pass", "10-scenario-1": "fail"}
    entry = run.notebook("10-scenario-1")
    assert entry["error"] == "ExpectationFailed"
    assert entry["reason"].startswith("10-scenario-1: 3 expectation(s) failed: ")
    init = _not_delivered(run, "10-scenario-1", "init-ubuntu")
    assert init.startswith("source app/app-"), init
    assert init.endswith(
        " init container init-ubuntu is captured by Istio CNI before istio-proxy starts (cni sidecar), so its "
        "connection to vault/vault:8200 is refused"
    ), init
    _not_run(run, "10-scenario-1", "app")
    assert pod_ready_by_workload(run, "10-scenario-1") == {"vault-0": ["3/3"], "configurer": ["1/1"], "app": ["0/2"]}
    assert [r["outcome"] for r in run.records("pod_state", "10-scenario-1") if r["subject"].startswith("app/")] == [
        "fail"
    ]


# -- the summary names the deciding objects ---------------------------------------------------------------

SUMMARY_NAMES = {
    ("vault_strict", "20-scenario-2"): (
        "PeerAuthentication istio-system/default STRICT applies to vault/vault-0:8200",
        "init container init-ubuntu has no istio-proxy",
    ),
    ("vault_strict", "30-scenario-3"): (
        "PeerAuthentication istio-system/default STRICT applies to vault/vault-0:8200",
        "init container init-ubuntu runs before istio-init (classic sidecar)",
    ),
    ("cni", "10-scenario-1"): (
        "init container init-ubuntu is captured by Istio CNI before istio-proxy starts (cni sidecar)",
        "connection to vault/vault:8200 is refused",
    ),
}


@pytest.mark.parametrize(("variant", "notebook"), list(SUMMARY_NAMES))
def test_summary_reason_names_the_deciding_objects(request: pytest.FixtureRequest, variant: str, notebook: str) -> None:
    run: Run = request.getfixturevalue(variant)
    reason = run.notebook(notebook)["reason"]
    for text in SUMMARY_NAMES[(variant, notebook)]:
        assert text in reason, reason
    # The crash-looping init container ended the default wait early: the reason is the loop, not a timeout.
    assert "timed out after" not in reason and "gave up after" in reason, reason


# -- failing fast: the default pods_ready wait gives up on a crash loop -------------------------------------


def test_a_crash_loop_ends_the_wait_with_the_reason_not_the_timeout(vault_strict: Run) -> None:
    run = vault_strict  # the default pods_ready wait (180 s)
    assert run.code == 1, run.describe()
    reason = run.notebook("20-scenario-2")["reason"]
    assert "timed out after" not in reason  # the 180 s pods_ready wait was not sat out
    assert "gave up after" in reason, reason
    assert "init container init-ubuntu crashed 3 times in a row the same way (exit code 1, Error)" in reason
    # The crashing container's own last lines (vault-env's error) and the connectivity model's verdict.
    assert "init-ubuntu's last lines: " in reason and "x509: certificate is not valid for any names" in reason
    assert f"the model says: {STRICT_ON_VAULT}" in reason


@pytest.fixture(scope="module")
def webhook_strict_fail_default_wait(tmp_path_factory: pytest.TempPathFactory) -> Run:
    sets = ("bank_vaults.webhook_permissive=false", "bank_vaults.pods_failure_policy=Fail")
    return _variant(tmp_path_factory, "webhook-strict-fail", *sets, only=UP_TO_SCENARIO_1)


def test_pods_the_webhook_denies_end_the_wait_with_the_reason(webhook_strict_fail_default_wait: Run) -> None:
    run = webhook_strict_fail_default_wait
    assert run.code == 1, run.describe()
    reason = run.notebook("10-scenario-1")["reason"]
    assert "timed out after" not in reason  # pods that can never be created are not waited for
    # The StatefulSet's FailedCreate event and the Deployments' ReplicaSet conditions, as the API server said.
    assert "StatefulSet vault/vault FailedCreate: create Pod vault-0 in StatefulSet vault failed error: " in reason
    assert "ReplicaSet app/app-" in reason and "FailedCreate: Internal error occurred: failed calling webhook" in reason
    assert f"the model says: {STRICT_ON_WEBHOOK}" in reason
