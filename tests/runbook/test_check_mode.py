"""`mode: check` against a kept sandbox: read-only, everything holds, then drift is caught.

A default run (apply, all five runbooks) leaves the sandbox in scenario 3's state (`--keep-sandbox`, fixed
`sandbox.state_dir`). Check runs then compare that cluster with what the runbooks expect. They check the
prerequisites and scenario 3: the runbooks are cumulative, so scenarios 1 and 2 describe earlier states of
the cluster (Vault outside the mesh, the app outside the mesh) and a check of them against scenario 3's
cluster rightly reports READY 4/4 where scenario 1 expects 3/3.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from meshbook.sandbox import control
from tests.runbook import Run, hermetic_env, meshbook, run_args

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CHECKED = ("00-prereq-istio", "01-prereq-bank-vaults", "30-scenario-3")
KUBECTL = shutil.which("kubectl")


@dataclass
class CheckRuns:
    apply: Run
    versions_before: dict[str, str]
    check: Run
    versions_after: dict[str, str]
    drift: Run
    sandbox_running_after_drift_run: bool


def _kubectl(kubeconfig: Path, *args: str) -> str:
    assert KUBECTL is not None
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    proc = subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, f"kubectl {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
    return proc.stdout


def _resource_versions(kubeconfig: Path) -> dict[str, str]:
    """`kind namespace/name` -> resourceVersion of everything `get all,peerauthentications,vaults` shows."""
    listing: dict[str, Any] = json.loads(
        _kubectl(kubeconfig, "get", "all,peerauthentications,vaults", "-A", "-o", "json")
    )
    return {
        f"{item['kind']} {item['metadata'].get('namespace', '')}/{item['metadata']['name']}": item["metadata"][
            "resourceVersion"
        ]
        for item in listing["items"]
    }


@pytest.fixture(scope="module")
def check_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CheckRuns]:
    if KUBECTL is None:
        pytest.skip("kubectl is not on PATH")
    home = tmp_path_factory.mktemp("check-mode")
    state = home / "sandbox-state"
    env = hermetic_env(home)
    same_sandbox = f"sandbox.state_dir={state}"
    try:
        apply = meshbook(home, *run_args(home / "apply", same_sandbox, extra=("--keep-sandbox",)), env=env)
        assert apply.code == 0, apply.describe()
        kubeconfig = state / "kubeconfig"
        before = _resource_versions(kubeconfig)
        check_args = run_args(home / "check", same_sandbox, "mode=check", only=CHECKED, extra=("--keep-sandbox",))
        check = meshbook(home, *check_args, env=env)
        after = _resource_versions(kubeconfig)
        _kubectl(kubeconfig, "label", "namespace", "app", "istio-injection-")
        # No --keep-sandbox: the sandbox was started by the apply run, not by this one.
        drift = meshbook(home, *run_args(home / "drift", same_sandbox, "mode=check", only=("30-scenario-3",)), env=env)
        yield CheckRuns(apply, before, check, after, drift, control.running(state) is not None)
    finally:
        down = meshbook(home, "sandbox", "down", "--state", str(state), env=env, timeout=120)
        assert down.code == 0, down.describe()
        assert control.running(state) is None


def test_check_run_after_apply_holds(check_runs: CheckRuns) -> None:
    run = check_runs.check
    assert run.code == 0, run.describe()
    assert run.summary["exit_code"] == 0
    assert run.outcomes() == dict.fromkeys(CHECKED, "pass")
    assert [r for r in run.evidence if r["outcome"] == "fail"] == []
    # Installs and pod recreation are not done in check mode, and say so.
    assert {(r["kind"], r["subject"], r["reason"]) for r in run.evidence if r["outcome"] == "skip"} == {
        ("install", "istio", "mode check: installs are verified by the expectations"),
        ("install", "bank-vaults", "mode check: installs are verified by the expectations"),
        ("action", "app", "mode check: pods are not recreated"),
        ("action", "vault", "mode check: pods are not recreated"),
    }
    # Every object the apply run would apply was compared, and matched.
    compared = [r for r in run.evidence if r["kind"] == "action" and r["outcome"] != "skip"]
    assert compared, "no object was compared"
    assert {(r["outcome"], r["reason"]) for r in compared} == {("pass", "matches")}
    delivered = [r for r in run.records("secret_delivery") if r["observed"]["delivered"]]
    assert sorted(r["subject"] for r in delivered) == ["app/app/app", "app/app/init-ubuntu"]


def test_check_run_moves_no_resource_version(check_runs: CheckRuns) -> None:
    before, after = check_runs.versions_before, check_runs.versions_after
    assert len(before) >= 20  # pods, services, deployments, statefulset, PeerAuthentications, the Vault CR
    assert any(key.startswith("Vault vault/") for key in before)
    assert any(key.startswith("PeerAuthentication istio-system/") for key in before)
    assert after == before


def test_check_run_names_injection_drift(check_runs: CheckRuns) -> None:
    run = check_runs.drift
    failed = [r for r in run.evidence if r["outcome"] == "fail"]
    assert [(r["notebook"], r["kind"], r["subject"], r["expected"], r["observed"], r["reason"]) for r in failed] == [
        (
            "30-scenario-3",
            "namespace",
            "app",
            {"injection": True},
            {"injection": False},
            "istio-injection label is not set",
        )
    ]


def test_check_run_with_drift_exits_1(check_runs: CheckRuns) -> None:
    run = check_runs.drift
    assert run.code == 1, run.describe()
    assert run.outcomes() == {"30-scenario-3": "fail"}
    assert "istio-injection" in run.notebook("30-scenario-3")["reason"]


def test_run_leaves_a_sandbox_it_did_not_start_running(check_runs: CheckRuns) -> None:
    assert check_runs.sandbox_running_after_drift_run
