"""report.html in a real browser: headless Chromium renders it, screenshots it and loads nothing from the network.

The session fixture installs Debian's `chromium` when /usr/bin/chromium is missing (apt-get), and skips
with the reason only if that fails. Screenshots go to tests/artifacts/ (gitignored) for people to look at.

No network: Chromium runs with every host name mapped to NOTFOUND and writes a NetLog (its own record of
every request it starts). A control page that references an external image shows up there as a request
the page started, so the check can fail; the report must start no request at all, and its DOM must still
be complete.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshbook.report import build_reports
from tests.chromium import require_chromium, run_chromium
from tests.conftest import ROOT
from tests.report.test_synthetic import NOTEBOOKS, RUN_FAIL, write_run

ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="session")
def chromium() -> Path:
    return require_chromium()


def screenshot(chromium: Path, page: Path, png: Path, profile: Path) -> None:
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    proc = run_chromium(chromium, profile, f"--screenshot={png}", "--window-size=1400,2000", page.as_uri())
    assert png.exists(), proc.stderr[-2000:]


def dump_dom(chromium: Path, page: Path, profile: Path, *extra: str) -> str:
    proc = run_chromium(chromium, profile, *extra, "--dump-dom", page.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def page_requests(path: Path) -> list[str]:
    """URLs of every request a document started, from a NetLog (`URL_REQUEST_START_JOB` with an initiator).

    Chromium's own background requests (time sync, accounts) have the initiator "not an origin" and are
    left out; a request made on behalf of the page (a file:// document's initiator is "null") is kept.
    """
    text = path.read_text(encoding="utf-8", errors="replace").strip()
    try:
        log = json.loads(text)
    except ValueError:  # Chromium exited before closing the events list
        log = json.loads(text.rstrip(",") + "]}")
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = set()
    for event in log.get("events", []):
        params = event.get("params") or {}
        if event.get("type") == start_job and "url" in params and params.get("initiator") != "not an origin":
            urls.add(str(params.get("url")))
    return sorted(urls)


@pytest.fixture
def report(tmp_path: Path) -> Iterator[Path]:
    run = write_run(tmp_path / "runs", RUN_FAIL, vault_permissive=False, hostile=True)
    html, _, _ = build_reports([run])
    yield html


@pytest.mark.timeout(1500)
def test_report_renders_in_chromium(chromium: Path, report: Path, tmp_path: Path) -> None:
    png = ARTIFACTS / "report-synthetic.png"
    screenshot(chromium, report, png, tmp_path / "profile-shot")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
    dom = dump_dom(chromium, report, tmp_path / "profile-dom")
    assert '<section class="summary" id="summary"><h2>Outcome summary</h2>' in dom
    for name, title in NOTEBOOKS.items():
        assert f'<section class="scenario" id="nb-{name}"><h2>{name}: {title} <span class="badge' in dom
    assert dom.count('<svg class="topology"') == 5
    # the hostile reason is text, not markup: no script element, no image element came from the evidence
    assert "<script" not in dom
    assert "<img" not in dom
    assert '&lt;script&gt;alert("x")&lt;/script&gt;' in dom


@pytest.mark.timeout(1500)
def test_report_makes_no_network_request(chromium: Path, report: Path, tmp_path: Path) -> None:
    offline = ("--host-resolver-rules=MAP * ~NOTFOUND", "--net-log-capture-mode=Everything")
    # control: a page with an external image is seen requesting it, so this check can fail
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><html><body><p>control</p><img src="https://meshbook-canary.example/x.png">'
                       "</body></html>")  # fmt: skip
    control_log = tmp_path / "control-netlog.json"
    dom = dump_dom(chromium, control, tmp_path / "profile-control", *offline, f"--log-net-log={control_log}")
    assert "<p>control</p>" in dom
    assert page_requests(control_log) == ["https://meshbook-canary.example/x.png"]

    log = tmp_path / "report-netlog.json"
    dom = dump_dom(chromium, report, tmp_path / "profile-report", *offline, f"--log-net-log={log}")
    assert page_requests(log) == []
    assert "Outcome summary" in dom
    for name in NOTEBOOKS:
        assert f'id="nb-{name}"' in dom
    assert "What to do:" in dom
