"""report.md: the same summary and tables as GitHub-flavoured Markdown, for terminals and code review.

Table cells have `|` escaped and line breaks folded; the topology is written as the list of calls with
their verdicts. With several runs, the comparison and the changes come first.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from meshbook.report.guide_map import GUIDE_MAP
from meshbook.report.header import header_rows
from meshbook.report.history import comparison_table, history
from meshbook.report.load import delivery_rows, pod_rows, policy_rows, printable
from meshbook.report.outcomes import leak_scan_summary, notebook_outcomes, run_settings
from meshbook.report.rootcause import RootCause, root_cause
from meshbook.report.rundir import RunData
from meshbook.report.topology import topology
from meshbook.report.verdicts import delivery_verdict, restart_notes

__all__ = ["render_markdown"]

Row = dict[str, Any]
MARK = {"pass": "✅ pass", "fail": "❌ fail", "skip": "⏭ skip", "skipped": "⏭ skipped", "info": "info"}


def _cell(value: Any) -> str:
    return _cell_text("—" if value is None or value == "" else str(value))


@lru_cache(maxsize=16384)
def _cell_text(text: str) -> str:
    """A cell's text escaped, remembered: a report of many runs repeats the same words in most cells."""
    text = " ".join(printable(text).split())
    for ch in ("\\", "|", "<", ">", "`", "[", "]"):
        text = text.replace(ch, "\\" + ch)
    return text


def _inline(value: Any) -> str:
    """Text for a paragraph: Markdown and HTML characters escaped, one line."""
    return _cell(value)


def _yes(value: Any) -> str:
    return ("yes" if value else "no") if isinstance(value, bool) else "—" if value is None else _cell(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _leak_scan(run: RunData) -> list[str]:
    scan = leak_scan_summary(run)
    if scan is None:
        return []
    lines = [f"Leak scan scope (result in the header above). Encodings: {_inline(scan.encodings)}.", ""]
    if scan.not_read:
        lines += [f"Sources not read: {_inline('; '.join(scan.not_read))}.", ""]
    lines += _table(["secret class", "values"], scan.classes)
    if scan.leaks:
        lines += _table(["leak in", "secret class", "encoding", "count", "scrubbed"], scan.leaks)
    return lines


def _root_cause(rc: RootCause) -> list[str]:
    """The root cause, stated once above the details: problem, recorded reason, deciding objects, remedy."""
    lines = [f"**Root cause:** {_inline(rc.problem)}", ""]
    if rc.evidence:
        lines += [f"Recorded: {_inline(rc.evidence)}", ""]
    if rc.deciding:
        lines += ["Deciding objects: " + "; ".join(_inline(d) for d in rc.deciding), ""]
    if rc.remedy:
        lines += [f"- **What to do:** {_inline(rc.remedy)} (why: {_inline(rc.problem)})", ""]
    return [*lines, "Details:", ""]


def _header(run: RunData, h: str) -> list[str]:
    return [f"{h} What was tested, where", "", *_table(["what", "as recorded at the end of the run"], header_rows(run))]


def _guide(h: str) -> list[str]:
    rows = [[e.guide, e.today, "; ".join(c.text() for c in e.cells)] for e in GUIDE_MAP]
    return [f"{h} From the guide to today", "", *_table(["the guide (2020)", "today", "notebook cell"], rows)]


def _summary(run: RunData, h: str) -> list[str]:
    items = notebook_outcomes(run)
    passed = sum(1 for o in items if o.notebook.outcome == "pass")
    exit_text = f"exit code {run.exit_code}" if run.exit_code is not None else "no exit code (run did not finish)"
    lines = [
        *_header(run, h),
        f"{h} Outcome summary",
        "",
        f"**{run.outcome.upper()}**: {passed} of {len(items)} notebooks passed, {exit_text}.",
        "",
    ]
    if run.state != "complete":
        lines += [f"Run state: {_inline(run.state)}. {_inline(run.state_reason)}", ""]
    lines += _leak_scan(run)
    for o in (o for o in items if o.failing):
        nb, rc = o.notebook, root_cause(o)
        lines.append(f"{h}# {MARK.get(nb.outcome, nb.outcome)}: {_inline(nb.runbook)} {_inline(nb.title)}")
        lines.append("")
        lines += _root_cause(rc) if rc else []
        if nb.reason or nb.error:
            where = f" (cell {nb.cell})" if nb.cell is not None else ""
            reason = rc.shorten(nb.reason) if rc else nb.reason
            lines += [f"- **{_inline(nb.error or 'reason')}**{where}: {_inline(reason)}"]
        for r in o.failed:
            reason = rc.shorten(str(r["reason"])) if rc else str(r["reason"])
            lines.append(f"- {_inline(r['kind'])} {_inline(r['subject'])}: {_inline(reason or 'failed')}")
        lines.append("")
    causes = {o.notebook.runbook: rc.problem for o in items if (rc := root_cause(o)) is not None}
    rows = [[o.notebook.runbook, o.notebook.title, MARK.get(o.notebook.outcome, o.notebook.outcome),
             f"{o.notebook.seconds:.1f}", causes.get(o.notebook.runbook, o.notebook.reason)]
            for o in items]  # fmt: skip
    lines += _table(["notebook", "title", "outcome", "seconds", "reason"], rows)
    settings = run_settings(run)
    if settings:
        lines += _table(["setting", "value"], settings)
    if run.problems:
        lines += ["Evidence problems:", "", *[f"- {_inline(p)}" for p in run.problems], ""]
    return lines


def _notebook(run: RunData, name: str, h: str) -> list[str]:
    nb = run.notebook(name)
    title = f": {nb.title}" if nb and nb.title else ""
    outcome = MARK.get(nb.outcome, nb.outcome) if nb else "unknown"
    lines = [f"{h} {_inline(name + title)} ({outcome})", ""]
    if nb and (nb.reason or nb.error):
        lines += [f"**{_inline(nb.error)}**: {_inline(nb.reason)}", ""]
    pods = [r for r in pod_rows(run) if r["notebook"] == name]
    if pods:
        lines += [f"{h}# Pods", ""]
        lines += _table(
            ["pod", "expected READY", "READY", "status", "sidecar", "outcome", "restarts"],
            [[f"{r['namespace']}/{r['pod']}", r["expected_ready"], r["ready"], r["status"], _yes(r["sidecar"]),
              MARK.get(str(r["outcome"]), r["outcome"]),
              "; ".join(("" if n.expected else "⚠ ") + n.text for n in restart_notes(r)) or "0"] for r in pods],
        )  # fmt: skip
    deliveries = [r for r in delivery_rows(run) if r["notebook"] == name]
    if deliveries:
        lines += [f"{h}# Secret delivery", ""]
        verdicts = [delivery_verdict(r) for r in deliveries]
        lines += _table(
            ["container", "expected fingerprint", "observed fingerprint", "verdict", "outcome", "reason"],
            [[r["subject"], v.expected, v.observed, v.verdict, MARK.get(str(r["outcome"]), r["outcome"]), r["reason"]]
             for r, v in zip(deliveries, verdicts, strict=True)],
        )  # fmt: skip
    policies = [r for r in policy_rows(run) if r["notebook"] == name]
    if policies:
        lines += [f"{h}# Mesh policy", ""]
        lines += _table(
            ["subject", "source", "expected mode", "mode", "deciding object", "outcome"],
            [[r["subject"], r["source"], r["expected_mode"], r["mode"], r["deciding_object"],
              MARK.get(str(r["outcome"]), r["outcome"])] for r in policies],
        )  # fmt: skip
    topo = topology(run, name)
    if topo.arrows:
        lines += [f"{h}# Calls", ""]
        for a in topo.arrows:
            word = {"ok": "✅ worked", "fail": "❌ failed", "unknown": "not checked"}[a.verdict]
            lines.append(
                f"- {_inline(a.source)} → {_inline(a.target)} ({_inline(a.label)}): {word}. {_inline(a.reason)}"
            )
        lines.append("")
    return lines


def _history(runs: Sequence[RunData]) -> list[str]:
    header, rows = comparison_table(runs)
    lines = ["## Runs compared", "", *_table(header, [[MARK.get(c, c) for c in row] for row in rows])]
    lines += ["## What changed between consecutive runs", ""]
    for diff in history(runs):
        lines += [f"### {_inline(diff.before)} → {_inline(diff.after)}", ""]
        if not diff.changes:
            lines += ["No change in settings, outcomes, READY or deliveries.", ""]
            continue
        lines += _table(
            ["change", "notebook", "subject", "before", "after"],
            [[c.kind, c.notebook, c.subject, c.before, c.after] for c in diff.changes],
        )
    return lines


def render_markdown(runs: Sequence[RunData]) -> str:
    """report.md for one run, or several (comparison first, then each run's summary and notebooks)."""
    if not runs:
        raise ValueError("render_markdown needs at least one run")
    if len(runs) == 1:
        run = runs[0]
        lines = [f"# meshbook run {_inline(run.run_id)}", "", *_summary(run, "##")]
        for nb in run.notebooks:
            lines += _notebook(run, nb.runbook, "##")
        lines += _guide("##")
    else:
        lines = [f"# meshbook: {len(runs)} runs compared", "", *_history(runs)]
        for run in runs:
            lines += [f"## Run {_inline(run.run_id)} ({MARK.get(run.outcome, run.outcome)})", "", *_summary(run, "###")]
            for nb in run.notebooks:
                lines += _notebook(run, nb.runbook, "###")
        lines += _guide("##")
    return "\n".join(lines).rstrip("\n") + "\n"
