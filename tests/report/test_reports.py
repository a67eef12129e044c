"""report.html, report.md and junit.xml from synthetic run directories: content, escaping, self-containment.

`check_self_contained` and `check_junit` are used by the real-run test too.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from meshbook.evidence import fingerprint
from meshbook.report import advise, build_reports, read_run, render_html, render_junit, topology
from meshbook.report.topology import Arrow
from tests.conftest import CliResult
from tests.report.test_synthetic import (
    FP_KEY,
    HOSTILE,
    NOTEBOOKS,
    RUN_FAIL,
    SECRET,
    STRICT_REASON,
    failing_run,
    passing_run,
    write_run,
)

__all__ = ["check_junit", "check_self_contained", "failing_run", "passing_run"]

FORBIDDEN_TAGS = {"script", "img", "link", "iframe", "object", "embed", "audio", "video", "source", "base", "form"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def check_self_contained(page: str) -> list[tuple[str, dict[str, str]]]:
    """Assert `page` loads nothing: no resource tags, only in-page links and url(#...); returns its tags."""
    parser = _Tags()
    parser.feed(page)
    tags = parser.tags
    assert {t for t, _ in tags} & FORBIDDEN_TAGS == set()
    for tag, attrs in tags:
        assert "src" not in attrs, (tag, attrs)
        assert "srcset" not in attrs and "xlink:href" not in attrs, (tag, attrs)
        if "href" in attrs:
            assert attrs["href"].startswith("#"), (tag, attrs)
        for value in attrs.values():
            for ref in re.findall(r"url\(([^)]*)\)", value):
                assert ref.startswith("#"), (tag, value)
    style = page[page.index("<style>") : page.index("</style>")]
    assert "url(" not in style and "@import" not in style
    return tags


def check_junit(text: str) -> ET.Element:
    """Strict parse, then the common JUnit shape: testsuites/testsuite/testcase/(failure|error|skipped)."""
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "testsuites"
    assert root.text is None or not root.text.strip()
    number = re.compile(r"^[0-9]+$")
    seconds = re.compile(r"^[0-9]+(\.[0-9]+)?$")
    for suite in root:
        assert suite.tag == "testsuite"
        assert set(suite.attrib) == {"name", "tests", "failures", "errors", "skipped", "time"}
        assert all(number.match(suite.get(k, "")) for k in ("tests", "failures", "errors", "skipped"))
        assert seconds.match(suite.get("time", ""))
        cases = list(suite)
        if cases and cases[0].tag == "properties":  # optional, first (the report header)
            assert all(p.tag == "property" and p.get("name") and p.get("value") is not None for p in cases[0])
            cases = cases[1:]
        assert all(case.tag == "testcase" for case in cases)
        assert int(suite.get("tests", "")) == len(cases)
        counted = {"failure": 0, "error": 0, "skipped": 0}
        for case in cases:
            assert set(case.attrib) == {"classname", "name", "time"} and seconds.match(case.get("time", ""))
            assert case.get("name") and case.get("classname")
            for child in case:
                assert child.tag in ("failure", "error", "skipped", "system-out"), child.tag
                if child.tag in counted:
                    counted[child.tag] += 1
                if child.tag in ("failure", "error"):
                    assert child.get("message"), "a failure needs its message"
            assert sum(1 for c in case if c.tag in counted) <= 1
        assert (int(suite.get("failures", "")), int(suite.get("errors", "")), int(suite.get("skipped", ""))) == (
            counted["failure"],
            counted["error"],
            counted["skipped"],
        )
    for key in ("tests", "failures", "errors", "skipped"):
        assert int(root.get(key, "")) == sum(int(s.get(key, "")) for s in root)
    return root


def test_build_reports_into_the_run_directory_deterministically(failing_run: Path) -> None:
    paths = build_reports([failing_run])
    assert paths == [failing_run / "report.html", failing_run / "report.md", failing_run / "junit.xml"]
    first = [p.read_bytes() for p in paths]
    assert build_reports([failing_run]) == paths
    assert [p.read_bytes() for p in paths] == first
    assert sorted(p.name for p in failing_run.iterdir()) == [
        "evidence.jsonl", "junit.xml", "notebooks", "report.html", "report.md", "summary.json",
    ]  # fmt: skip


def test_html_summary_first_failures_first_with_the_fix(failing_run: Path) -> None:
    page = render_html([read_run(failing_run)])
    check_self_contained(page)
    summary = page.index('<section class="summary" id="summary"><h2>Outcome summary</h2>')
    card = page.index('<div class="failure"><h3><span class="badge fail">fail</span> <a href="#nb-20-scenario-2">')
    table = page.index("<table><thead><tr><th>notebook</th>")
    sections = [page.index(f'<section class="scenario" id="nb-{name}">') for name in NOTEBOOKS]
    assert summary < card < table < sections[0]
    assert sections == sorted(sections)
    rows = re.findall(r'<tr class="(\w+)"><td><a href="#nb-([\w-]+)">', page[table:])[:5]
    assert rows == [("fail", "20-scenario-2"), *[("pass", n) for n in NOTEBOOKS if n != "20-scenario-2"]]
    advice = advise(STRICT_REASON)
    assert advice is not None and advice.key == "vault-strict-outside"
    assert f'<div class="fix"><strong>What to do:</strong> {html.escape(advice.fix)}<br>' in page
    assert page.count("What to do:") == 1
    assert html.escape(STRICT_REASON) in page
    assert "http://" not in page and "https://" not in page


def test_html_tables_show_expected_and_observed_and_fingerprints(failing_run: Path) -> None:
    page = render_html([read_run(failing_run)])
    s2 = page[page.index('id="nb-20-scenario-2"') : page.index('id="nb-30-scenario-3"')]
    assert (
        '<tr class="fail"><td class="mono">app/app-6f7e8d9c0b-fffff</td><td>app</td><td>1/1</td><td>0/1</td>'
        "<td>Init:CrashLoopBackOff</td><td>no</td><td>3</td>"
    ) in s2
    expected = fingerprint(SECRET, FP_KEY)
    assert (  # the expected value's fingerprint next to what the container got: nothing
        '<tr class="fail"><td class="mono">app/app/init-ubuntu</td><td class="mono">init-ubuntu</td>'
        '<td class="mono">secret/data/accounts/aws#AWS_SECRET_ACCESS_KEY</td>'
        f'<td class="fp">{expected}</td><td class="fp flag">nothing delivered</td><td>not delivered</td>'
    ) in s2
    s1 = page[page.index('id="nb-10-scenario-1"') : page.index('id="nb-20-scenario-2"')]
    assert (
        s1.count(f'<td class="fp">{expected}</td><td class="fp">{expected}</td><td>delivered, matches Vault</td>') == 2
    )
    assert "‹redacted:secret-data-accounts-aws#AWS_SECRET_ACCESS_KEY›" in s1
    timeline = s2[s2.index("<h3>Timeline</h3>") :]
    assert re.findall(r"<tr class=\"\w+\"><td>(\d+)</td>", timeline) == [str(n) for n in range(16, 24)]


def test_no_secret_in_any_report(failing_run: Path) -> None:
    for path in build_reports([failing_run]):
        text = path.read_text(encoding="utf-8")
        assert SECRET not in text, path.name
        assert html.escape(SECRET) not in text


def test_hostile_text_is_escaped_everywhere(tmp_path: Path) -> None:
    run = write_run(tmp_path, RUN_FAIL, vault_permissive=False, hostile=True)
    page_path, md_path, junit_path = build_reports([run])
    page = page_path.read_text()
    tags = check_self_contained(page)
    assert "<script" not in page and "\x1b" not in page and "\x07" not in page
    assert html.escape('<script>alert("x")</script> & ]]> red \\x07') in page
    assert {t for t, _ in tags} <= {
        "html", "head", "meta", "title", "style", "body", "header", "h1", "section", "h2", "h3", "h4", "p", "span",
        "div", "strong", "br", "ul", "li", "code", "a", "table", "thead", "tbody", "tr", "th", "td", "svg", "defs",
        "marker", "path", "g", "rect", "text", "circle", "line", "footer",
    }  # fmt: skip
    root = check_junit(junit_path.read_text())
    failure = root.find("testsuite[@name='20-scenario-2']/testcase/failure")
    assert failure is not None
    assert failure.get("message") == "READY 0/1, Init:CrashLoopBackOff " + HOSTILE.replace("\x1b[31m", "").replace(
        "\x1b[0m", ""
    ).replace("\x07", "\\x07")
    md = md_path.read_text()
    assert "<script>" not in md and "\\<script\\>" in md


def test_topology_of_a_failing_scenario(failing_run: Path) -> None:
    run = read_run(failing_run)
    topo = topology(run, "20-scenario-2")
    assert [(ns.name, ns.injection, ns.mtls, [p["pod"] for p in ns.pods]) for ns in topo.namespaces] == [
        ("vault-system", True, "STRICT (mesh)", [
            "vault-operator-6b7c8d9f5c-aaaaa", "vault-secrets-webhook-7f6d5c4b3a-bbbbb",
            "vault-secrets-webhook-7f6d5c4b3a-ccccc",
        ]),
        ("vault", True, "STRICT (mesh)", [
            "vault-0", "vault-configurer-5c6d7e8f9a-ggggg",
        ]),
        ("app", False, "STRICT (mesh)", ["app-6f7e8d9c0b-fffff"]),
        ("istio-system", False, "STRICT (mesh)", ["istiod-5d8f7c9b6d-abcde"]),
    ]  # fmt: skip
    mutated = "the webhook mutated the app's pod: app-6f7e8d9c0b-fffff has the copy-vault-env init container"
    assert topo.arrows == [
        Arrow("kube-apiserver", "vault-system/vault-secrets-webhook-7f6d5c4b3a-bbbbb", "admission", "ok", mutated),
        Arrow("app/app-6f7e8d9c0b-fffff", "vault/vault-0", "app", "fail", STRICT_REASON),
        Arrow("app/app-6f7e8d9c0b-fffff", "vault/vault-0", "init-ubuntu", "fail", STRICT_REASON),
    ]
    page = render_html([run])
    s2 = page[page.index('id="nb-20-scenario-2"') : page.index('id="nb-30-scenario-3"')]
    title = html.escape(f"app/app-6f7e8d9c0b-fffff → vault/vault-0 (init-ubuntu): FAILED. {STRICT_REASON}")
    assert f'<g class="arrow fail"><title>{title}</title>' in s2
    assert s2.count('<g class="arrow fail">') == 2
    assert s2.count('stroke="#cf222e" stroke-width="2.5" marker-end="url(#t3-fail)"/>') == 2
    assert s2.count('<g class="arrow ok">') == 1
    assert s2.count('stroke="#1a7f37" stroke-width="2.5" marker-end="url(#t3-ok)"/>') == 1
    assert s2.count('<g class="sidecar"><title>istio-proxy sidecar</title>') == 5
    # scenario 1 passed: green arrows only, and Vault's namespace PERMISSIVE only in the passing run
    passing = topology(
        read_run(write_run(failing_run.parent.parent / "other", "20250103T000000Z-cccccc")), "10-scenario-1"
    )
    assert [(a.label, a.verdict) for a in passing.arrows] == [("admission", "ok"), ("app", "ok"), ("init-ubuntu", "ok")]
    assert [ns.mtls for ns in passing.namespaces if ns.name == "vault"] == ["PERMISSIVE (namespace)"]


def test_junit_counts_and_failures(failing_run: Path) -> None:
    root = check_junit(render_junit([read_run(failing_run)]))
    assert [(s.get("name"), s.get("tests"), s.get("failures"), s.get("errors"), s.get("time")) for s in root] == [
        ("00-prereq-istio", "3", "0", "0", "10.000"),
        ("01-prereq-bank-vaults", "4", "0", "0", "11.000"),
        ("10-scenario-1", "6", "0", "0", "12.000"),
        ("20-scenario-2", "6", "4", "0", "13.000"),
        ("30-scenario-3", "6", "0", "0", "14.000"),
    ]
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("time")) == ("25", "4", "0", "60.000")
    s2 = root.find("testsuite[@name='20-scenario-2']")
    assert s2 is not None
    cases = s2.findall("testcase")  # after the suite's properties (the report header)
    assert [(c.get("classname"), c.get("name"), [f.get("message") for f in c.findall("failure")]) for c in cases] == [
        ("meshbook.20-scenario-2", "recreate: pod vault/vault READY 4/4", []),
        ("meshbook.20-scenario-2", "recreate: pod vault/vault-configurer READY 2/2", []),
        ("meshbook.20-scenario-2", "recreate: pod app/app READY 1/1", ["READY 0/1, Init:CrashLoopBackOff"]),
        ("meshbook.20-scenario-2", "recreate: secret delivered to app/app/app", [STRICT_REASON]),
        ("meshbook.20-scenario-2", "recreate: secret delivered to app/app/init-ubuntu", [STRICT_REASON]),
        ("meshbook.20-scenario-2", "notebook 20-scenario-2", [
            "ExpectationFailed (cell 9): 20-scenario-2: 3 expectation(s) failed: app/app: expected READY 1/1, "
            f"observed 0/1; {STRICT_REASON}"
        ]),
    ]  # fmt: skip
    webhooks = root.findall("testsuite[@name='01-prereq-bank-vaults']/testcase")
    assert [c.get("name") for c in webhooks] == [
        "install Bank-Vaults: pod vault-system/vault-operator READY 2/2",
        "install Bank-Vaults: pod vault-system/vault-secrets-webhook READY 2/2",
        "install Bank-Vaults: pod vault-system/vault-secrets-webhook READY 2/2 #2",
        "notebook 01-prereq-bank-vaults",
    ]


def test_junit_errors_and_skips(failing_run: Path) -> None:
    summary = (failing_run / "summary.json").read_text()
    summary = summary.replace('"error": "ExpectationFailed"', '"error": "WaitTimeoutError"', 1)
    summary = summary.replace(
        '"outcome": "pass",\n      "seconds": 14.0,\n      "cell": null,\n      "error": "",\n      "reason": ""',
        '"outcome": "skipped",\n      "seconds": 0.0,\n      "cell": null,\n      "error": "skipped",\n'
        '      "reason": "not run: 20-scenario-2 ended the run"',
    )
    (failing_run / "summary.json").write_text(summary)
    root = check_junit(render_junit([read_run(failing_run)]))
    s2, s3 = root.find("testsuite[@name='20-scenario-2']"), root.find("testsuite[@name='30-scenario-3']")
    assert s2 is not None and s3 is not None
    assert (s2.get("failures"), s2.get("errors"), s3.get("skipped")) == ("3", "1", "1")
    error = s2.find("testcase[@name='notebook 20-scenario-2']/error")
    assert error is not None and error.get("type") == "WaitTimeoutError"
    skipped = s3.find("testcase[@name='notebook 30-scenario-3']/skipped")
    assert skipped is not None and skipped.get("message") == "not run: 20-scenario-2 ended the run"


def test_markdown(failing_run: Path) -> None:
    _, md_path, _ = build_reports([failing_run])
    md = md_path.read_text()
    advice = advise(STRICT_REASON)
    assert advice is not None
    lines = md.splitlines()
    assert lines[:3] == [f"# meshbook run {RUN_FAIL}", "", "## What was tested, where"]  # the header first
    summary = lines.index("## Outcome summary")
    assert lines[summary : summary + 4] == [
        "## Outcome summary",
        "",
        "**FAIL**: 4 of 5 notebooks passed, exit code 1.",
        "",
    ]
    assert lines[summary + 4] == f"### ❌ fail: 20-scenario-2 {NOTEBOOKS['20-scenario-2']}"
    fix = advice.fix.replace("`", "\\`")
    assert f"- **What to do:** {fix} (why: {advice.problem})" in lines
    assert (
        "| app/app-6f7e8d9c0b-fffff | 1/1 | 0/1 | Init:CrashLoopBackOff | no | ❌ fail "
        "| ⚠ 3 restart(s), unexplained: which container and why was not recorded |"
    ) in lines
    assert [line for line in lines if line.startswith("- app/app-6f7e8d9c0b-fffff → vault/vault-0")] == [
        f"- app/app-6f7e8d9c0b-fffff → vault/vault-0 (app): ❌ failed. {STRICT_REASON}",
        f"- app/app-6f7e8d9c0b-fffff → vault/vault-0 (init-ubuntu): ❌ failed. {STRICT_REASON}",
    ]
    assert SECRET not in md


def test_cli_report_single_run(failing_run: Path, run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("report", str(failing_run))
    assert result.code == 0, result.err
    assert result.out.splitlines() == [str(failing_run / n) for n in ("report.html", "report.md", "junit.xml")]


def test_cli_report_bad_input(tmp_path: Path, failing_run: Path, run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("report", str(failing_run), str(failing_run))
    assert (result.code, result.out) == (2, "")
    assert result.err == "meshbook: 2 run directories: name an output directory with --out DIR\n"
    result = run_cli("report", str(tmp_path / "nope"))
    assert (result.code, result.err) == (2, f"meshbook: {tmp_path / 'nope'}: not a run directory\n")
    (tmp_path / "empty").mkdir()
    result = run_cli("report", str(tmp_path / "empty"))
    assert result.code == 2
    assert "not a meshbook run directory" in result.err


@pytest.mark.parametrize("name", ["00-prereq-istio", "30-scenario-3"])
def test_advice_is_absent_for_passing_notebooks(failing_run: Path, name: str) -> None:
    page = render_html([read_run(failing_run)])
    start = page.index(f'id="nb-{name}"')
    end = page.find('<section class="scenario"', start + 1)
    assert "What to do" not in page[start : end if end > 0 else len(page)]
