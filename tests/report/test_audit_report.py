"""The audit's part of the reports, from synthetic audit runs: findings table, matrix and junit per check."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat

from meshbook.evidence import EvidenceWriter, Redactor
from meshbook.report import build_reports

FINDING = {
    "code": "MB0101",
    "severity": "Error",
    "title": "the API server cannot reach the Bank-Vaults webhook",
    "object": "MutatingWebhookConfiguration vault-secrets-webhook",
    "message": "webhook pods.vault-secrets-webhook: <b>STRICT</b>",
    "objects": ["PeerAuthentication istio-system/default"],
    "remedy": "meshbook manifests webhook-permissive",
}


def audit_run(root: Path, run_id: str, context: str, *, findings: int, exit_code: int = 0) -> Path:
    run = root / run_id
    (run / "notebooks").mkdir(parents=True)
    book = nbformat.v4.new_notebook()
    book.metadata["papermill"] = {"parameters": {"kube_context": context, "target": "live"}}
    nbformat.write(book, run / "notebooks" / "40-audit.ipynb")
    writer = EvidenceWriter(run / "evidence.jsonl", run_id, redactor=Redactor())
    for _ in range(findings):
        writer.record(
            "finding",
            "vault-secrets-webhook",
            notebook="40-audit",
            step="findings",
            observed=FINDING,
            outcome="fail",
            reason="Error [MB0101] (MutatingWebhookConfiguration vault-secrets-webhook) ...",
        )
    outcome = "pass" if exit_code == 0 else "fail"
    error = {0: "", 1: "ExpectationFailed", 3: "UnreachableError"}[exit_code]
    summary = {
        "run_id": run_id,
        "exit_code": exit_code,
        "leaks": [],
        "notebooks": [
            {"runbook": "40-audit", "outcome": outcome, "seconds": 1.0, "cell": None, "error": error, "reason": error}
        ],
    }
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_one_audit_shows_its_findings_escaped_and_a_failing_check(tmp_path: Path) -> None:
    run = audit_run(tmp_path, "20250101T000000Z-aaaaaa", "prod", findings=1, exit_code=1)
    build_reports([run])
    html = (run / "report.html").read_text()
    assert "Audit findings" in html and "&lt;b&gt;STRICT&lt;/b&gt;" in html and "<b>STRICT" not in html
    (suite,) = [s for s in ET.parse(run / "junit.xml").getroot().iter("testsuite") if s.get("name") == "audit prod"]
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["audit"].find("error") is None
    assert cases[f"MB0101 {FINDING['title']}"].find("failure") is not None


def test_a_fleet_gets_a_matrix_and_an_unreachable_context_its_exit_code(tmp_path: Path) -> None:
    runs = [
        audit_run(tmp_path, "20250101T000000Z-aaaaaa", "eu", findings=2, exit_code=1),
        audit_run(tmp_path, "20250101T000000Z-bbbbbb", "us", findings=0),
        audit_run(tmp_path, "20250101T000000Z-cccccc", "asia", findings=0, exit_code=3),
    ]
    build_reports(runs, tmp_path / "out")
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count('id="audit"') == 1 and "exit 3" in html
    suites = {s.get("name"): s for s in ET.parse(tmp_path / "out" / "junit.xml").getroot().iter("testsuite")}
    assert (suites["audit eu"].get("failures"), suites["audit us"].get("failures")) == ("1", "0")
    assert suites["audit asia"].get("errors") == "1"


def test_one_context_audited_twice_gets_a_column_per_run(tmp_path: Path) -> None:
    runs = [
        audit_run(tmp_path, "20250101T000000Z-aaaaaa", "prod", findings=1, exit_code=1),
        audit_run(tmp_path, "20250102T000000Z-bbbbbb", "prod", findings=0),
    ]
    build_reports(runs, tmp_path / "out")
    html = (tmp_path / "out" / "report.html").read_text()
    assert "prod 20250101T000000Z-aaaaaa" in html and "prod 20250102T000000Z-bbbbbb" in html
