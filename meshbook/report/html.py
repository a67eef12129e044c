"""report.html: one self-contained page (inline CSS and SVG; no script, no external URL, no fetch).

Outcome summary first (failing notebooks first, with the reason and what to do), then one section per
notebook: expected vs observed pods, secret delivery (fingerprints, never values), mesh policy, the
topology picture and the step timeline. With several runs, the comparison and the changes between
consecutive runs come first and each run follows in its own section. Every string is HTML-escaped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from meshbook.report.history import comparison_table, history
from meshbook.report.load import delivery_rows, pod_rows, policy_rows, printable
from meshbook.report.outcomes import notebook_outcomes, run_settings
from meshbook.report.rundir import RunData
from meshbook.report.topology import topology, topology_svg

__all__ = ["render_html"]

Row = dict[str, Any]

CSS = """
:root { --pass:#1a7f37; --fail:#cf222e; --info:#57606a; --skip:#9a6700; --line:#d0d7de; --bg:#f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; padding: 24px;
  max-width: 1500px; color: #1f2328; }
h1 { font-size: 24px; margin: 0 0 8px; }
h2 { font-size: 20px; margin: 32px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 16px; margin: 20px 0 6px; } h4 { font-size: 14px; margin: 14px 0 4px; }
table { border-collapse: collapse; margin: 6px 0 12px; width: 100%; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
td.reason { max-width: 700px; overflow-wrap: anywhere; }
code, .mono, td.fp { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
td.fp { overflow-wrap: anywhere; max-width: 320px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; font-weight: 600; font-size: 12px; }
.badge.pass { background: var(--pass); } .badge.fail { background: var(--fail); } .badge.info, .badge.unknown,
.badge.incomplete, .badge.running { background: var(--info); } .badge.skip, .badge.skipped { background: var(--skip); }
tr.fail td { background: #ffebe9; } tr.skip td, tr.skipped td { background: #fff8c5; }
.failure { border: 1px solid var(--fail); border-left: 6px solid var(--fail); border-radius: 6px; padding: 8px 14px;
  margin: 10px 0; background: #fff5f5; }
.failure.unknown { border-color: var(--info); background: var(--bg); }
.fix { border-left: 4px solid var(--pass); background: #dafbe1; padding: 6px 10px; margin: 6px 0; }
.note { color: var(--info); }
.settings td:first-child { width: 220px; }
.svgwrap { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; background: #fff; padding: 6px; }
svg.topology { max-width: 100%; height: auto; }
svg .box.ns { fill: #f6f8fa; stroke: #57606a; } svg .box.api { fill: #fff8c5; stroke: #9a6700; }
svg .podbox { fill: #fff; stroke-width: 2; } svg .label { font: 600 14px system-ui, sans-serif; fill: #1f2328; }
svg .small { font: 12px system-ui, sans-serif; fill: #57606a; }
svg .mono { font: 12px ui-monospace, monospace; fill: #1f2328; }
svg .proxy { font: 700 10px system-ui, sans-serif; fill: #fff; }
nav ul { margin: 4px 0; } footer { margin-top: 40px; color: var(--info); font-size: 12px; }
"""


def _e(value: Any) -> str:
    return escape(printable(value), quote=True)


def _anchor(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def _badge(outcome: str) -> str:
    return f'<span class="badge {_e(outcome)}">{_e(outcome)}</span>'


def _bool(value: Any) -> str:
    return ("yes" if value else "no") if isinstance(value, bool) else "—" if value is None else _e(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] | None = None) -> str:
    """A table from already-escaped cells; `classes` gives each row a class (its outcome)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{_e(classes[i])}"' if classes else ""
        body.append(f"<tr{cls}>" + "".join(row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _td(value: Any, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{_e(value)}</td>"


def _summary(run: RunData, prefix: str, h: int) -> str:
    items = notebook_outcomes(run)
    failing = [o for o in items if o.failing]
    verdict = run.outcome
    parts = [f'<section class="summary" id="{prefix}summary"><h{h}>Outcome summary</h{h}>']
    exit_text = f"exit code {run.exit_code}" if run.exit_code is not None else "no exit code (run did not finish)"
    passed = sum(1 for o in items if o.notebook.outcome == "pass")
    parts.append(
        f"<p>{_badge(verdict)} run <code>{_e(run.run_id)}</code>: {passed} of {len(items)} notebooks passed, "
        f"{_e(exit_text)}.</p>"
    )
    if run.state != "complete":
        parts.append(f'<p class="note">Run state: {_e(run.state)}. {_e(run.state_reason)}</p>')
    for o in failing:
        nb = o.notebook
        cls = "failure" if nb.outcome == "fail" or o.failed else "failure unknown"
        where = f" (cell {nb.cell})" if nb.cell is not None else ""
        parts.append(
            f'<div class="{cls}"><h{h + 1}>{_badge(nb.outcome)} <a href="#{prefix}nb-{_anchor(nb.runbook)}">'
            f"{_e(nb.runbook)}</a> {_e(nb.title)}</h{h + 1}>"
        )
        if nb.reason or nb.error:
            parts.append(f"<p><strong>{_e(nb.error or 'reason')}</strong>{_e(where)}: {_e(nb.reason)}</p>")
        if o.failed:
            parts.append("<ul>")
            for r in o.failed:
                reason = _e(r["reason"] or "failed")
                parts.append(f"<li><code>{_e(r['kind'])}</code> <code>{_e(r['subject'])}</code>: {reason}</li>")
            parts.append("</ul>")
        for advice in o.advice:
            parts.append(
                f'<div class="fix"><strong>What to do:</strong> {_e(advice.fix)}<br>'
                f'<span class="note">Why: {_e(advice.problem)}</span></div>'
            )
        if not o.advice and nb.outcome == "fail":
            parts.append('<p class="note">Not one of the common failures: read the failing cell of the notebook.</p>')
        parts.append("</div>")
    rows, classes = [], []
    for o in items:
        nb = o.notebook
        classes.append(nb.outcome)
        rows.append(
            [
                f'<td><a href="#{prefix}nb-{_anchor(nb.runbook)}">{_e(nb.runbook)}</a></td>',
                _td(nb.title),
                f"<td>{_badge(nb.outcome)}</td>",
                _td(f"{nb.seconds:.1f}"),
                _td(nb.reason, "reason"),
            ]
        )
    parts.append(_table(["notebook", "title", "outcome", "seconds", "reason"], rows, classes))
    settings = run_settings(run)
    if settings:
        parts.append(f"<h{h + 1}>Settings</h{h + 1}>")
        parts.append(
            '<table class="settings"><tbody>'
            + "".join(f"<tr><td>{_e(k)}</td><td><code>{_e(v)}</code></td></tr>" for k, v in settings)
            + "</tbody></table>"
        )
    if run.problems:
        parts.append(f"<h{h + 1}>Evidence problems</h{h + 1}><ul>")
        parts += [f"<li>{_e(p)}</li>" for p in run.problems]
        parts.append("</ul>")
    parts.append("</section>")
    return "".join(parts)


def _pods_table(rows: list[Row]) -> str:
    if not rows:
        return '<p class="note">No pod states recorded.</p>'
    cells = [
        [
            _td(f"{r['namespace']}/{r['pod']}", "mono"),
            _td(r["workload"]),
            _td(r["expected_ready"] or "—"),
            _td(r["ready"]),
            _td(r["status"]),
            f"<td>{_bool(r['sidecar'])}</td>",
            _td(r["restarts"]),
            _td(", ".join(r["init_containers"]) or "—", "mono"),
            _td(", ".join(r["containers"]), "mono"),
            f"<td>{_badge(str(r['outcome']))}</td>",
        ]
        for r in rows
    ]
    headers = ["pod", "workload", "expected READY", "READY", "status", "sidecar", "restarts", "init containers"]
    headers += ["containers", "outcome"]
    return _table(headers, cells, [str(r["outcome"]) for r in rows])


def _deliveries_table(rows: list[Row]) -> str:
    if not rows:
        return '<p class="note">No secret delivery checked in this notebook.</p>'
    cells = [
        [
            _td(r["subject"], "mono"),
            _td(r["container"], "mono"),
            _td(f"{r['path']}#{r['key']}" if r["path"] else "—", "mono"),
            f"<td>{_bool(r['delivered'])}</td>",
            f"<td>{_bool(r['matches_vault'])}</td>",
            _td(r["fingerprint"] or "—", "fp"),
            f"<td>{_badge(str(r['outcome']))}</td>",
            _td(r["reason"], "reason"),
        ]
        for r in rows
    ]
    headers = ["subject", "container", "Vault path#key", "delivered", "matches_vault", "fingerprint", "outcome"]
    return _table([*headers, "reason"], cells, [str(r["outcome"]) for r in rows])


def _policies_table(rows: list[Row]) -> str:
    if not rows:
        return '<p class="note">No mesh policy recorded in this notebook.</p>'
    cells = [
        [
            _td(r["subject"], "mono"),
            _td(r["source"]),
            _td(r["expected_mode"] or "—"),
            _td(r["mode"] or "—"),
            _td(r["deciding_object"] or "—"),
            f"<td>{_badge(str(r['outcome']))}</td>",
            _td(r["reason"], "reason"),
        ]
        for r in rows
    ]
    headers = ["subject", "source", "expected mode", "mode", "deciding object", "outcome", "reason"]
    return _table(headers, cells, [str(r["outcome"]) for r in rows])


def _seconds(at: str) -> float:
    hms = at[11:].rstrip("Z")
    h, m, s = hms.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _timeline(records: list[Row]) -> str:
    if not records:
        return '<p class="note">No evidence recorded.</p>'
    ordered = sorted(records, key=lambda r: (str(r["at"]), int(r["seq"])))
    start_day, start = str(ordered[0]["at"])[:10], _seconds(str(ordered[0]["at"]))
    cells = []
    for r in ordered:
        offset = _seconds(str(r["at"])) - start + (0 if str(r["at"])[:10] == start_day else 86400)
        cells.append(
            [
                _td(r["seq"]),
                _td(str(r["at"])[11:23], "mono"),
                _td(f"+{offset:.2f}"),
                _td(r["step"]),
                _td(r["kind"], "mono"),
                _td(r["subject"], "mono"),
                f"<td>{_badge(str(r['outcome']))}</td>",
                _td(r["reason"], "reason"),
            ]
        )
    headers = ["seq", "time (UTC)", "s", "step", "kind", "subject", "outcome", "reason"]
    return _table(headers, cells, [str(r["outcome"]) for r in ordered])


def _notebook_section(run: RunData, name: str, prefix: str, h: int, index: int) -> str:
    nb = run.notebook(name)
    title = nb.title if nb else ""
    outcome = nb.outcome if nb else "unknown"
    anchor = f"{prefix}nb-{_anchor(name)}"
    parts = [
        f'<section class="scenario" id="{anchor}"><h{h}>{_e(name)}{": " + _e(title) if title else ""} '
        f"{_badge(outcome)}</h{h}>"
    ]
    if nb and (nb.reason or nb.error):
        where = f" in cell {nb.cell}" if nb.cell is not None else ""
        parts.append(f"<p><strong>{_e(nb.error)}</strong>{_e(where)}: {_e(nb.reason)}</p>")

    def of(rows: Callable[[RunData], list[Row]]) -> list[Row]:
        return [r for r in rows(run) if r["notebook"] == name]

    sub = h + 1
    parts.append(f"<h{sub}>Pods: expected vs observed</h{sub}>" + _pods_table(of(pod_rows)))
    parts.append(f"<h{sub}>Secret delivery</h{sub}>" + _deliveries_table(of(delivery_rows)))
    parts.append(f"<h{sub}>Mesh policy</h{sub}>" + _policies_table(of(policy_rows)))
    svg = topology_svg(topology(run, name), f"{prefix}t{index}")
    parts.append(
        f"<h{sub}>Topology</h{sub}>"
        '<p class="note">The cluster as last observed when this notebook ended; '
        "hover an arrow or a pod for details.</p>"
        f'<div class="svgwrap">{svg}</div>'
    )
    parts.append(f"<h{sub}>Timeline</h{sub}>" + _timeline(run.records_of(name)))
    parts.append("</section>")
    return "".join(parts)


def _run_body(run: RunData, prefix: str, h: int) -> str:
    parts = [_summary(run, prefix, h)]
    parts += [_notebook_section(run, nb.runbook, prefix, h, i) for i, nb in enumerate(run.notebooks)]
    return "".join(parts)


def _history(runs: Sequence[RunData]) -> str:
    header, rows = comparison_table(runs)
    cells = [[_td(row[0])] + [f"<td>{_badge(c) if c in ('pass', 'fail', 'skipped', 'unknown') else _e(c)}</td>"
                              for c in row[1:]] for row in rows]  # fmt: skip
    parts = ['<section class="history" id="history"><h2>Runs compared</h2>', _table(header, cells)]
    parts.append("<h3>What changed between consecutive runs</h3>")
    for diff in history(runs):
        parts.append(f"<h4><code>{_e(diff.before)}</code> → <code>{_e(diff.after)}</code></h4>")
        if not diff.changes:
            parts.append('<p class="note">No change in settings, outcomes, READY or deliveries.</p>')
            continue
        change_rows = [
            [_td(c.kind), _td(c.notebook), _td(c.subject, "mono"), _td(c.before), _td(c.after)] for c in diff.changes
        ]
        classes = ["fail" if c.after in ("fail", "not delivered") else "" for c in diff.changes]
        parts.append(_table(["change", "notebook", "subject", "before", "after"], change_rows, classes))
        if any(c.kind == "fingerprint" for c in diff.changes):
            parts.append(
                '<p class="note">A changed fingerprint means a different value was delivered, or the runs used '
                "different fingerprint keys.</p>"
            )
    parts.append("</section>")
    return "".join(parts)


def render_html(runs: Sequence[RunData]) -> str:
    """The whole page for one run, or for several (comparison first, then each run)."""
    if not runs:
        raise ValueError("render_html needs at least one run")
    if len(runs) == 1:
        run = runs[0]
        title = f"meshbook run {run.run_id}"
        body = f"<header><h1>{_e(title)}</h1></header>" + _run_body(run, "", 2)
    else:
        title = f"meshbook: {len(runs)} runs compared"
        nav = "".join(
            f'<li><a href="#r{i}-run">{_e(r.run_id)}</a> {_badge(r.outcome)}</li>' for i, r in enumerate(runs)
        )
        body = f"<header><h1>{_e(title)}</h1><nav><ul>{nav}</ul></nav></header>" + _history(runs)
        for i, run in enumerate(runs):
            body += f'<section class="run" id="r{i}-run"><h2>Run {_e(run.run_id)} {_badge(run.outcome)}</h2>'
            body += _run_body(run, f"r{i}-", 3) + "</section>"
    records = sum(len(r.records) for r in runs)
    footer = (
        f"<footer>Built by meshbook from {records} evidence records (schema meshbook.evidence/v1) and summary.json. "
        "Secret values never appear: deliveries are shown by keyed fingerprint.</footer>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        'img-src data:">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>{body}{footer}</body></html>\n"
    )
