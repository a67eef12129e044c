"""Reports of a real run: `meshbook run` on the sandbox (prerequisites and scenario 1), then `meshbook report`.

Slow: the run starts the sandbox cluster and OpenBao and executes three notebooks. It is the session's
shared `scenario_1_run` (tests/conftest.py); this module reports on, and tampers with, its own copy.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from meshbook.evidence.manifest import verify_manifest, write_manifest
from meshbook.report import load, read_run, topology
from tests.conftest import CliResult
from tests.report.test_chromium import ARTIFACTS, chromium, dump_dom, page_requests, screenshot
from tests.report.test_reports import check_junit, check_self_contained
from tests.runbook import UP_TO_SCENARIO_1, Run, copy_run, run_dirs

__all__ = ["chromium"]

NOTEBOOKS = list(UP_TO_SCENARIO_1)
EXPECTATION_KINDS = ("pod_state", "secret_delivery", "mesh_policy")


@pytest.fixture(scope="module")
def real_run(scenario_1_run: Run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's copy of the session's run of NOTEBOOKS (the tests here write reports and tamper with it)."""
    run = scenario_1_run
    assert run.code == 0, run.out[-3000:] + run.err[-3000:]
    assert run.run_dir is not None and run_dirs(run.run_dir.parent) == [run.run_dir]
    return copy_run(run.run_dir, tmp_path_factory.mktemp("real"))


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_reports_of_a_real_run(real_run: Path, run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("report", str(real_run))
    assert result.code == 0, result.err
    assert result.out.splitlines() == [str(real_run / n) for n in ("report.html", "report.md", "junit.xml")]
    run = read_run(real_run)
    assert (run.state, run.exit_code, [(n.runbook, n.outcome) for n in run.notebooks]) == (
        "complete",
        0,
        [(name, "pass") for name in NOTEBOOKS],
    )
    assert run.problems == []

    root = check_junit((real_run / "junit.xml").read_text())
    assert [s.get("name") for s in root] == NOTEBOOKS
    records = [r for r in run.records if r["kind"] in EXPECTATION_KINDS and r["outcome"] in ("pass", "fail")]
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == (str(len(records) + 3), "0", "0")
    for suite, name in zip(root, NOTEBOOKS, strict=True):
        mine = [r for r in records if r["notebook"] == name]
        assert suite.get("tests") == str(len(mine) + 1)

    page = (real_run / "report.html").read_text()
    check_self_contained(page)
    assert page.index('id="summary"><h2>Outcome summary</h2>') < page.index('id="nb-00-prereq-istio"')
    for name in NOTEBOOKS:
        assert page.count(f'<section class="scenario" id="nb-{name}"><h2>{name}: ') == 1
    assert "What to do" not in page
    arrows = topology(run, "10-scenario-1").arrows
    assert [(a.label, a.verdict) for a in arrows] == [("admission", "ok"), ("init-ubuntu", "ok"), ("app", "ok")]

    frames = load([real_run])
    assert frames["notebooks"]["runbook"].tolist() == NOTEBOOKS
    deliveries = frames["deliveries"]
    assert deliveries["container"].tolist() == ["init-ubuntu", "app"]
    assert deliveries["delivered"].tolist() == [True, True]
    assert deliveries["matches_vault"].tolist() == [True, True]
    assert deliveries["fingerprint"].str.match(r"^hmac-sha256:[0-9a-f]{64}$").tolist() == [True, True]
    pods = frames["pods"]
    s1 = pods[pods.notebook == "10-scenario-1"].set_index("workload")
    assert s1.loc[["vault", "vault-configurer", "app"], "ready"].tolist() == ["3/3", "1/1", "2/2"]

    md = (real_run / "report.md").read_text()
    assert md.startswith(f"# meshbook run {run.run_id}\n\n## What was tested, where\n")
    assert "\n## Outcome summary\n\n**PASS**: 3 of 3 notebooks passed" in md


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_a_real_runs_header_is_observed(real_run: Path) -> None:
    """The header comes from what the run observed at its end (summary.json), not from the parameters."""
    from meshbook.manifests.vault import VAULT_IMAGE
    from meshbook.report.header import NOT_RECORDED, header_rows

    run = read_run(real_run)
    rows = dict(header_rows(run))
    assert NOT_RECORDED not in rows.values(), rows
    assert rows["target"] == "sandbox"
    assert re.fullmatch(r"kube-system namespace UID [0-9a-f-]{36}; meshbook sandbox \S+", rows["cluster identity"])
    assert re.fullmatch(r"v1\.\d+\.\d+", rows["Kubernetes"])
    assert "istiod/discovery: " in rows["Istio (istiod image)"]
    assert "vault-operator" in rows["Bank-Vaults (operator and webhook images)"]
    assert "vault-secrets-webhook" in rows["Bank-Vaults (operator and webhook images)"]
    # the CR names HashiCorp's image; the server that answers is the sandbox's OpenBao: both are said
    assert rows["Vault"].startswith(f"Vault CR image {VAULT_IMAGE}; the server reports version 2.")
    assert "the sandbox runs OpenBao behind the CR" in rows["Vault"]
    assert rows["parameters changed from the defaults"] == "none (all defaults)"  # --only is not a parameter
    assert re.fullmatch(r"0\.\d+\.\d+, commit ([0-9a-f]{40}(\+dirty)?|not a git checkout.*)", rows["meshbook"])
    page = (real_run / "report.html").read_text()
    assert html.escape(rows["Vault"]) in page
    manifest = json.loads((real_run / "manifest.json").read_text())
    assert manifest["cluster"]["kube_system_uid"] in rows["cluster identity"]


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_real_run_report_in_chromium(real_run: Path, chromium: Path, tmp_path: Path) -> None:
    page = real_run / "report.html"
    if not page.exists():
        from meshbook.report import build_reports

        build_reports([real_run])
    png = ARTIFACTS / "report-real-run.png"
    screenshot(chromium, page, png, tmp_path / "profile-shot")
    assert png.stat().st_size > 10_000
    log = tmp_path / "netlog.json"
    offline = ("--host-resolver-rules=MAP * ~NOTFOUND", f"--log-net-log={log}")
    dom = dump_dom(chromium, page, tmp_path / "profile-dom", *offline)
    assert page_requests(log) == []
    assert '<section class="summary" id="summary"><h2>Outcome summary</h2>' in dom
    for name in NOTEBOOKS:
        assert f'<section class="scenario" id="nb-{name}"><h2>{name}: ' in dom
    assert dom.count('<svg class="topology"') == 3


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_real_run_manifest(real_run: Path, run_cli: Callable[..., CliResult]) -> None:
    if not (real_run / "manifest.json").exists():  # the run did not seal itself: reports, then the manifest
        assert run_cli("report", str(real_run)).code == 0
        summary = json.loads((real_run / "summary.json").read_text())
        write_manifest(
            real_run,
            params={"target": "sandbox"},
            cluster={"context": "sandbox"},
            versions={"meshbook": "test"},
            started_at=read_run(real_run).started_at,
            ended_at=read_run(real_run).ended_at,
            outcome="pass" if summary["exit_code"] == 0 else "fail",
            leaks=[],
        )
    assert run_cli("report", str(real_run)).code == 0  # rebuilding the reports keeps the bundle intact
    assert verify_manifest(real_run) == []
    evidence = real_run / "evidence.jsonl"
    data = bytearray(evidence.read_bytes())
    data[-2] ^= 0x20
    evidence.write_bytes(bytes(data))
    result = run_cli("verify", str(real_run))
    assert result.code == 1
    assert result.out.startswith("modified: evidence.jsonl (sha256 was ")
    assert len(result.out.splitlines()) == 1
