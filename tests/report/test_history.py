"""Several runs: the outcome table per notebook per run, and what changed between consecutive runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from meshbook.report import Change, comparison_table, diff_runs, history, read_run
from tests.conftest import CliResult
from tests.report.test_reports import check_junit, check_self_contained
from tests.report.test_synthetic import NOTEBOOKS, RUN_FAIL, RUN_PASS, write_run

RUN_FIXED = "20250103T000000Z-cccccc"


def _runs(root: Path) -> list[Path]:
    return [
        write_run(root, RUN_PASS),
        write_run(root, RUN_FAIL, vault_permissive=False),
        write_run(root, RUN_FIXED),
    ]


FLIP = [
    Change("exit_code", "", "", "0", "1"),
    Change("setting", "", "vault PERMISSIVE", "true", "false"),
    Change("outcome", "20-scenario-2", "", "pass", "fail"),
    Change("ready", "20-scenario-2", "app/app", "1/1", "0/1 Init:CrashLoopBackOff"),
    Change("delivery", "20-scenario-2", "app/app/app", "delivered, matches Vault", "not delivered"),
    Change("delivery", "20-scenario-2", "app/app/init-ubuntu", "delivered, matches Vault", "not delivered"),
]


def test_comparison_table(tmp_path: Path) -> None:
    runs = [read_run(p) for p in _runs(tmp_path)]
    header, rows = comparison_table(runs)
    assert header == ["runbook", RUN_PASS, RUN_FAIL, RUN_FIXED]
    assert rows == [
        *[[name, "pass", "fail" if name == "20-scenario-2" else "pass", "pass"] for name in NOTEBOOKS],
        ["exit code", "0", "1", "0"],
    ]


def test_flipped_outcome_between_two_runs(tmp_path: Path) -> None:
    passed, failed, fixed = (read_run(p) for p in _runs(tmp_path))
    diff = diff_runs(passed, failed)
    assert (diff.before, diff.after) == (RUN_PASS, RUN_FAIL)
    assert diff.changes == FLIP
    assert str(FLIP[2]) == "20-scenario-2: outcome pass → fail"
    back = [Change(c.kind, c.notebook, c.subject, c.after, c.before) for c in FLIP]
    assert [d.changes for d in history([passed, failed, fixed])] == [FLIP, back]
    assert diff_runs(passed, fixed).changes == []


def test_fingerprint_change_is_reported(tmp_path: Path) -> None:
    a = read_run(write_run(tmp_path, RUN_PASS))
    b = read_run(write_run(tmp_path, RUN_FIXED, secret="another-secret-value-42"))
    changes = diff_runs(a, b).changes
    assert [(c.kind, c.notebook, c.subject) for c in changes] == [
        ("fingerprint", nb, f"app/app/{container}")
        for nb in ("10-scenario-1", "20-scenario-2", "30-scenario-3")
        for container in ("app", "init-ubuntu")
    ]
    assert all(c.before.startswith("hmac-sha256:") and c.before.endswith("…") for c in changes)


def test_cli_report_of_several_runs(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    runs = _runs(tmp_path / "runs")
    out = tmp_path / "compare"
    result = run_cli("report", *map(str, runs), "--out", str(out))
    assert result.code == 0, result.err
    assert result.out.splitlines() == [str(out / n) for n in ("report.html", "report.md", "junit.xml")]
    assert sorted(p.name for p in runs[0].iterdir()) == ["evidence.jsonl", "notebooks", "summary.json"]

    page = (out / "report.html").read_text()
    check_self_contained(page)
    history_at = page.index('<section class="history" id="history"><h2>Runs compared</h2>')
    runs_at = [page.index(f'<section class="run" id="r{i}-run"><h2>Run {rid} ') for i, rid in
               enumerate((RUN_PASS, RUN_FAIL, RUN_FIXED))]  # fmt: skip
    assert history_at < runs_at[0] < runs_at[1] < runs_at[2]
    assert (
        '<tr><td>20-scenario-2</td><td><span class="badge pass">pass</span></td>'
        '<td><span class="badge fail">fail</span></td><td><span class="badge pass">pass</span></td></tr>'
    ) in page
    assert (
        '<tr class="fail"><td>outcome</td><td>20-scenario-2</td><td class="mono"></td><td>pass</td><td>fail</td></tr>'
    ) in page
    for i in range(3):  # each run's sections keep unique ids
        assert page.count(f'id="r{i}-nb-20-scenario-2"') == 1

    md = (out / "report.md").read_text().splitlines()
    assert md[:4] == ["# meshbook: 3 runs compared", "", "## Runs compared", ""]
    assert f"| runbook | {RUN_PASS} | {RUN_FAIL} | {RUN_FIXED} |" in md
    assert "| 20-scenario-2 | ✅ pass | ❌ fail | ✅ pass |" in md
    assert "| exit code | 0 | 1 | 0 |" in md
    assert f"### {RUN_PASS} → {RUN_FAIL}" in md
    assert "| outcome | 20-scenario-2 | — | pass | fail |" in md
    assert "| ready | 20-scenario-2 | app/app | 1/1 | 0/1 Init:CrashLoopBackOff |" in md
    assert "| delivery | 20-scenario-2 | app/app/init-ubuntu | delivered, matches Vault | not delivered |" in md

    root = check_junit((out / "junit.xml").read_text())
    assert [s.get("name") for s in root] == [
        f"{rid}/{nb}" for rid in (RUN_PASS, RUN_FAIL, RUN_FIXED) for nb in NOTEBOOKS
    ]
    assert (root.get("tests"), root.get("failures")) == ("75", "4")
