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
    blocked: str = ""  # why the goal cannot be met as set (outside meshbook), printed while it is missed

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
        key="run_total",
        title="meshbook run, five runbooks, fresh sandbox",
        unit="s",
        comparison="<",
        target=10.0,
        statistic="median",
        source="issue 15",
        benchmark="bench_run",
        before=26.6,
        how="wall time of `python -m meshbook run` in a fresh home, as a user sees it",
    ),
    Goal(
        key="trivial_notebooks",
        title="five trivial papermill notebooks",
        unit="s",
        comparison=None,
        target=None,
        statistic="median",
        source="issue 15",
        benchmark="bench_run",
        before=4.2,
        how="one process: papermill runs five one-cell (`pass`) notebooks in this interpreter's kernel",
    ),
    Goal(
        key="run_ratio",
        title="ratio: meshbook run / five trivial notebooks",
        unit="x",
        comparison="<=",
        target=2.5,
        statistic="median",
        source="issue 15",
        benchmark="bench_run",
        before=6.35,
        how="each run divided by the trivial notebooks measured right after it",
    ),
    Goal(
        key="kernel_overhead",
        title="one runbook's kernel overhead (not hidden)",
        unit="s",
        comparison="<",
        target=0.5,
        statistic="median",
        source="issue 15",
        benchmark="bench_run",
        before=2.2,
        how="per runbook of the run: its time outside its cells (kernel start wait, papermill, shutdown) "
        "plus its import lines' time in a kernel started ahead and ready",
    ),
    Goal(
        key="openbao_ready",
        title="OpenBao first start until initialised, unsealed, active",
        unit="s",
        comparison="<",
        target=1.0,
        statistic="median",
        source="issue 15",
        benchmark="bench_openbao",
        before=2.4,
        how="a fresh data directory: `bao server` spawned, listening, init (5 shares), unsealed, raft leader",
        blocked=(
            "by OpenBao: sys/init elects the raft leader over an in-memory transport after raft's randomised "
            "heartbeat timeout, 1-2 s x performance_multiplier (an integer, at least 1), with no other setting"
        ),
    ),
    Goal(
        key="report_100_runs",
        title="report over 100 runs x 1,000 records",
        unit="s",
        comparison="<",
        target=10.0,
        statistic="median",
        source="issue 15",
        benchmark="bench_evidence",
        before=19.0,
        how="build_reports over 100 synthetic run directories",
    ),
    Goal(
        key="sandbox_memory",
        title="sandbox + OpenBao resident memory during the run (peak)",
        unit="MB",
        comparison="<",
        target=200.0,
        statistic="max",
        source="issue 15",
        benchmark="bench_run",
        before=196.0,
        how="sum of the sandbox server's and `bao server`'s VmRSS, sampled every 0.2 s during `meshbook run`",
    ),
    Goal(
        key="make_test",
        title="make test wall time (2 cores, 3 workers)",
        unit="s",
        comparison="<",
        target=300.0,
        statistic="median",
        source="issue 15",
        benchmark="bench_suite",
        before=None,
        how="not run by default (minutes): `make bench ARGS=--with-suite` or MESHBOOK_BENCH_SUITE=1",
    ),
    Goal(
        key="make_test_failures",
        title="make test failed tests",
        unit="",
        comparison="==",
        target=0.0,
        statistic="max",
        source="issue 15",
        benchmark="bench_suite",
        before=None,
        how="not run by default (minutes): `make bench ARGS=--with-suite`; tests failed or errored in that suite run",
    ),
    Goal(
        key="audit_one_cluster",
        title="meshbook audit, one cluster",
        unit="s",
        comparison="<",
        target=5.0,
        statistic="median",
        source="issue 14",
        benchmark="bench_audit",
        before=None,
        how="`python -m meshbook audit` against a sandbox left in the guide's scenario-3 state",
    ),
    Goal(
        key="audit_fleet_of_three",
        title="meshbook audit, fleet of three contexts",
        unit="s",
        comparison="<",
        target=10.0,
        statistic="median",
        source="issue 14",
        benchmark="bench_audit",
        before=None,
        how="`meshbook audit --all-contexts`, three contexts of one sandbox",
    ),
    Goal(
        key="audit_recall",
        title="audit recall over the guide's states",
        unit="%",
        comparison="==",
        target=100.0,
        statistic="min",
        source="issue 14",
        benchmark="bench_audit",
        before=None,
        how="expected findings found (code and object) over every state the sandbox serves",
    ),
    Goal(
        key="audit_false_positives",
        title="audit false positives over the guide's states",
        unit="",
        comparison="==",
        target=0.0,
        statistic="max",
        source="issue 14",
        benchmark="bench_audit",
        before=None,
        how="error or warning findings no state expects",
    ),
    Goal(
        key="failing_run",
        title="meshbook run, each failing variant, until exit",
        unit="s",
        comparison="<",
        target=60.0,
        statistic="max",
        source="issue 11",
        benchmark="bench_failing_runs",
        before=752.0,
        how="vault.permissive=false; webhook STRICT with Fail; CNI without the exclusion: the slowest counts",
    ),
    Goal(
        key="evidence_append_p50",
        title="evidence append, one record, p50 (fsynced)",
        unit="ms",
        comparison="<",
        target=1.0,
        statistic="median",
        source="issue 6",
        benchmark="bench_evidence",
        before=0.38,
        how="EvidenceWriter.record over 100 x 1,000 records, flushed and fsynced each",
    ),
    Goal(
        key="scenario_1",
        title="scenario 1 from an empty sandbox, secret delivered",
        unit="s",
        comparison="<",
        target=5.0,
        statistic="median",
        source="issue 4",
        benchmark="bench_scenarios",
        before=3.1,
        how="through the library at speed `instant`: install, Vault CR, app, until the app printed the secret",
    ),
    Goal(
        key="sandbox_create_p50",
        title="sandbox: create ConfigMap p50",
        unit="ms",
        comparison="<",
        target=5.0,
        statistic="median",
        source="issue 3",
        benchmark="bench_sandbox",
        before=0.52,
        how="1,000 creates over one keep-alive HTTPS connection",
    ),
    Goal(
        key="sandbox_table_p50",
        title="sandbox: list 1,000 pods as Table p50",
        unit="ms",
        comparison="<",
        target=50.0,
        statistic="median",
        source="issue 3",
        benchmark="bench_sandbox",
        before=28.0,
        how="what `kubectl get pods` asks for, 200 times",
    ),
    Goal(
        key="sandbox_watch_p99",
        title="sandbox: watch delivery p99",
        unit="ms",
        comparison="<",
        target=20.0,
        statistic="median",
        source="issue 3",
        benchmark="bench_sandbox",
        before=1.3,
        how="create to ADDED event on an open watch, 200 times",
    ),
    Goal(
        key="sandbox_rss_10k",
        title="sandbox server RSS with 10,000 objects",
        unit="MB",
        comparison="<",
        target=300.0,
        statistic="max",
        source="issue 3",
        benchmark="bench_sandbox",
        before=None,
        how="VmRSS after 10,000 ConfigMaps and Pods",
    ),
)

GOALS_BY_KEY: dict[str, Goal] = {goal.key: goal for goal in GOALS}
