"""The audit's part of the reports: findings rows, the contexts x findings matrix, junit testcases per check.

Built from `finding` evidence records at read time, like the other rows: each record carries its check's
code, severity, title and remedy, so the report needs nothing of `meshbook.audit` (which builds reports).
A run's column is named by the kube context its notebook ran against (the run id when none was named).
Checks are those that found something in any run shown, plus `audit` itself (did the audit run). The
tables here have the shape the page's `table` macro reads (headers; rows of cells with text, css, badge).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from meshbook.evidence import Kind, RecordOutcome
from meshbook.report.load import printable
from meshbook.report.rundir import RunData
from meshbook.report.tables import Cell, Table, TableRow

__all__ = ["AuditView", "audit_suites", "audit_view", "context_of", "finding_rows"]

AUDIT_NOTEBOOK = "40-audit"
ERROR = "Error"
MESSAGE_LIMIT = 1000


@dataclass(frozen=True)
class AuditView:
    findings: Table | None
    matrix: Table | None  # several runs only


def context_of(run: RunData) -> str:
    """The kube context the audit ran against, else the run id."""
    nb = run.notebook(AUDIT_NOTEBOOK)
    context = (nb.parameters or {}).get("kube_context") if nb else None
    return str(context) if context else run.run_id


def _columns(runs: Sequence[RunData]) -> dict[str, str]:
    """run id -> column label: the context, with the run id when one context appears in several runs
    (`meshbook report` comparing audits of one cluster over time)."""
    contexts = [context_of(run) for run in runs]
    return {
        run.run_id: context if contexts.count(context) == 1 or context == run.run_id else f"{context} {run.run_id}"
        for run, context in zip(runs, contexts, strict=True)
    }


def _audited(run: RunData) -> bool:
    return run.notebook(AUDIT_NOTEBOOK) is not None or any(r["kind"] == Kind.FINDING for r in run.records)


def finding_rows(run: RunData) -> list[dict[str, Any]]:
    rows = []
    for record in run.records:
        observed = record.get("observed")
        if record["kind"] != Kind.FINDING or not isinstance(observed, dict):
            continue
        rows.append({"context": context_of(run), "outcome": str(record["outcome"]), **observed})
    return rows


def audit_view(runs: Sequence[RunData]) -> AuditView | None:
    """None when no run is an audit; the matrix only when several runs are shown together."""
    audited = [run for run in runs if _audited(run)]
    if not audited:
        return None
    several = len(audited) > 1
    label = _columns(audited)
    headers = ["context"] * several + ["severity", "code", "object", "message", "remedy"]
    rows = [
        TableRow(
            [Cell(label[run.run_id])] * several
            + [
                Cell(str(r.get("severity"))),
                Cell(str(r.get("code")), "mono"),
                Cell(str(r.get("object")), "mono"),
                Cell(str(r.get("message")), "reason"),
                Cell(str(r.get("remedy")), "reason"),
            ],
            "fail" if r["outcome"] == RecordOutcome.FAIL else "",
        )
        for run in audited
        for r in finding_rows(run)
    ]
    return AuditView(Table(headers, rows) if rows else None, _matrix(audited) if several else None)


@dataclass(frozen=True)
class _Check:
    code: str
    title: str
    severity: str
    remedy: str


def _checks(runs: Sequence[RunData]) -> list[_Check]:
    """The checks that found something in any of the runs, by code."""
    seen: dict[str, _Check] = {}
    for run in runs:
        for r in finding_rows(run):
            code = str(r.get("code"))
            seen.setdefault(code, _Check(code, str(r.get("title")), str(r.get("severity")), str(r.get("remedy"))))
    return [seen[code] for code in sorted(seen)]


def _matrix(runs: Sequence[RunData]) -> Table:
    label = _columns(runs)
    counts = {label[run.run_id]: _counts(run) for run in runs}
    unreachable = {label[run.run_id]: run.exit_code for run in runs if _not_audited(run)}
    rows = [
        TableRow(
            [Cell("audit ran")]
            + [Cell(f"exit {unreachable[c]}", "fail") if c in unreachable else Cell("yes") for c in counts]
        )
    ]
    for check in _checks(runs):
        cells = [Cell(f"{check.code} {check.title}")]
        for context, found in counts.items():
            n = found.get(check.code, 0)
            failing = n and check.severity == ERROR
            cells.append(Cell("—" if context in unreachable else str(n) if n else "0", "fail" if failing else ""))
        rows.append(
            TableRow(
                cells, "fail" if any(f.get(check.code) for f in counts.values()) and check.severity == ERROR else ""
            )
        )
    return Table(["check", *counts], rows)


def _counts(run: RunData) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in finding_rows(run):
        counts[str(row.get("code"))] = counts.get(str(row.get("code")), 0) + 1
    return counts


def _not_audited(run: RunData) -> bool:
    """The audit did not get to judge: the notebook failed before recording a finding and not for findings."""
    nb = run.notebook(AUDIT_NOTEBOOK)
    return nb is not None and nb.outcome != "pass" and not finding_rows(run) and nb.error != "ExpectationFailed"


def audit_suites(runs: Sequence[RunData]) -> list[ET.Element]:
    """junit: a testsuite per audited context; a testcase `audit` (error: the context could not be audited)
    and one per check shown (failure: its error findings in this context)."""
    audited = [r for r in runs if _audited(r)]
    checks = _checks(audited)
    suites = []
    label = _columns(audited)
    for run in audited:
        context = label[run.run_id]
        suite = ET.Element("testsuite", name=f"audit {context}")
        rows = finding_rows(run)
        nb = run.notebook(AUDIT_NOTEBOOK)
        classname = f"meshbook.audit.{context}"
        case = ET.SubElement(
            suite, "testcase", classname=classname, name="audit", time=f"{nb.seconds if nb else 0:.3f}"
        )
        counts = {"tests": 1 + len(checks), "failures": 0, "errors": 0}
        if _not_audited(run):
            counts["errors"] += 1
            reason = printable(f"{nb.error if nb else ''}: {nb.reason if nb else 'not run'}")
            ET.SubElement(case, "error", message=reason[:MESSAGE_LIMIT], type="not audited").text = reason
        for check in checks:
            case = ET.SubElement(
                suite, "testcase", classname=classname, name=f"{check.code} {check.title}", time="0.000"
            )
            mine = [r for r in rows if r.get("code") == check.code]
            if _not_audited(run):
                ET.SubElement(case, "skipped", message="the context could not be audited")
            elif mine and check.severity == ERROR:
                counts["failures"] += 1
                text = printable("\n".join(f"{r.get('object')}: {r.get('message')}" for r in mine))
                failure = ET.SubElement(case, "failure", message=text[:MESSAGE_LIMIT], type=check.code)
                failure.text = f"{text}\nremedy: {check.remedy}"
            elif mine:
                ET.SubElement(case, "system-out").text = printable("\n".join(str(r.get("message")) for r in mine))
        for key, value in counts.items():
            suite.set(key, str(value))
        suite.set("skipped", str(len(checks) if _not_audited(run) else 0))
        suite.set("time", "0.000")
        suites.append(suite)
    return suites
