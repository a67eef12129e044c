"""report.md: the same summary and tables as GitHub-flavoured Markdown, for terminals and code review.

Table cells have `|` escaped and line breaks folded; the topology is written as the list of calls with
their verdicts. With several runs, the comparison and the changes come first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from meshbook.report.history import comparison_table, history
from meshbook.report.load import delivery_rows, pod_rows, policy_rows, printable
from meshbook.report.outcomes import leak_scan_summary, notebook_outcomes, run_settings
from meshbook.report.rundir import RunData
from meshbook.report.topology import topology

__all__ = ["render_markdown"]

Row = dict[str, Any]
MARK = {"pass": "✅ pass", "fail": "❌ fail", "skip": "⏭ skip", "skipped": "⏭ skipped", "info": "info"}


def _cell(value: Any) -> str:
    text = "—" if value is None or value == "" else str(value)
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
    lines = [_inline(scan.headline), "", f"Encodings: {_inline(scan.encodings)}.", ""]
    if scan.not_read:
        lines += [f"Sources not read: {_inline('; '.join(scan.not_read))}.", ""]
    lines += _table(["secret class", "values"], scan.classes)
    if scan.leaks:
        lines += _table(["leak in", "secret class", "encoding", "count", "scrubbed"], scan.leaks)
    return lines


def _summary(run: RunData, h: str) -> list[str]:
    items = notebook_outcomes(run)
    passed = sum(1 for o in items if o.notebook.outcome == "pass")
    exit_text = f"exit code {run.exit_code}" if run.exit_code is not None else "no exit code (run did not finish)"
    lines = [
        f"{h} Outcome summary",
        "",
        f"**{run.outcome.upper()}**: {passed} of {len(items)} notebooks passed, {exit_text}.",
        "",
    ]
    if run.state != "complete":
        lines += [f"Run state: {_inline(run.state)}. {_inline(run.state_reason)}", ""]
    lines += _leak_scan(run)
    for o in (o for o in items if o.failing):
        nb = o.notebook
        lines.append(f"{h}# {MARK.get(nb.outcome, nb.outcome)}: {_inline(nb.runbook)} {_inline(nb.title)}")
        lines.append("")
        if nb.reason or nb.error:
            where = f" (cell {nb.cell})" if nb.cell is not None else ""
            lines += [f"- **{_inline(nb.error or 'reason')}**{where}: {_inline(nb.reason)}"]
        lines += [
            f"- {_inline(r['kind'])} {_inline(r['subject'])}: {_inline(r['reason'] or 'failed')}" for r in o.failed
        ]
        lines += [f"- **What to do:** {_inline(a.fix)} (why: {_inline(a.problem)})" for a in o.advice]
        lines.append("")
    rows = [[o.notebook.runbook, o.notebook.title, MARK.get(o.notebook.outcome, o.notebook.outcome),
             f"{o.notebook.seconds:.1f}", o.notebook.reason] for o in items]  # fmt: skip
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
            ["pod", "expected READY", "READY", "status", "sidecar", "outcome"],
            [[f"{r['namespace']}/{r['pod']}", r["expected_ready"], r["ready"], r["status"], _yes(r["sidecar"]),
              MARK.get(str(r["outcome"]), r["outcome"])] for r in pods],
        )  # fmt: skip
    deliveries = [r for r in delivery_rows(run) if r["notebook"] == name]
    if deliveries:
        lines += [f"{h}# Secret delivery", ""]
        lines += _table(
            ["container", "delivered", "matches_vault", "fingerprint", "outcome", "reason"],
            [[r["subject"], _yes(r["delivered"]), _yes(r["matches_vault"]), r["fingerprint"],
              MARK.get(str(r["outcome"]), r["outcome"]), r["reason"]] for r in deliveries],
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
    else:
        lines = [f"# meshbook: {len(runs)} runs compared", "", *_history(runs)]
        for run in runs:
            lines += [f"## Run {_inline(run.run_id)} ({MARK.get(run.outcome, run.outcome)})", "", *_summary(run, "###")]
            for nb in run.notebooks:
                lines += _notebook(run, nb.runbook, "###")
    return "\n".join(lines).rstrip("\n") + "\n"
