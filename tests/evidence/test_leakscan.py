"""The leak scan finds planted secrets in every file and encoding of a run directory; scrub removes them."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote

import nbformat
import pytest

from meshbook.evidence import Leak, Redactor, encoded_forms, scan_for_leaks, scrub

TOKEN = "tok/3n+v@ult=s3cr3t"  # "/", "+", "@", "=": its URL encoding differs from it
PASSWORD = 'pa"ss\\w0rd'  # a quote and a backslash: its JSON escaping differs from it
NAMED = "leaky-name-value"
VALUES = {TOKEN: "vault-token", PASSWORD: "db-password", NAMED: "name-value"}


def _notebook() -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"parameters": {"vault": {"token": TOKEN}}}
    cell = nbformat.v4.new_code_cell("print(json.dumps(config))")
    # the cell printed JSON holding the password: escaped once by json.dumps, again by the notebook file
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=json.dumps({"password": PASSWORD}) + "\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# Scenario 1"), cell]
    return nbformat.writes(nb)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "20250131T120000Z-ab12"
    (run / "notebooks").mkdir(parents=True)
    (run / "logs").mkdir()
    (run / "notebooks" / "10-scenario-1.ipynb").write_text(_notebook(), encoding="utf-8")
    (run / "evidence.jsonl").write_text(
        json.dumps({"seq": 1, "reason": f"login with {PASSWORD} failed"}) + "\n", encoding="utf-8"
    )
    (run / "manifest.json").write_text(
        json.dumps({"files": {"report.html": "0" * 64}, "secret_data": base64.b64encode(TOKEN.encode()).decode()}),
        encoding="utf-8",
    )
    (run / "report.html").write_text(f'<a href="https://vault/ui/?token={quote(TOKEN, safe="")}">Vault</a>\n')
    (run / "report.md").write_text("# Report\nall good\n", encoding="utf-8")
    (run / "junit.xml").write_text('<testsuite name="meshbook" tests="1"/>\n', encoding="utf-8")
    (run / "topology.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe" + TOKEN.encode() + b"\x00\xff")
    (run / "logs" / f"{NAMED}.log").write_text("nothing secret here\n", encoding="utf-8")
    return run


EXPECTED = [
    Leak(Path("evidence.jsonl"), "db-password", "json", 1),
    Leak(Path("logs/‹redacted:name-value›.log"), "name-value", "file name: plain", 1),
    Leak(Path("manifest.json"), "vault-token", "base64", 1),
    Leak(Path("notebooks/10-scenario-1.ipynb"), "db-password", "json-double", 1),
    Leak(Path("notebooks/10-scenario-1.ipynb"), "vault-token", "plain", 1),
    Leak(Path("report.html"), "vault-token", "url", 1),
    Leak(Path("topology.png"), "vault-token", "plain", 1),
]


def test_scan_finds_every_planted_value(run_dir: Path) -> None:
    assert scan_for_leaks(run_dir, VALUES) == EXPECTED


def test_values_without_labels_are_numbered(run_dir: Path) -> None:
    leaks = scan_for_leaks(run_dir, [PASSWORD, TOKEN])
    assert [(str(leak.path), leak.label_or_hint, leak.encoding) for leak in leaks] == [
        ("evidence.jsonl", "value#1", "json"),
        ("manifest.json", "value#2", "base64"),
        ("notebooks/10-scenario-1.ipynb", "value#1", "json-double"),
        ("notebooks/10-scenario-1.ipynb", "value#2", "plain"),
        ("report.html", "value#2", "url"),
        ("topology.png", "value#2", "plain"),
    ]


def test_counts_every_occurrence(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(f"{TOKEN} and {TOKEN}, once more {TOKEN}", encoding="utf-8")
    assert scan_for_leaks(tmp_path, {TOKEN: "t"}) == [Leak(Path("a.txt"), "t", "plain", 3)]


def test_short_values_and_clean_directories_give_nothing(tmp_path: Path, run_dir: Path) -> None:
    assert scan_for_leaks(run_dir, ["abc", ""]) == []
    assert scan_for_leaks(run_dir, {"never-planted-value": "x"}) == []


def test_leaks_never_show_a_value(run_dir: Path) -> None:
    leaks = scan_for_leaks(run_dir, VALUES)
    shown = repr(leaks) + "".join(str(leak) for leak in leaks)
    for value in VALUES:
        for _, text in encoded_forms(value):
            assert text not in shown
    assert str(leaks[-1]) == "topology.png: vault-token (plain) once"


def test_scrub_removes_what_it_can_and_reports_the_rest(run_dir: Path) -> None:
    redactor = Redactor()
    for value, label in VALUES.items():
        redactor.add(value, label=label)
    untouched = {name: (run_dir / name).stat().st_mtime_ns for name in ("report.md", "junit.xml")}
    report = scrub(run_dir, scan_for_leaks(run_dir, VALUES), redactor)
    assert report.rewritten == [
        Path("evidence.jsonl"),
        Path("manifest.json"),
        Path("notebooks/10-scenario-1.ipynb"),
        Path("report.html"),
    ]
    assert report.not_scrubbed == [
        (Path("logs/‹redacted:name-value›.log"), "the file name holds the value: rename or delete the file"),
        (Path("topology.png"), "binary file (not UTF-8 text): cannot be rewritten; delete it"),
    ]
    assert not report.clean
    assert scan_for_leaks(run_dir, VALUES) == [EXPECTED[1], EXPECTED[-1]]
    # rewritten files are still what they were, only redacted
    nb = nbformat.reads((run_dir / "notebooks" / "10-scenario-1.ipynb").read_text(encoding="utf-8"), as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["papermill"]["parameters"]["vault"]["token"] == "‹redacted:vault-token›"
    assert nb.cells[1].outputs[0]["text"] == '{"password": "‹redacted:db-password›"}\n'
    assert json.loads((run_dir / "evidence.jsonl").read_text(encoding="utf-8")) == {
        "seq": 1, "reason": "login with ‹redacted:db-password› failed"
    }  # fmt: skip
    assert json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))["secret_data"] == (
        "‹redacted:vault-token›"
    )
    assert (run_dir / "report.html").read_text(encoding="utf-8") == (
        '<a href="https://vault/ui/?token=‹redacted:vault-token›">Vault</a>\n'
    )
    assert {name: (run_dir / name).stat().st_mtime_ns for name in untouched} == untouched
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "evidence.jsonl",
        "junit.xml",
        "logs",
        "manifest.json",
        "notebooks",
        "report.html",
        "report.md",
        "topology.png",
    ]  # fmt: skip  (no temporary files left)


def test_scrub_with_a_redactor_that_lacks_the_value(run_dir: Path) -> None:
    leaks = [leak for leak in scan_for_leaks(run_dir, VALUES) if leak.path == Path("report.html")]
    report = scrub(run_dir, leaks, Redactor())
    assert report.rewritten == []
    assert report.not_scrubbed == [
        (Path("report.html"), "still holds vault-token: the redactor does not know that value")
    ]


def test_scrub_keeps_the_file_mode(run_dir: Path) -> None:
    target = run_dir / "report.html"
    target.chmod(0o640)
    redactor = Redactor()
    redactor.add(TOKEN, label="vault-token")
    scrub(run_dir, scan_for_leaks(run_dir, {TOKEN: "vault-token"}), redactor)
    assert target.stat().st_mode & 0o777 == 0o640
