"""Many runs side by side: outcomes per notebook per run, and what changed between consecutive runs.

Runs are compared in the order given (e.g. oldest first, or one run per kube context). Pods are matched
by workload (`namespace/workload`, pod names change between runs), deliveries by `namespace/workload/
container`; within a run the last observation in each notebook counts.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from meshbook.report.load import delivery_rows, pod_rows
from meshbook.report.outcomes import run_settings
from meshbook.report.rundir import RunData

__all__ = ["Change", "RunDiff", "comparison_table", "diff_runs", "history"]

Row = dict[str, Any]


@dataclass(frozen=True)
class Change:
    """One difference between two runs: what (`kind`), where (`notebook`, `subject`), before and after."""

    kind: str  # exit_code | setting | outcome | ready | delivery | fingerprint
    notebook: str
    subject: str
    before: str
    after: str

    def __str__(self) -> str:
        where = f"{self.notebook} {self.subject}".strip()
        return f"{where}: {self.kind} {self.before} → {self.after}"


@dataclass(frozen=True)
class RunDiff:
    """The changes from run `before` to run `after` (ids)."""

    before: str
    after: str
    changes: list[Change]


def comparison_table(runs: Sequence[RunData]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per notebook (first-seen order), one column per run: its outcome."""
    notebooks: list[str] = []
    for run in runs:
        notebooks += [nb.runbook for nb in run.notebooks if nb.runbook not in notebooks]
    header = ["runbook", *[run.run_id for run in runs]]
    rows = []
    for name in notebooks:
        cells = [name]
        for run in runs:
            nb = run.notebook(name)
            cells.append(nb.outcome if nb is not None else "—")
        rows.append(cells)
    rows.append(["exit code", *[str(run.exit_code) if run.exit_code is not None else "—" for run in runs]])
    return header, rows


def _ready_by_workload(run: RunData) -> dict[tuple[str, str], str]:
    """(notebook, namespace/workload) -> the READY values of its last check in that notebook, sorted."""
    last: dict[tuple[str, str], Row] = {}
    rows = pod_rows(run)
    for row in rows:
        key = (str(row["notebook"]), f"{row['namespace']}/{row['workload']}")
        if key not in last or row["seq"] > last[key]["seq"]:
            last[key] = row
    out: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        key = (str(row["notebook"]), f"{row['namespace']}/{row['workload']}")
        if row["step"] == last[key]["step"]:
            pods = out.setdefault(key, [])
            pods.append(f"{row['ready']}" + ("" if row["status"] in (None, "Running") else f" {row['status']}"))
    return {key: ", ".join(sorted(values)) for key, values in out.items()}


def _deliveries(run: RunData) -> dict[tuple[str, str], Row]:
    out: dict[tuple[str, str], Row] = {}
    for row in delivery_rows(run):
        out[(str(row["notebook"]), str(row["subject"]))] = row
    return out


def _delivery_text(row: Row | None) -> str:
    if row is None:
        return "not checked"
    if not row["delivered"]:
        return "not delivered"
    return {True: "delivered, matches Vault", False: "delivered, differs from Vault"}.get(
        row["matches_vault"], "delivered, not compared"
    )


def diff_runs(before: RunData, after: RunData) -> RunDiff:
    """Exit code, settings, outcome flips, READY changes and delivery changes from `before` to `after`."""
    changes: list[Change] = []
    if before.exit_code != after.exit_code:
        changes.append(Change("exit_code", "", "", str(before.exit_code), str(after.exit_code)))
    settings_a, settings_b = dict(run_settings(before)), dict(run_settings(after))
    for label in [*settings_a, *(k for k in settings_b if k not in settings_a)]:
        was, now = settings_a.get(label, "—"), settings_b.get(label, "—")
        if was != now:
            changes.append(Change("setting", "", label, was, now))
    names = [nb.runbook for nb in before.notebooks]
    names += [nb.runbook for nb in after.notebooks if nb.runbook not in names]
    for name in names:
        a, b = before.notebook(name), after.notebook(name)
        was, now = (a.outcome if a else "not run"), (b.outcome if b else "not run")
        if was != now:
            changes.append(Change("outcome", name, "", was, now))
    ready_a, ready_b = _ready_by_workload(before), _ready_by_workload(after)
    for key in sorted(set(ready_a) | set(ready_b), key=lambda k: (names.index(k[0]) if k[0] in names else 99, k[1])):
        was, now = ready_a.get(key, "not observed"), ready_b.get(key, "not observed")
        if was != now:
            changes.append(Change("ready", key[0], key[1], was, now))
    del_a, del_b = _deliveries(before), _deliveries(after)
    for key in sorted(set(del_a) | set(del_b), key=lambda k: (names.index(k[0]) if k[0] in names else 99, k[1])):
        da, db = del_a.get(key), del_b.get(key)
        was, now = _delivery_text(da), _delivery_text(db)
        if was != now:
            changes.append(Change("delivery", key[0], key[1], was, now))
        elif da and db and da["fingerprint"] and db["fingerprint"] and da["fingerprint"] != db["fingerprint"]:
            changes.append(
                Change(
                    "fingerprint", key[0], key[1], str(da["fingerprint"])[:20] + "…", str(db["fingerprint"])[:20] + "…"
                )
            )
    return RunDiff(before.run_id, after.run_id, changes)


def history(runs: Sequence[RunData]) -> list[RunDiff]:
    """The diff of each run against the one before it."""
    return [diff_runs(a, b) for a, b in itertools.pairwise(runs)]
