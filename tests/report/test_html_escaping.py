"""report.html escapes evidence text by default (Jinja2 autoescape): markup in a reason or a subject is text."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from meshbook.report import read_run, render_html, topology, topology_svg
from tests.report.test_reports import check_self_contained
from tests.report.test_synthetic import RUN_FAIL, write_run

SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
# evidence subjects have no whitespace (the schema refuses them): `/` separates attributes just as well
SUBJECT_MARKUP = '<script>alert(1)</script>"><img/src=x/onerror=alert(1)>'
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "section", "h2", "h3", "h4", "p", "span",
    "div", "strong", "br", "ul", "li", "code", "a", "table", "thead", "tbody", "tr", "th", "td", "svg", "defs",
    "marker", "path", "g", "rect", "text", "circle", "line", "footer",
}  # fmt: skip


def _hostile_run(root: Path) -> Path:
    """The failing synthetic run with markup in scenario 2's delivery subjects and reasons and in the summary."""
    run = write_run(root, RUN_FAIL, vault_permissive=False)
    evidence = run / "evidence.jsonl"
    records = [json.loads(line) for line in evidence.read_text().splitlines()]
    for record in records:
        if record["notebook"] == "20-scenario-2" and record["kind"] == "secret_delivery":
            record["subject"] += SUBJECT_MARKUP
            record["reason"] = f"{SCRIPT} refused {BREAKOUT}"
    evidence.write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = json.loads((run / "summary.json").read_text())
    for notebook in summary["notebooks"]:
        if notebook["outcome"] == "fail":
            notebook["error"] = BREAKOUT
            notebook["reason"] = SCRIPT
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_markup_in_reasons_and_subjects_reaches_the_page_as_text(tmp_path: Path) -> None:
    run = read_run(_hostile_run(tmp_path))
    assert run.problems == []
    assert {r["reason"] for r in run.records if r["kind"] == "secret_delivery" and r["outcome"] == "fail"} == {
        f"{SCRIPT} refused {BREAKOUT}"
    }
    page = render_html([run])
    tags = check_self_contained(page)
    assert {t for t, _ in tags} <= ALLOWED_TAGS
    assert not any(name.startswith("on") for _, attrs in tags for name in attrs)
    assert "<script" not in page and "<img" not in page and BREAKOUT not in page and SUBJECT_MARKUP not in page
    escaped_reason = html.escape(f"{SCRIPT} refused {BREAKOUT}", quote=True)
    assert f'<td class="reason">{escaped_reason}</td>' in page  # the delivery table and the timeline
    subject = html.escape(f"app/app/app{SUBJECT_MARKUP}", quote=True)
    assert f"<li><code>secret_delivery</code> <code>{subject}</code>: {escaped_reason}</li>" in page
    assert f'<td class="mono">{subject}</td>' in page
    assert f"<p><strong>{html.escape(BREAKOUT)}</strong> (cell 9): {html.escape(SCRIPT)}</p>" in page
    # the topology arrow's hover title carries the same reason, escaped where the SVG is drawn
    assert f"): FAILED. {escaped_reason}</title>" in page


def test_topology_svg_is_markup_with_escaped_text(tmp_path: Path) -> None:
    run = read_run(_hostile_run(tmp_path))
    svg = topology_svg(topology(run, "20-scenario-2"), "t2")
    assert "<script" not in svg and "<img" not in svg and BREAKOUT not in svg
    assert html.escape(f"{SCRIPT} refused {BREAKOUT}", quote=True) in svg
    assert svg.__html__() == svg  # Markup: the page template places it as is


@pytest.mark.parametrize("prefix", ["", '"><script>', "t 1", "1t"])
def test_topology_svg_refuses_a_prefix_that_is_not_an_id(tmp_path: Path, prefix: str) -> None:
    run = read_run(write_run(tmp_path, RUN_FAIL))
    with pytest.raises(ValueError, match="expected an id prefix"):
        topology_svg(topology(run, "20-scenario-2"), prefix)
