"""report.html in headless Chromium as an auditor gets it: the header, the fingerprint columns and one root
cause in the rendered page; and it prints cleanly to PDF (a page break before each notebook and the guide
page, no table wider than the printable width).

The PDF's pages are counted from its page objects (`/Type /Page`). Whether a table is cut is measured in
the browser: a copy of the page applies its print rules on screen (`@media print` -> `@media all`), at
the printable width of an A4 page with the report's 12 mm margins (186 mm = 703 CSS px), and a script
lists every table wider than the body and every cell whose content overflows it. A control page with an
unbreakable wide table shows the measurement can fail; the report's own screen layout at that width is
cut, so it is the print rules that make it fit.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from meshbook.evidence import fingerprint
from meshbook.report import build_reports
from tests.chromium import run_chromium
from tests.report.test_auditor import _with_identity
from tests.report.test_chromium import chromium, dump_dom
from tests.report.test_synthetic import FP_KEY, NOTEBOOKS, RUN_FAIL, RUN_PASS, SECRET, STRICT_REASON, write_run

__all__ = ["chromium"]

PRINTABLE_WIDTH_PX = 703  # A4 (210 mm) less 2 x 12 mm margins, at 96 px per inch
MEASURE = """
<script>
const body = document.body.getBoundingClientRect();
const cut = [];
document.querySelectorAll("table").forEach((table, i) => {
  const box = table.getBoundingClientRect();
  if (box.right > body.right + 0.5 || table.scrollWidth > table.clientWidth + 1) cut.push("table " + i);
  table.querySelectorAll("td, th").forEach((cell, j) => {
    if (cell.scrollWidth > cell.clientWidth + 1) cut.push("table " + i + " cell " + j);
  });
});
const out = document.createElement("pre");
out.id = "measured";
out.textContent = JSON.stringify({tables: document.querySelectorAll("table").length, cut: cut});
document.body.appendChild(out);
</script>
"""


def _measurable(page: str, *, print_rules: bool) -> str:
    """The page with its CSP removed (so the measuring script runs) and print rules applied on screen."""
    page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    if print_rules:
        assert "@media print {" in page
        page = page.replace("@media print {", "@media all {")
    return page.replace("</body>", MEASURE + "</body>")


def _measure(chromium: Path, page: Path, profile: Path) -> dict[str, object]:
    proc = run_chromium(
        chromium, profile, f"--window-size={PRINTABLE_WIDTH_PX},1000", "--virtual-time-budget=5000", "--dump-dom",
        page.as_uri(),
    )  # fmt: skip
    found = re.search(r'<pre id="measured">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stderr[-2000:]
    result: dict[str, object] = json.loads(found.group(1).replace("&quot;", '"'))
    return result


def _pages(pdf: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf.read_bytes()))


@pytest.fixture
def report(tmp_path: Path) -> Path:
    run = _with_identity(write_run(tmp_path / "runs", RUN_FAIL, vault_permissive=False))
    return build_reports([run])[0]


@pytest.mark.timeout(1500)
def test_the_measurement_sees_a_cut_table(chromium: Path, report: Path, tmp_path: Path) -> None:
    control = tmp_path / "control.html"
    wide = "x" * 400
    control.write_text(
        f'<!DOCTYPE html><html><body><table><tr><td style="white-space:nowrap">{wide}</td></tr></table></body></html>'
    )
    control.write_text(_measurable(control.read_text(), print_rules=False))
    assert _measure(chromium, control, tmp_path / "profile-control")["cut"] != []
    screen = tmp_path / "screen.html"  # the report's screen layout does not fit a printed page
    screen.write_text(_measurable(report.read_text(encoding="utf-8"), print_rules=False), encoding="utf-8")
    assert _measure(chromium, screen, tmp_path / "profile-screen")["cut"] != []


@pytest.mark.timeout(1500)
def test_no_table_is_cut_at_the_printable_width(chromium: Path, report: Path, tmp_path: Path) -> None:
    printed = tmp_path / "printed.html"
    printed.write_text(_measurable(report.read_text(encoding="utf-8"), print_rules=True), encoding="utf-8")
    measured = _measure(chromium, printed, tmp_path / "profile-print")
    assert measured["cut"] == []
    assert isinstance(measured["tables"], int) and measured["tables"] > 15


@pytest.mark.timeout(1500)
def test_the_report_prints_to_pdf_with_a_page_per_notebook(chromium: Path, report: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    proc = run_chromium(chromium, tmp_path / "profile-pdf", "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
                        report.as_uri())  # fmt: skip
    assert pdf.exists() and pdf.read_bytes()[:5] == b"%PDF-", proc.stderr[-2000:]
    pages = _pages(pdf)
    # the summary, then each notebook and the guide page start on a page of their own
    assert len(NOTEBOOKS) + 2 <= pages <= 60, pages
    one_page = tmp_path / "one.pdf"
    (tmp_path / "one.html").write_text("<!DOCTYPE html><html><body><p>one page</p></body></html>")
    run_chromium(chromium, tmp_path / "profile-one", f"--print-to-pdf={one_page}", (tmp_path / "one.html").as_uri())
    assert _pages(one_page) == 1  # the counter counts pages, not page trees


@pytest.mark.timeout(1500)
def test_passing_and_failing_reports_in_chromium(chromium: Path, tmp_path: Path) -> None:
    expected = fingerprint(SECRET, FP_KEY)
    failing = build_reports([_with_identity(write_run(tmp_path / "a", RUN_FAIL, vault_permissive=False))])[0]
    passing = build_reports([_with_identity(write_run(tmp_path / "b", RUN_PASS))])[0]
    doms = {name: dump_dom(chromium, page, tmp_path / f"profile-{name}") for name, page in
            (("fail", failing), ("pass", passing))}  # fmt: skip
    for dom in doms.values():
        header = dom[dom.index('<section class="identity" id="identity">') : dom.index('id="summary"')]
        assert "hashicorp/vault:1.21.4; the server reports version 2.7.2" in header
        assert "kube-system namespace UID 35c9cfdf-212a-45d1-bcfd-ce78c4baf559" in header
        assert "<th>expected fingerprint</th><th>observed fingerprint</th><th>verdict</th>" in dom
    assert doms["pass"].count(f'<td class="fp">{expected}</td><td class="fp">{expected}</td>') == 6
    assert "Root cause" not in doms["pass"] and 'class="fp flag"' not in doms["pass"]
    fail = doms["fail"]
    assert fail.count('<td class="fp flag">nothing delivered</td>') == 2
    assert fail.count("<strong>Root cause:</strong>") == 2  # the summary's card, and the notebook's pointer to it
    # stated once; beyond that only in the raw record views: the timeline's rows and the topology's hover titles
    in_records = fail.count(f"{STRICT_REASON}</td>") + fail.count(f"{STRICT_REASON}</title>")
    assert fail.count(STRICT_REASON) - in_records == 1
