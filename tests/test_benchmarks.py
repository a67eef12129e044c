"""The benchmarks' bookkeeping on fabricated figures: goals as data, the table, results.json, --compare.

Nothing here times anything: the figures are made up, so each test pins what is printed and written.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from benchmarks import __main__ as cli
from benchmarks._util import busy_warning
from benchmarks.bench_run import outside_cells
from benchmarks.bench_suite import MAKE_TEST_ARGS, failures
from benchmarks.figures import Figure
from benchmarks.goals import COMPARISONS, GOALS, GOALS_BY_KEY, STATISTICS
from benchmarks.table import build_rows, compare, document, load_document, render
from tests.conftest import ROOT

MACHINE = {
    "started_at": "2026-12-05T04:00:00Z",
    "cores": 2,
    "load_at_start": [0.5, 0.4, 0.3],
    "python": "3.11.7",
    "meshbook_commit": "abc",
}

# Every goal of issue 15 ("Goals"), issue 14's audit goals and issue 11's failing runs: (comparison, target, unit).
ISSUE_GOALS: dict[str, tuple[str | None, float | None, str]] = {
    "run_total": ("<", 10.0, "s"),
    "trivial_notebooks": (None, None, "s"),
    "run_ratio": ("<=", 2.5, "x"),
    "kernel_overhead": ("<", 0.5, "s"),
    "openbao_ready": ("<", 1.0, "s"),
    "report_100_runs": ("<", 10.0, "s"),
    "make_test": ("<", 300.0, "s"),
    "make_test_failures": ("==", 0.0, ""),
    "sandbox_memory": ("<", 200.0, "MB"),
    "audit_one_cluster": ("<", 5.0, "s"),
    "audit_fleet_of_three": ("<", 10.0, "s"),
    "audit_recall": ("==", 100.0, "%"),
    "audit_false_positives": ("==", 0.0, ""),
    "failing_run": ("<", 60.0, "s"),
}


def _measured_everything(scale: float = 1.0) -> list[Figure]:
    """One figure per goal, met at scale 1 (half its target, or the target for an equality)."""
    figures = []
    for goal in GOALS:
        value = 3.0 if goal.target is None else goal.target * (1.0 if goal.comparison == "==" else 0.5)
        figures.append(Figure.of(goal.key, [value * scale], goal.unit))
    return figures


# -- negative cases ----------------------------------------------------------------------------------


def test_a_figure_in_another_unit_than_its_goal_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'run_total' is in 'ms' but its goal is in 's'"):
        build_rows([Figure.of("run_total", [9000.0], "ms")])


def test_one_key_reported_in_two_units_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'detail' reported in 's' and in 'ms'"):
        build_rows([Figure.of("detail", [1.0], "s"), Figure.of("detail", [1.0], "ms")])


def test_a_figure_without_samples_is_refused() -> None:
    with pytest.raises(ValueError, match="has no samples"):
        build_rows([Figure.of("run_total", [], "s")])


def test_an_unknown_statistic_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown statistic 'mean'"):
        Figure.of("x", [1.0], "s").summary("mean")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ('{"schema": 1}', "has no `rows` list"),
        ('{"schema": 99, "rows": []}', "has schema 99"),
    ],
)
def test_compare_refuses_a_file_that_is_not_a_results_json(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "old.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as caught:
        load_document(path)
    assert str(path) in str(caught.value)
    with pytest.raises(SystemExit, match="--compare: "):
        cli.main(["--compare", str(path), str(path)])


def test_compare_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot read .*missing\.json"):
        load_document(tmp_path / "missing.json")


def test_an_unknown_benchmark_name_is_refused_with_the_known_ones() -> None:
    with pytest.raises(SystemExit, match=r"unknown benchmark bench_nope: expected some of .*bench_run"):
        cli.main(["bench_nope"])


def test_busy_warning_only_above_the_core_count() -> None:
    assert busy_warning(2.0, 2) is None
    assert busy_warning(0.1, None) is None
    warning = busy_warning(4.76, 2)
    assert warning is not None and "4.76" in warning and "2 cores" in warning and "noisy" in warning


# -- the goals as data -------------------------------------------------------------------------------


def test_every_goal_of_issues_15_14_and_11_is_in_the_table_with_its_target() -> None:
    found = {key: (g.comparison, g.target, g.unit) for key, g in GOALS_BY_KEY.items() if key in ISSUE_GOALS}
    assert found == ISSUE_GOALS
    assert GOALS_BY_KEY["failing_run"].statistic == "max"  # each failing variant, so the slowest
    assert GOALS_BY_KEY["sandbox_memory"].statistic == "max"  # during the run: the peak


def test_goals_are_well_formed_and_each_names_an_existing_benchmark() -> None:
    assert len(GOALS_BY_KEY) == len(GOALS), "goal keys are unique"
    for goal in GOALS:
        assert goal.statistic in STATISTICS, goal.key
        assert goal.comparison is None or goal.comparison in COMPARISONS, goal.key
        assert (goal.comparison is None) == (goal.target is None), goal.key
        assert (ROOT / "benchmarks" / f"{goal.benchmark}.py").is_file(), goal.key
        assert goal.source.startswith("issue "), goal.key


def test_every_benchmark_module_has_measure() -> None:
    source = {name: (ROOT / "benchmarks" / f"{name}.py").read_text() for name in cli.available()}
    assert {g.benchmark for g in GOALS} <= set(source)
    assert [name for name, text in source.items() if "\ndef measure() -> list[Figure]:" not in text] == []


# -- rows ----------------------------------------------------------------------------------------------


def test_rows_judge_the_goal_statistic_and_keep_median_min_max() -> None:
    rows = {r.key: r for r in build_rows([Figure.of("failing_run", [12.0, 70.0, 20.0], "s")])}
    failing = rows["failing_run"]
    assert (failing.value, failing.median, failing.min, failing.max) == (70.0, 20.0, 12.0, 70.0)
    assert failing.met is False
    run = {r.key: r for r in build_rows([Figure.of("run_total", [9.0, 12.0, 9.5], "s")])}["run_total"]
    assert (run.value, run.met) == (9.5, True)


@pytest.mark.parametrize(
    ("key", "value", "met"),
    [
        ("run_ratio", 2.5, True),  # at most 2.5x
        ("run_ratio", 2.51, False),
        ("kernel_overhead", 0.5, False),  # under 0.5 s
        ("audit_recall", 100.0, True),
        ("audit_recall", 99.0, False),
        ("audit_false_positives", 1.0, False),
    ],
)
def test_each_comparison_at_its_boundary(key: str, value: float, met: bool) -> None:
    goal = GOALS_BY_KEY[key]
    rows = {r.key: r for r in build_rows([Figure.of(key, [value], goal.unit)])}
    assert rows[key].met is met


def test_a_reference_figure_has_no_verdict() -> None:
    rows = {r.key: r for r in build_rows([Figure.of("trivial_notebooks", [4.2], "s")])}
    assert rows["trivial_notebooks"].met is None
    assert rows["trivial_notebooks"].goal == "reference"


def test_every_goal_is_a_row_and_says_why_it_was_not_measured() -> None:
    rows = build_rows(
        [Figure.of("run_total", [9.0], "s")], ran=["bench_run", "bench_audit"], failed={"bench_audit": "OSError: x"}
    )
    assert [r.key for r in rows] == [g.key for g in GOALS]
    by_key = {r.key: r for r in rows}
    assert by_key["run_total"].measured
    assert by_key["kernel_overhead"].note == "not measured: bench_run returned no 'kernel_overhead' figure"
    assert by_key["audit_recall"].note == "not measured: bench_audit failed: OSError: x"
    assert by_key["openbao_ready"].note == "not measured: run `python -m benchmarks bench_openbao`"
    assert "--with-suite" in by_key["make_test"].note and "--with-suite" in by_key["make_test_failures"].note
    assert all(r.met is None and r.value is None for r in rows if not r.measured)


def test_figures_without_a_goal_follow_as_details_and_samples_of_one_key_are_joined() -> None:
    figures = [
        Figure.of("run_total", [9.0], "s", note="exit codes [0]"),
        Figure.of("openbao_listening", [0.3], "s", "OpenBao: spawn until sys/health answers"),
        Figure.of("run_total", [11.0], "s", note="second"),
    ]
    rows = build_rows(figures)
    assert rows[-1].key == "openbao_listening" and rows[-1].goal == "-"
    run = next(r for r in rows if r.key == "run_total")
    assert run.samples == (9.0, 11.0) and run.note == "exit codes [0]; second"


# -- the table, results.json and --compare -----------------------------------------------------------


def test_the_table_shows_every_goal_with_its_figure_goal_and_verdict() -> None:
    figures = [
        Figure.of("run_total", [12.31, 11.0, 14.0], "s"),
        Figure.of("run_ratio", [2.0], "x"),
        Figure.of("openbao_listening", [0.37], "s", "OpenBao: spawn until sys/health answers"),
    ]
    text = render(build_rows(figures))
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["figure", "measured", "goal"]
    for goal in GOALS:
        assert goal.title in text
    run_line = next(line for line in lines if line.startswith("meshbook run, five runbooks"))
    assert "12.3 s  [median 12.3, 11..14, n=3]" in run_line and "< 10 s" in run_line
    assert " NO " in run_line and "26.6 s" in run_line and "issue 15" in run_line
    ratio_line = next(line for line in lines if line.startswith("ratio: meshbook run"))
    assert "<= 2.5 x" in ratio_line and " yes " in ratio_line
    assert "details (no goal of their own)" in text and "OpenBao: spawn until sys/health answers" in text
    assert lines[-1] == f"goals met: 1, missed: 1, not measured: {len(GOALS) - 2}"


def test_results_json_round_trips_with_machine_and_samples(tmp_path: Path) -> None:
    rows = build_rows(_measured_everything(), ran=["bench_run"], failed={"bench_audit": "boom"})
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document(rows, MACHINE, {"bench_audit": "boom"})))
    loaded = load_document(path)
    assert loaded["machine"] == MACHINE
    assert loaded["failed"] == {"bench_audit": "boom"}
    row = next(r for r in loaded["rows"] if r["key"] == "run_total")
    assert row["samples"] == [5.0] and row["value"] == 5.0 and row["met"] is True and row["goal"] == "< 10 s"
    assert {r["key"] for r in loaded["rows"]} == set(GOALS_BY_KEY)


def test_compare_prints_before_and_after_per_row() -> None:
    old_rows = build_rows([Figure.of("run_total", [26.6], "s"), Figure.of("gone", [1.0], "s", "an old detail")])
    new_rows = build_rows([Figure.of("run_total", [9.0], "s"), Figure.of("openbao_ready", [0.8], "s")])
    old = json.loads(json.dumps(document(old_rows, {**MACHINE, "meshbook_commit": "old1"})))
    new = json.loads(json.dumps(document(new_rows, {**MACHINE, "meshbook_commit": "new2"})))
    text = compare(old, new)
    assert "before: commit old1" in text and "after : commit new2" in text
    run = next(line for line in text.splitlines() if line.startswith("meshbook run, five runbooks"))
    assert run.split("  ")[0] == "meshbook run, five runbooks, fresh sandbox"
    assert "26.6 s" in run and "9 s" in run and "-17.6 (-66 %)" in run and "NO" in run and "yes" in run
    bao = next(line for line in text.splitlines() if line.startswith("OpenBao first start"))
    assert "not measured" in bao and "0.80 s" in bao
    assert any(line.startswith("an old detail") for line in text.splitlines())  # rows only the old run had


def test_compare_of_two_files_runs_no_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(document(build_rows(_measured_everything(2.0)), MACHINE)))
    new.write_text(json.dumps(document(build_rows(_measured_everything()), MACHINE)))
    assert cli.main(["--compare", str(old), str(new)]) == 0
    out = capsys.readouterr().out
    assert "== bench_" not in out
    assert "-5 (-50 %)" in next(line for line in out.splitlines() if line.startswith("meshbook run, five runbooks"))


def test_the_suite_runs_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cli.SUITE_ENV, raising=False)
    assert "bench_suite" not in cli._selected([], with_suite=False)
    assert "bench_run" in cli._selected([], with_suite=False)
    assert "bench_suite" in cli._selected([], with_suite=True)
    assert cli._selected(["bench_suite"], with_suite=False) == ["bench_suite"]
    monkeypatch.setenv(cli.SUITE_ENV, "1")
    assert "bench_suite" in cli._selected([], with_suite=False)


def test_results_json_is_not_committed() -> None:
    assert "benchmarks/results.json" in (ROOT / ".gitignore").read_text().splitlines()


# -- what the benchmarks read from their runs ---------------------------------------------------------


@pytest.mark.parametrize(
    ("summary", "count"),
    [
        ("= 300 passed in 120.00s =", 0),
        ("= 2 failed, 300 passed, 1 error in 250.00s (0:04:10) =", 3),
        ("= 1 failed, 299 passed, 3 skipped, 2 errors in 9s =", 3),
    ],
)
def test_suite_failures_are_read_from_pytests_summary(summary: str, count: int) -> None:
    assert failures(f"tests/test_x.py::test_one FAILED\n2 failed lines above\n{summary}\n") == count


def _executed(path: Path, cells: list[tuple[float, float]]) -> None:
    """An executed notebook whose cells ran from start to end seconds after a fixed instant."""
    zero = datetime(2026, 12, 5, tzinfo=UTC)
    book: dict[str, Any] = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    for start, end in cells:
        times = {"start_time": (zero + timedelta(seconds=start)).isoformat()}
        times["end_time"] = (zero + timedelta(seconds=end)).isoformat()
        book["cells"].append({"cell_type": "code", "metadata": {"papermill": times}, "source": "", "outputs": []})
    path.write_text(json.dumps(book))


def test_a_runbooks_time_outside_its_cells_is_its_seconds_minus_its_cells_span(tmp_path: Path) -> None:
    (tmp_path / "notebooks").mkdir()
    _executed(tmp_path / "notebooks" / "00-prereq-istio.ipynb", [(1.0, 1.5), (1.6, 4.5)])
    _executed(tmp_path / "notebooks" / "10-scenario-1.ipynb", [])
    seconds = {"00-prereq-istio": 5.0, "10-scenario-1": 2.0, "20-missing": 1.0}
    assert outside_cells(tmp_path, seconds) == {"00-prereq-istio": pytest.approx(1.5)}


def _fake_modules(monkeypatch: pytest.MonkeyPatch, load: float) -> None:
    """Three fabricated benchmark modules: one measures, one raises, one reports a figure in a wrong unit."""
    outcomes: dict[str, list[Figure] | Exception] = {
        "bench_fine": [Figure.of("run_total", [9.0], "s"), Figure.of("detail", [1.0], "s", "a detail")],
        "bench_broken": RuntimeError("sandbox did not start\ntraceback lines"),
        "bench_wrong_unit": [Figure.of("openbao_ready", [900.0], "ms")],
    }

    def measure(name: str) -> list[Figure]:
        outcome = outcomes[name]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(cli, "available", lambda: sorted(outcomes))
    monkeypatch.setattr(cli, "_measure", measure)
    monkeypatch.setattr(cli, "machine_info", lambda: {**MACHINE, "load_at_start": [load, 1.0, 1.0]})


def test_main_keeps_the_figures_of_the_modules_that_worked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_modules(monkeypatch, load=0.5)
    out = tmp_path / "results.json"
    assert cli.main(["--out", str(out)]) == 1  # a module failed
    printed = capsys.readouterr().out
    assert "warning" not in printed
    assert "goals met: 1, missed: 0" in printed
    written = load_document(out)
    assert written["failed"] == {
        "bench_broken": "RuntimeError: sandbox did not start",
        "bench_wrong_unit": "ValueError: figure 'openbao_ready' is in 'ms' but its goal is in 's': "
        "return the figure in the goal's unit",
    }
    rows = {r["key"]: r for r in written["rows"]}
    assert rows["run_total"]["value"] == 9.0 and rows["detail"]["title"] == "a detail"
    assert rows["openbao_ready"]["value"] is None
    assert written["machine"]["load_at_end"] and written["machine"]["meshbook_commit"] == "abc"


def test_main_warns_when_the_machine_is_busy_and_compares_with_an_old_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.json"
    old.write_text(json.dumps(document(build_rows([Figure.of("run_total", [26.6], "s")]), MACHINE)))
    _fake_modules(monkeypatch, load=4.76)
    cli.main(["bench_fine", "--out", str(tmp_path / "new.json"), "--compare", str(old)])
    printed = capsys.readouterr().out
    assert printed.count("warning: load average 4.76 is above the 2 cores") == 2  # before and under the table
    compared = printed.split("written: ")[1]
    run = next(line for line in compared.splitlines() if line.startswith("meshbook run, five runbooks"))
    assert "26.6 s" in run and "9 s" in run and "-17.6 (-66 %)" in run


def test_the_suite_benchmark_times_what_make_test_runs() -> None:
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text().splitlines()
    recipe = makefile[makefile.index(next(line for line in makefile if line.startswith("test:"))) + 1]
    assert "-m pytest " + " ".join(MAKE_TEST_ARGS) + " $(ARGS)" in recipe, recipe


def test_a_missed_goal_that_is_blocked_says_why_and_a_met_one_does_not() -> None:
    goal = GOALS_BY_KEY["openbao_ready"]
    assert goal.blocked
    missed = {r.key: r for r in build_rows([Figure.of("openbao_ready", [1.4], "s", note="n=3")])}["openbao_ready"]
    assert missed.met is False
    assert missed.note == f"blocked {goal.blocked}; n=3"
    met = {r.key: r for r in build_rows([Figure.of("openbao_ready", [0.8], "s", note="n=3")])}["openbao_ready"]
    assert (met.met, met.note) == (True, "n=3")
    assert not GOALS_BY_KEY["run_total"].blocked  # only goals set outside meshbook's reach say so
