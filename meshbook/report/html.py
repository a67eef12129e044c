"""report.html: one self-contained page (inline CSS and SVG; no script, no external URL, no fetch).

Outcome summary first (failing notebooks first, with the reason and what to do), then one section per
notebook: expected vs observed pods, secret delivery (fingerprints, never values), mesh policy, the
topology picture and the step timeline. With several runs, the comparison and the changes between
consecutive runs come first and each run follows in its own section.

The markup lives in Jinja2 templates (`templates/`, package data) rendered with autoescape, so evidence
text is escaped unless code deliberately marks it as Markup; this module only shapes the data.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from meshbook.report.audit import audit_view
from meshbook.report.guide_map import GUIDE_MAP, GuideEntry
from meshbook.report.header import header_rows
from meshbook.report.history import comparison_table, history
from meshbook.report.load import delivery_rows, pod_rows, policy_rows, printable
from meshbook.report.outcomes import (
    LeakScanSummary,
    NotebookOutcome,
    leak_scan_summary,
    notebook_outcomes,
    run_settings,
)
from meshbook.report.rootcause import RootCause, root_cause
from meshbook.report.rundir import RunData
from meshbook.report.tables import Cell, Table, TableRow
from meshbook.report.topology import topology, topology_svg
from meshbook.report.verdicts import delivery_verdict, restart_notes

__all__ = ["render_html"]

Row = dict[str, Any]

COMPARED_OUTCOMES = ("pass", "fail", "skipped", "unknown")  # comparison cells shown as badges


@dataclass(frozen=True)
class NotebookSection:
    """What one notebook's section shows; a table is None when there is nothing to put in it."""

    name: str
    anchor: str
    title: str
    outcome: str
    error: str
    reason: str
    cell: int | None
    pods: Table | None
    deliveries: Table | None
    policies: Table | None
    svg: Markup
    timeline: Table | None
    root: RootCause | None = None
    root_anchor: str = ""


@dataclass(frozen=True)
class RunView:
    """One run's summary and sections; `prefix` keeps ids unique when several runs share the page."""

    run: RunData
    prefix: str
    h: int  # heading level of the run's sections
    outcomes: list[NotebookOutcome]
    passed: int
    exit_text: str
    notebook_table: Table
    settings: list[tuple[str, str]]
    sections: list[NotebookSection]
    leak_scan: LeakScanSummary | None = None
    header: list[tuple[str, str]] | None = None
    causes: dict[str, RootCause] | None = None


@dataclass(frozen=True)
class DiffView:
    before: str
    after: str
    changes: Table | None
    fingerprints: bool  # a fingerprint changed: explain what that means


@dataclass(frozen=True)
class ComparisonView:
    table: Table
    diffs: list[DiffView]


def _escape(value: Any) -> Markup:
    """Every `{{ }}` of the templates: control characters made visible, then HTML-escaped (quotes too).

    Markup (macro output, the topology SVG, escaped where it is drawn) passes as is. html.escape keeps the
    entity forms the page has always had (`&quot;`, `&#x27;`); autoescape stays on underneath, so a
    template rendered without this finalizer still escapes.
    """
    if isinstance(value, Markup):
        return value
    if isinstance(value, str):
        return _escape_text(value)
    return Markup(html.escape(printable(value), quote=True))


@lru_cache(maxsize=8192)
def _escape_text(text: str) -> Markup:
    """`_escape` of a string, remembered: a large report shows the same few words in most cells."""
    return Markup(html.escape(printable(text), quote=True))


def render_table(table: Table) -> Markup:
    """A table as the `table` macro wrote it, built here: a report of many runs has hundreds of
    thousands of cells, and a Jinja macro call per cell took most of its time. Every text goes through
    `_escape`, as each `{{ }}` of a template does."""
    out = ["<table><thead><tr>", *(f"<th>{_escape(h)}</th>" for h in table.headers), "</tr></thead><tbody>\n"]
    for row in table.rows:
        out.append(f'<tr class="{_escape(row.css)}">' if row.css else "<tr>")
        out.extend(_cell_html(cell) for cell in row.cells)
        out.append("</tr>\n")
    out.append("</tbody></table>")
    return Markup("".join(out))


def _cell_html(cell: Cell) -> str:
    if isinstance(cell.text, Markup):  # equal to the plain text as a cache key, but shown unescaped
        return _cell_markup.__wrapped__(cell.text, cell.css, cell.badge, cell.href)
    return _cell_markup(cell.text, cell.css, cell.badge, cell.href)


@lru_cache(maxsize=16384)
def _cell_markup(text: str, css: str, badge: bool, href: str) -> str:
    """One cell's HTML, remembered: most cells of a large report repeat (outcomes, READY, statuses)."""
    shown = _escape(text)
    if href:
        inner = f'<a href="{_escape(href)}">{shown}</a>'
    elif badge:
        inner = f'<span class="badge {shown}">{shown}</span>'
    else:
        inner = shown
    return f'<td class="{_escape(css)}">{inner}</td>' if css else f"<td>{inner}</td>"


def _anchor(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


@cache
def _environment() -> Environment:
    """The template environment: package-data templates, autoescape for every template, strict names."""
    environment = Environment(
        loader=PackageLoader("meshbook.report", "templates"),
        autoescape=True,
        finalize=_escape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["anchor"] = _anchor
    environment.globals["render_table"] = render_table
    return environment


def _yes_no(value: Any) -> str:
    return ("yes" if value else "no") if isinstance(value, bool) else "—" if value is None else printable(value)


def _table(headers: list[str], rows: list[TableRow]) -> Table | None:
    return Table(headers, rows) if rows else None


def _restarts_cell(row: Row) -> Cell:
    """Why the pod's containers restarted: expected (waited for the proxy) or flagged."""
    notes = restart_notes(row)
    if not notes:
        return Cell("—")
    flagged = any(not n.expected for n in notes)
    return Cell("; ".join(n.text for n in notes), "reason flag" if flagged else "reason")


def _pods_table(rows: list[Row]) -> Table | None:
    headers = ["pod", "workload", "expected READY", "READY", "status", "sidecar", "restarts", "why restarted"]
    headers += ["init containers", "containers", "outcome"]
    return _table(
        headers,
        [
            TableRow(
                [
                    Cell(f"{r['namespace']}/{r['pod']}", "mono"),
                    Cell(r["workload"]),
                    Cell(r["expected_ready"] or "—"),
                    Cell(r["ready"]),
                    Cell(r["status"]),
                    Cell(_yes_no(r["sidecar"])),
                    Cell(str(r["restarts"])),
                    _restarts_cell(r),
                    Cell(", ".join(r["init_containers"]) or "—", "mono"),
                    Cell(", ".join(r["containers"]), "mono"),
                    Cell(str(r["outcome"]), badge=True),
                ],
                str(r["outcome"]),
            )
            for r in rows
        ],
    )


def _deliveries_table(rows: list[Row], root: RootCause | None) -> Table | None:
    headers = ["subject", "container", "Vault path#key", "expected fingerprint", "observed fingerprint", "verdict"]
    cells = []
    for r in rows:
        verdict = delivery_verdict(r)
        reason = root.shorten(str(r["reason"])) if root else r["reason"]
        cells.append(
            TableRow(
                [
                    Cell(r["subject"], "mono"),
                    Cell(r["container"], "mono"),
                    Cell(f"{r['path']}#{r['key']}" if r["path"] else "—", "mono"),
                    Cell(verdict.expected, "fp"),
                    Cell(verdict.observed, "fp" if verdict.ok else "fp flag"),
                    Cell(verdict.verdict),
                    Cell(str(r["outcome"]), badge=True),
                    Cell(reason, "reason"),
                ],
                str(r["outcome"]),
            )
        )
    return _table([*headers, "outcome", "reason"], cells)


def _policies_table(rows: list[Row]) -> Table | None:
    headers = ["subject", "source", "expected mode", "mode", "deciding object", "outcome", "reason"]
    return _table(
        headers,
        [
            TableRow(
                [
                    Cell(r["subject"], "mono"),
                    Cell(r["source"]),
                    Cell(r["expected_mode"] or "—"),
                    Cell(r["mode"] or "—"),
                    Cell(r["deciding_object"] or "—"),
                    Cell(str(r["outcome"]), badge=True),
                    Cell(r["reason"], "reason"),
                ],
                str(r["outcome"]),
            )
            for r in rows
        ],
    )


def _seconds(at: str) -> float:
    hms = at[11:].rstrip("Z")
    h, m, s = hms.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _timeline(records: list[Row]) -> Table | None:
    if not records:
        return None
    ordered = sorted(records, key=lambda r: (str(r["at"]), int(r["seq"])))
    start_day, start = str(ordered[0]["at"])[:10], _seconds(str(ordered[0]["at"]))
    rows = []
    for r in ordered:
        offset = _seconds(str(r["at"])) - start + (0 if str(r["at"])[:10] == start_day else 86400)
        cells = [
            Cell(str(r["seq"])),
            Cell(str(r["at"])[11:23], "mono"),
            Cell(f"+{offset:.2f}"),
            Cell(r["step"]),
            Cell(r["kind"], "mono"),
            Cell(r["subject"], "mono"),
            Cell(str(r["outcome"]), badge=True),
            Cell(r["reason"], "reason"),
        ]
        rows.append(TableRow(cells, str(r["outcome"])))
    return Table(["seq", "time (UTC)", "s", "step", "kind", "subject", "outcome", "reason"], rows)


def _section(run: RunData, name: str, prefix: str, index: int, root: RootCause | None) -> NotebookSection:
    nb = run.notebook(name)

    def of(rows: list[Row]) -> list[Row]:
        return [r for r in rows if r["notebook"] == name]

    reason = nb.reason if nb else ""
    return NotebookSection(
        name=name,
        anchor=f"{prefix}nb-{_anchor(name)}",
        title=nb.title if nb else "",
        outcome=nb.outcome if nb else "unknown",
        error=nb.error if nb else "",
        reason=root.shorten(reason) if root else reason,
        cell=nb.cell if nb else None,
        pods=_pods_table(of(pod_rows(run))),
        deliveries=_deliveries_table(of(delivery_rows(run)), root),
        policies=_policies_table(of(policy_rows(run))),
        svg=topology_svg(topology(run, name), f"{prefix}t{index}"),  # Markup: escaped where it is drawn
        timeline=_timeline(run.records_of(name)),
        root=root,
        root_anchor=f"{prefix}rc-{_anchor(name)}",
    )


def _run_view(run: RunData, prefix: str, h: int) -> RunView:
    outcomes = notebook_outcomes(run)
    causes = {o.notebook.runbook: cause for o in outcomes if (cause := root_cause(o)) is not None}
    exit_text = f"exit code {run.exit_code}" if run.exit_code is not None else "no exit code (run did not finish)"
    notebook_rows = [
        TableRow(
            [
                Cell(o.notebook.runbook, href=f"#{prefix}nb-{_anchor(o.notebook.runbook)}"),
                Cell(o.notebook.title),
                Cell(o.notebook.outcome, badge=True),
                Cell(f"{o.notebook.seconds:.1f}"),
                Cell(
                    causes[o.notebook.runbook].problem if o.notebook.runbook in causes else o.notebook.reason, "reason"
                ),
            ],
            o.notebook.outcome,
        )
        for o in outcomes
    ]
    return RunView(
        run=run,
        prefix=prefix,
        h=h,
        outcomes=outcomes,
        passed=sum(1 for o in outcomes if o.notebook.outcome == "pass"),
        exit_text=exit_text,
        notebook_table=Table(["notebook", "title", "outcome", "seconds", "reason"], notebook_rows),
        settings=run_settings(run),
        sections=[_section(run, nb.runbook, prefix, i, causes.get(nb.runbook)) for i, nb in enumerate(run.notebooks)],
        leak_scan=leak_scan_summary(run),
        header=header_rows(run),
        causes=causes,
    )


def _comparison(runs: Sequence[RunData]) -> ComparisonView:
    header, rows = comparison_table(runs)
    table = Table(
        header,
        [TableRow([Cell(row[0]), *(Cell(c, badge=c in COMPARED_OUTCOMES) for c in row[1:])]) for row in rows],
    )
    diffs = []
    for diff in history(runs):
        changes = [
            TableRow(
                [Cell(c.kind), Cell(c.notebook), Cell(c.subject, "mono"), Cell(c.before), Cell(c.after)],
                "fail" if c.after in ("fail", "not delivered") else "",
            )
            for c in diff.changes
        ]
        table_of_changes = _table(["change", "notebook", "subject", "before", "after"], changes)
        fingerprints = any(c.kind == "fingerprint" for c in diff.changes)
        diffs.append(DiffView(diff.before, diff.after, table_of_changes, fingerprints))
    return ComparisonView(table, diffs)


def render_html(runs: Sequence[RunData]) -> str:
    """The whole page for one run, or for several (comparison first, then each run)."""
    if not runs:
        raise ValueError("render_html needs at least one run")
    if len(runs) == 1:
        title = f"meshbook run {runs[0].run_id}"
        views = [_run_view(runs[0], "", 2)]
        comparison = None
    else:
        title = f"meshbook: {len(runs)} runs compared"
        views = [_run_view(run, f"r{i}-", 3) for i, run in enumerate(runs)]
        comparison = _comparison(runs)
    template = _environment().get_template("report.html.j2")
    return template.render(
        title=title,
        runs=views,
        comparison=comparison,
        records=sum(len(r.records) for r in runs),
        guide=_guide_table(GUIDE_MAP),
        audit=audit_view(runs),
    )


def _guide_table(entries: Sequence[GuideEntry]) -> Table:
    """The "from the guide to today" page: each object and command of the guide, today's, and the cell."""
    return Table(
        ["the guide (2020)", "today", "notebook cell that does it"],
        [
            TableRow(
                [Cell(e.guide, "mono"), Cell(e.today), Cell(e.cell_text(), "mono")], "replaced" if e.replaced else ""
            )
            for e in entries
        ],
    )
