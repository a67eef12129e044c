"""Every goal the benchmarks measure against, as one table: what is measured, its goal, where the goal comes from.

A benchmark module returns `Figure`s keyed like these goals; `table.py` puts each figure next to its goal.
The `statistic` says which summary of the samples the goal judges: `median` for "typically", `max` where
the issue says "each" or "every" (each failing variant under 60 s), `value` for a single count.
`before` is the figure the issue was filed with (on a quiet 2-core machine), shown for comparison.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    ">=": operator.ge,
}
STATISTICS = ("median", "min", "max")


@dataclass(frozen=True)
class Goal:
    """One goal: a figure's key, what it is, its unit, the comparison that meets it and where it is set."""

    key: str
    title: str
    unit: str
    comparison: str | None  # None: a reference figure with no goal of its own (the ratio's denominator)
    target: float | None
    statistic: str
    source: str  # the issue that sets the goal
    benchmark: str  # the module that measures it
    before: float | None = None  # the figure the issue was filed with
    how: str = ""  # how it is measured, or how to measure it when it is not measured by default

    def met(self, value: float) -> bool | None:
        """Whether `value` meets the goal; None for a reference figure."""
        if self.comparison is None or self.target is None:
            return None
        return COMPARISONS[self.comparison](value, self.target)

    def describe(self) -> str:
        """The goal as printed: `< 10 s`, `<= 2.5 x`, `== 0`; `reference` without one."""
        if self.comparison is None or self.target is None:
            return "reference"
        return f"{self.comparison} {self.target:g} {self.unit}".rstrip()


GOALS: tuple[Goal, ...] = (
    Goal(
        "run_total",
        "meshbook run, five runbooks, fresh sandbox",
        "s",
        "<",
        10.0,
        "median",
        "issue 15",
        "bench_run",
        26.6,
        "wall time of `python -m meshbook run` in a fresh home, as a user sees it",
    ),
    Goal(
        "trivial_notebooks",
        "five trivial papermill notebooks",
        "s",
        None,
        None,
        "median",
        "issue 15",
        "bench_run",
        4.2,
        "one process: papermill runs five one-cell (`pass`) notebooks in this interpreter's kernel",
    ),
    Goal(
        "run_ratio",
        "ratio: meshbook run / five trivial notebooks",
        "x",
        "<=",
        2.5,
        "median",
        "issue 15",
        "bench_run",
        6.35,
        "each run divided by the trivial notebooks measured right after it",
    ),
    Goal(
        "kernel_overhead",
        "one runbook's kernel overhead (not hidden)",
        "s",
        "<",
        0.5,
        "median",
        "issue 15",
        "bench_run",
        2.2,
        "per runbook of the run: its time outside its cells (kernel start wait, papermill, shutdown) plus its "
        "import lines' time in a kernel started ahead and ready",
    ),
    Goal(
        "openbao_ready",
        "OpenBao first start until initialised, unsealed, active",
        "s",
        "<",
        1.0,
        "median",
        "issue 15",
        "bench_openbao",
        2.4,
        "a fresh data directory: `bao server` spawned, listening, init (5 shares), unsealed, raft leader",
    ),
    Goal(
        "report_100_runs",
        "report over 100 runs x 1,000 records",
        "s",
        "<",
        10.0,
        "median",
        "issue 15",
        "bench_evidence",
        19.0,
        "build_reports over 100 synthetic run directories",
    ),
    Goal(
        "sandbox_memory",
        "sandbox + OpenBao resident memory during the run (peak)",
        "MB",
        "<",
        200.0,
        "max",
        "issue 15",
        "bench_run",
        196.0,
        "sum of the sandbox server's and `bao server`'s VmRSS, sampled every 0.2 s during `meshbook run`",
    ),
    Goal(
        "make_test",
        "make test wall time (2 workers)",
        "s",
        "<",
        300.0,
        "median",
        "issue 15",
        "bench_suite",
        None,
        "not run by default (minutes): `make bench ARGS=--with-suite` or MESHBOOK_BENCH_SUITE=1",
    ),
    Goal(
        "make_test_failures",
        "make test failed tests",
        "",
        "==",
        0.0,
        "max",
        "issue 15",
        "bench_suite",
        None,
        "not run by default (minutes): `make bench ARGS=--with-suite`; tests failed or errored in that suite run",
    ),
    Goal(
        "audit_one_cluster",
        "meshbook audit, one cluster",
        "s",
        "<",
        5.0,
        "median",
        "issue 14",
        "bench_audit",
        None,
        "`python -m meshbook audit` against a sandbox left in the guide's scenario-3 state",
    ),
    Goal(
        "audit_fleet_of_three",
        "meshbook audit, fleet of three contexts",
        "s",
        "<",
        10.0,
        "median",
        "issue 14",
        "bench_audit",
        None,
        "`meshbook audit --all-contexts`, three contexts of one sandbox",
    ),
    Goal(
        "audit_recall",
        "audit recall over the guide's states",
        "%",
        "==",
        100.0,
        "min",
        "issue 14",
        "bench_audit",
        None,
        "expected findings found (code and object) over every state the sandbox serves",
    ),
    Goal(
        "audit_false_positives",
        "audit false positives over the guide's states",
        "",
        "==",
        0.0,
        "max",
        "issue 14",
        "bench_audit",
        None,
        "error or warning findings no state expects",
    ),
    Goal(
        "failing_run",
        "meshbook run, each failing variant, until exit",
        "s",
        "<",
        60.0,
        "max",
        "issue 11",
        "bench_failing_runs",
        752.0,
        "vault.permissive=false; webhook STRICT with Fail; CNI without the exclusion: the slowest counts",
    ),
    Goal(
        "evidence_append_p50",
        "evidence append, one record, p50 (fsynced)",
        "ms",
        "<",
        1.0,
        "median",
        "issue 6",
        "bench_evidence",
        0.38,
        "EvidenceWriter.record over 100 x 1,000 records, flushed and fsynced each",
    ),
    Goal(
        "scenario_1",
        "scenario 1 from an empty sandbox, secret delivered",
        "s",
        "<",
        5.0,
        "median",
        "issue 4",
        "bench_scenarios",
        3.1,
        "through the library at speed `instant`: install, Vault CR, app, until the app printed the secret",
    ),
    Goal(
        "sandbox_create_p50",
        "sandbox: create ConfigMap p50",
        "ms",
        "<",
        5.0,
        "median",
        "issue 3",
        "bench_sandbox",
        0.52,
        "1,000 creates over one keep-alive HTTPS connection",
    ),
    Goal(
        "sandbox_table_p50",
        "sandbox: list 1,000 pods as Table p50",
        "ms",
        "<",
        50.0,
        "median",
        "issue 3",
        "bench_sandbox",
        28.0,
        "what `kubectl get pods` asks for, 200 times",
    ),
    Goal(
        "sandbox_watch_p99",
        "sandbox: watch delivery p99",
        "ms",
        "<",
        20.0,
        "median",
        "issue 3",
        "bench_sandbox",
        1.3,
        "create to ADDED event on an open watch, 200 times",
    ),
    Goal(
        "sandbox_rss_10k",
        "sandbox server RSS with 10,000 objects",
        "MB",
        "<",
        300.0,
        "max",
        "issue 3",
        "bench_sandbox",
        None,
        "VmRSS after 10,000 ConfigMaps and Pods",
    ),
)

GOALS_BY_KEY: dict[str, Goal] = {goal.key: goal for goal in GOALS}
