"""Synthetic run directories (valid evidence written with EvidenceWriter) and the DataFrame loader over them.

Other report tests import `write_run` and the fixtures from here. A synthetic run follows the guide's five
notebooks; `vault_permissive=False` makes scenario 2 fail the way the sandbox does (the app, outside the
mesh, is refused by Vault's STRICT sidecar), `hostile=True` puts markup and control characters into
reasons, and `secret` is a value the evidence writer knows and must redact.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from meshbook.evidence import EvidenceWriter, Redactor, check_record, fingerprint, read_evidence
from meshbook.report import load, read_run

FP_KEY = b"k" * 32
SECRET = "s3cr3t-AWS-value-0123456789"
HOSTILE = '<script>alert("x")</script> & ]]> \x1b[31mred\x1b[0m \x07 <img src="https://evil.example/x.png">'
STRICT_REASON = (
    "PeerAuthentication istio-system/default STRICT applies to vault/vault-0:8200; source app/app-6f7e8d9c0b-fffff "
    "init container init-ubuntu has no istio-proxy, so its traffic is plain text and is reset"
)
RUN_PASS = "20250101T000000Z-aaaaaa"
RUN_FAIL = "20250102T000000Z-bbbbbb"
NOTEBOOKS = {
    "00-prereq-istio": "Prerequisite: Istio with mesh-wide STRICT mTLS",
    "01-prereq-bank-vaults": "Prerequisite: the Bank-Vaults operator and webhook in the mesh",
    "10-scenario-1": "Scenario 1: Vault outside the mesh, the app inside",
    "20-scenario-2": "Scenario 2: Vault inside the mesh, the app outside",
    "30-scenario-3": "Scenario 3: both Vault and the app inside the mesh",
}


def _pod(
    ready: str, containers: list[str], *, init: list[str] | None = None, status: str = "Running"
) -> dict[str, Any]:
    sidecar = "istio-proxy" in containers
    phase = "Running" if status == "Running" else "Pending"
    restarts = 0 if status == "Running" else 3
    return {
        "ready": ready,
        "containers": containers,
        "init_containers": init or [],
        "sidecar": sidecar,
        "phase": phase,
        "restarts": restarts,
        "status": status,
    }


def _delivery(container: str, delivered: bool, value: str) -> dict[str, Any]:
    return {
        "container": container,
        "path": "secret/data/accounts/aws",
        "key": "AWS_SECRET_ACCESS_KEY",
        "delivered": delivered,
        "matches_vault": True if delivered else None,
        "fingerprint": fingerprint(value, FP_KEY) if delivered else None,
    }


def write_run(
    root: Path, run_id: str, *, vault_permissive: bool = True, hostile: bool = False, secret: str = SECRET
) -> Path:
    """A complete run directory under root: notebooks/, evidence.jsonl, summary.json."""
    run = root / run_id
    (run / "notebooks").mkdir(parents=True)
    start = datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    ticks = iter(range(10_000))
    redactor = Redactor()
    redactor.add(secret, label="secret/data/accounts/aws#AWS_SECRET_ACCESS_KEY")
    writer = EvidenceWriter(
        run / "evidence.jsonl", run_id, redactor=redactor, clock=lambda: start + timedelta(seconds=next(ticks) * 0.5)
    )
    fails = not vault_permissive

    def rec(nb: str, step: str, kind: str, subject: str, outcome: str, **kw: Any) -> None:
        writer.record(kind, subject, notebook=nb, step=step, outcome=outcome, **kw)

    def pod(nb: str, step: str, subject: str, want: str, observed: dict[str, Any]) -> None:
        ok = observed["ready"] == want and observed["status"] == "Running"
        reason = f"READY {observed['ready']}, {observed['status']}" + (f" {HOSTILE}" if hostile and not ok else "")
        rec(
            nb,
            step,
            "pod_state",
            subject,
            "pass" if ok else "fail",
            expected={"ready": want},
            observed=observed,
            reason=reason,
        )

    nb = "00-prereq-istio"
    rec(nb, "install Istio", "install", "istio", "info", observed={"versions": {"istio": "1.30.0"}})
    pod(nb, "install Istio", "istio-system/istiod-5d8f7c9b6d-abcde", "1/1", _pod("1/1", ["discovery"]))
    rec(
        nb,
        "require mTLS",
        "action",
        "istio-system/default",
        "info",
        observed={"kind": "PeerAuthentication", "applied": "manifest mesh-mtls", "changed": True},
    )
    rec(
        nb,
        "mTLS posture",
        "mesh_policy",
        "istio-system/default",
        "pass",
        expected={"mode": "STRICT"},
        observed={"mode": "STRICT"},
    )

    nb = "01-prereq-bank-vaults"
    rec(
        nb,
        "webhook PERMISSIVE",
        "action",
        "vault-system/vault-secrets-webhook",
        "info",
        observed={"kind": "PeerAuthentication", "applied": "manifest webhook-permissive", "changed": True},
    )
    for name in (
        "vault-operator-6b7c8d9f5c-aaaaa",
        "vault-secrets-webhook-7f6d5c4b3a-bbbbb",
        "vault-secrets-webhook-7f6d5c4b3a-ccccc",
    ):
        pod(nb, "install Bank-Vaults", f"vault-system/{name}", "2/2", _pod("2/2", [name.split("-6")[0], "istio-proxy"]))

    nb = "10-scenario-1"
    pod(nb, "Vault", "vault/vault-0", "3/3", _pod("3/3", ["vault", "bank-vaults", "prometheus-exporter"]))
    pod(nb, "Vault", "vault/vault-configurer-5c6d7e8f9a-ddddd", "1/1", _pod("1/1", ["vault-configurer"]))
    if vault_permissive:
        rec(
            nb,
            "vault PERMISSIVE",
            "action",
            "vault/default",
            "info",
            observed={"kind": "PeerAuthentication", "applied": "manifest vault-permissive", "changed": True},
        )
    else:
        rec(
            nb,
            "vault PERMISSIVE",
            "mesh_policy",
            "vault/default",
            "skip",
            reason="vault.permissive is false: no PERMISSIVE policy in the Vault namespace",
        )
    pod(nb, "app", "app/app-6f7e8d9c0b-eeeee", "2/2", _pod("2/2", ["app", "istio-proxy"], init=["copy-vault-env"]))
    rec(nb, "app", "vault_status", "vault/vault", "pass", observed={"initialized": True, "sealed": False})
    for container in ("app", "init-ubuntu"):
        rec(
            nb,
            "app",
            "secret_delivery",
            f"app/app/{container}",
            "pass",
            expected={"delivered": True, "matches_vault": True, "fingerprint": fingerprint(secret, FP_KEY)},
            observed=_delivery(container, True, secret),
            reason=f"read {secret} from the log" if container == "app" else "",
        )

    nb = "20-scenario-2"
    rec(nb, "injection", "namespace", "app", "info", observed={"injection": False})
    rec(nb, "injection", "namespace", "vault", "info", observed={"injection": True})
    pod(
        nb,
        "recreate",
        "vault/vault-0",
        "4/4",
        _pod("4/4", ["vault", "bank-vaults", "prometheus-exporter", "istio-proxy"]),
    )
    pod(
        nb,
        "recreate",
        "vault/vault-configurer-5c6d7e8f9a-ggggg",
        "2/2",
        _pod("2/2", ["vault-configurer", "istio-proxy"]),
    )
    app = (
        _pod("0/1", ["app"], init=["copy-vault-env", "init-ubuntu"], status="Init:CrashLoopBackOff")
        if fails
        else (_pod("1/1", ["app"], init=["copy-vault-env", "init-ubuntu"]))
    )
    pod(nb, "recreate", "app/app-6f7e8d9c0b-fffff", "1/1", app)
    rec(nb, "recreate", "vault_status", "vault/vault", "pass", observed={"initialized": True, "sealed": False})
    for container in ("app", "init-ubuntu"):
        rec(
            nb,
            "recreate",
            "secret_delivery",
            f"app/app/{container}",
            "fail" if fails else "pass",
            expected={"delivered": True, "matches_vault": True, "fingerprint": fingerprint(secret, FP_KEY)},
            observed=_delivery(container, not fails, secret),
            reason=STRICT_REASON if fails else "",
        )

    nb = "30-scenario-3"
    rec(nb, "injection", "namespace", "app", "info", observed={"injection": True})
    pod(
        nb,
        "recreate",
        "vault/vault-0",
        "4/4",
        _pod("4/4", ["vault", "bank-vaults", "prometheus-exporter", "istio-proxy"]),
    )
    pod(
        nb,
        "recreate",
        "vault/vault-configurer-5c6d7e8f9a-hhhhh",
        "2/2",
        _pod("2/2", ["vault-configurer", "istio-proxy"]),
    )
    waited = {**_pod("2/2", ["app", "istio-proxy"], init=["copy-vault-env"]), "restarts": 7}
    waited["restarted"] = [
        {"container": "app", "restarts": 7, "exit_code": 1, "reason": "Error", "vault_env_token_failed": True}
    ]  # the app's vault-env could not reach Vault until its istio-proxy was ready (classic sidecar)
    pod(nb, "recreate", "app/app-6f7e8d9c0b-iiiii", "2/2", waited)
    for container in ("app", "init-ubuntu"):
        rec(
            nb,
            "recreate",
            "secret_delivery",
            f"app/app/{container}",
            "pass",
            expected={"delivered": True, "matches_vault": True, "fingerprint": fingerprint(secret, FP_KEY)},
            observed=_delivery(container, True, secret),
        )

    for name, title in NOTEBOOKS.items():
        params = {
            "target": "sandbox",
            "mode": "apply",
            "istio": {"sidecar_mode": "classic", "mesh_mtls_mode": "STRICT"},
            "bank_vaults": {"webhook_permissive": True},
            "vault": {"permissive": vault_permissive},
        }
        cells = [{"cell_type": "markdown", "metadata": {}, "source": [f"# {title}\n", "\n", "Narrative."]}]
        notebook = {
            "cells": cells,
            "metadata": {"papermill": {"parameters": params}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        (run / "notebooks" / f"{name}.ipynb").write_text(json.dumps(notebook, indent=1) + "\n")
    failed_reason = (
        f"20-scenario-2: 3 expectation(s) failed: app/app: expected READY 1/1, observed 0/1; {STRICT_REASON}"
    )
    summary = {
        "run_id": run_id,
        "exit_code": 1 if fails else 0,
        "notebooks": [
            {
                "runbook": name,
                "outcome": "fail" if fails and name == "20-scenario-2" else "pass",
                "seconds": 10.0 + i,
                "cell": 9 if fails and name == "20-scenario-2" else None,
                "error": "ExpectationFailed" if fails and name == "20-scenario-2" else "",
                "reason": failed_reason if fails and name == "20-scenario-2" else "",
            }
            for i, name in enumerate(NOTEBOOKS)
        ],
    }
    (run / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return run


@pytest.fixture
def passing_run(tmp_path: Path) -> Path:
    return write_run(tmp_path / "runs", RUN_PASS)


@pytest.fixture
def failing_run(tmp_path: Path) -> Path:
    return write_run(tmp_path / "runs", RUN_FAIL, vault_permissive=False)


def test_synthetic_evidence_is_valid_and_redacted(failing_run: Path) -> None:
    records = read_evidence(failing_run / "evidence.jsonl")
    assert len(records) == 29
    assert [check_record(r) for r in records] == [[]] * 29
    text = (failing_run / "evidence.jsonl").read_text()
    assert SECRET not in text
    assert "read ‹redacted:secret-data-accounts-aws#AWS_SECRET_ACCESS_KEY› from the log" in text


def test_read_run(failing_run: Path) -> None:
    run = read_run(failing_run)
    assert (run.run_id, run.exit_code, run.state, run.outcome) == (RUN_FAIL, 1, "complete", "fail")
    assert [(n.runbook, n.outcome, n.title) for n in run.notebooks] == [
        (name, "fail" if name == "20-scenario-2" else "pass", title) for name, title in NOTEBOOKS.items()
    ]
    assert run.problems == []
    assert (run.started_at, run.ended_at) == ("2025-01-02T00:00:00.000Z", "2025-01-02T00:00:14.000Z")


def _rows(frame: pd.DataFrame, *columns: str) -> list[list[Any]]:
    """The cells of `columns` as Python lists, missing values (NaN, NA) as None."""
    part = frame[list(columns)].astype(object)
    return [[None if pd.isna(v) else v for v in row] for row in part.values.tolist()]


def test_load_frames(passing_run: Path, failing_run: Path) -> None:
    frames = load([passing_run, failing_run])
    assert sorted(frames) == ["deliveries", "evidence", "notebooks", "pods", "policies"]
    assert {name: len(frame) for name, frame in frames.items()} == {
        "evidence": 58,
        "notebooks": 10,
        "pods": 26,
        "deliveries": 12,
        "policies": 8,
    }
    nbs = frames["notebooks"]
    s2 = nbs[nbs.runbook == "20-scenario-2"]
    assert _rows(s2, "run_id", "outcome", "passed", "failed") == [[RUN_PASS, "pass", 5, 0], [RUN_FAIL, "fail", 2, 3]]
    pods = frames["pods"]
    app = pods[(pods.run_id == RUN_FAIL) & (pods.notebook == "20-scenario-2") & (pods.workload == "app")]
    assert _rows(app, "pod", "expected_ready", "ready", "status", "sidecar", "outcome") == [
        ["app-6f7e8d9c0b-fffff", "1/1", "0/1", "Init:CrashLoopBackOff", False, "fail"]
    ]
    deliveries = frames["deliveries"]
    failed = deliveries[deliveries.outcome == "fail"]
    assert _rows(failed, "run_id", "container", "delivered", "fingerprint") == [
        [RUN_FAIL, "app", False, None],
        [RUN_FAIL, "init-ubuntu", False, None],
    ]
    assert set(deliveries[deliveries.delivered]["fingerprint"]) == {fingerprint(SECRET, FP_KEY)}
    assert str(frames["evidence"]["at"].dtype) == "datetime64[us, UTC]"
    policies = frames["policies"][frames["policies"].run_id == RUN_FAIL]
    assert _rows(policies, "subject", "source", "mode", "outcome") == [
        ["istio-system/default", "applied", "STRICT", "info"],
        ["istio-system/default", "observed", "STRICT", "pass"],
        ["vault-system/vault-secrets-webhook", "applied", "PERMISSIVE", "info"],
        ["vault/default", "observed", None, "skip"],
    ]


def test_load_of_a_run_that_died(tmp_path: Path) -> None:
    run = write_run(tmp_path, RUN_FAIL)
    (run / "summary.json").unlink()
    (run / "RUNNING").write_text("{}\n")
    with (run / "evidence.jsonl").open("a") as handle:
        handle.write('{"schema": "meshbook.evid')  # a writer stopped mid-record
    data = read_run(run)
    assert (data.state, data.outcome, data.exit_code) == ("running", "incomplete", None)
    assert [n.outcome for n in data.notebooks] == ["unknown"] * 5
    assert data.problems == ["evidence.jsonl: line 30 is a partial record (25 bytes), skipped"]
