"""Tables of report.html are built in Python, cell by cell as the template macro wrote them, and a large
report is built without cyclic garbage collection (restored afterwards)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from markupsafe import Markup

from meshbook.report import RunData, build, build_reports
from meshbook.report.html import render_table
from meshbook.report.tables import Cell, Table, TableRow


def test_every_text_of_a_table_is_escaped() -> None:
    table = Table(
        ["a<b", "q\"'"],
        [
            TableRow([Cell("x&y", "mono"), Cell("fail", badge=True)], css="fail"),
            TableRow([Cell("<i>", href='#a"b'), Cell("\x1b[31mred\x1b[0m\x07")]),
        ],
    )
    assert render_table(table) == (
        "<table><thead><tr><th>a&lt;b</th><th>q&quot;&#x27;</th></tr></thead><tbody>\n"
        '<tr class="fail"><td class="mono">x&amp;y</td><td><span class="badge fail">fail</span></td></tr>\n'
        '<tr><td><a href="#a&quot;b">&lt;i&gt;</a></td><td>red\\x07</td></tr>\n'
        "</tbody></table>"
    )


def test_markup_in_a_cell_passes_even_after_the_same_text_was_escaped() -> None:
    text = "<b>bold</b>"
    plain = render_table(Table(["h"], [TableRow([Cell(text)])]))
    marked = render_table(Table(["h"], [TableRow([Cell(Markup(text))])]))
    assert "<td>&lt;b&gt;bold&lt;/b&gt;</td>" in plain
    assert "<td><b>bold</b></td>" in marked


@pytest.mark.parametrize("enabled", [True, False])
def test_building_reports_leaves_garbage_collection_as_it_was(
    tmp_path: Path, enabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text('{"run_id": "r1", "exit_code": 0, "notebooks": []}\n')
    seen: list[bool] = []
    real = build.render_html

    def spy(runs: list[RunData]) -> str:
        seen.append(gc.isenabled())
        return real(runs)

    monkeypatch.setattr(build, "render_html", spy)
    (gc.enable if enabled else gc.disable)()
    try:
        build_reports([run])
        assert gc.isenabled() is enabled
    finally:
        gc.enable()
    assert seen == [False], "the report was rendered with cyclic garbage collection on"
