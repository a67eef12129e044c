"""The panel in a real browser: `meshbook lab` on a sandbox, headless Chromium driven over the DevTools protocol.

Setup: `meshbook run` executes the prerequisite runbooks into a sandbox it keeps running, then `meshbook lab`
serves a copy of the notebooks against that sandbox. Chromium (Debian's `chromium`, installed with apt-get
when missing) opens 10-scenario-1, runs all cells through JupyterLab's own command, and the test waits on
the DOM (polling over CDP against a deadline) until the panel's pod table, fed by its watch, shows vault-0
3/3 and the app 2/2. The screenshot goes to tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from meshbook.sandbox import control
from tests.chromium import FLAGS, require_chromium
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

ARTIFACTS = ROOT / "tests" / "artifacts"
SCREENSHOT = ARTIFACTS / "lab-panel-10-scenario-1.png"
DEADLINE = 300.0  # seconds for any one browser condition; the sandbox is instant, the margin is for slow CI


@pytest.fixture(scope="module")
def chromium() -> Path:
    return require_chromium()


def _meshbook(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshbook", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def prepared_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A sandbox with the prerequisites applied by `meshbook run`, kept running for JupyterLab."""
    base = tmp_path_factory.mktemp("lab")
    state = base / "sandbox"
    proc = _meshbook(
        "run", "--only", "00-prereq-istio", "--only", "01-prereq-bank-vaults", "--keep-sandbox",
        "--set", f"sandbox.state_dir={state}", "--out", str(base / "runs"),
    )  # fmt: skip
    try:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        yield state
    finally:
        control.down(state)


@pytest.fixture
def lab(prepared_sandbox: Path, tmp_path: Path) -> Iterator[str]:
    """`meshbook lab` on a copy of the notebooks; yields the URL it printed (with its token)."""
    notebooks = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", notebooks)
    home = tmp_path / "jupyter"
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True})
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
    }
    env.pop("MESHBOOK_RUN_DIR", None)
    log = (tmp_path / "lab.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "meshbook", "lab", "--state", str(prepared_sandbox), "--port", "0",
            "--notebook-dir", str(notebooks), "--", "--LabApp.expose_app_in_browser=True",
        ],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        url = None
        for line in process.stdout:  # ends when `meshbook lab` exits
            found = re.search(r"JupyterLab on \S+: (http://\S+)", line)
            if found:
                url = found.group(1)
                break
        assert url, (tmp_path / "lab.log").read_text()[-3000:]
        threading.Thread(target=process.stdout.read, daemon=True).start()  # keep draining its stdout
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # meshbook lab stops JupyterLab, which stops its kernels
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the session this test started, by its id
                process.wait()
        log.close()


class Cdp:
    """The few DevTools protocol calls the test needs, over one page's websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        mine = self.next_id
        await self.ws.send_json({"id": mine, "method": method, "params": params})
        async for message in self.ws:
            data = json.loads(message.data)
            if data.get("id") == mine:
                if "error" in data:
                    raise AssertionError(f"{method}: {data['error']}")
                return dict(data.get("result") or {})
        raise AssertionError(f"the browser closed the connection during {method}")

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression[:80]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def until(self, expression: str, what: str, deadline: float = DEADLINE) -> Any:
        """Poll `expression` until it is truthy; fail with its last value after `deadline` seconds."""
        end = time.monotonic() + deadline
        value = None
        while time.monotonic() < end:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.25)
        raise AssertionError(f"timed out after {deadline:.0f}s waiting for {what}; last value: {value!r}")


NOTEBOOK = """(() => {
  const app = window.jupyterapp;
  if (!app) return null;
  return Array.from(app.shell.widgets('main')).find(w => w.context && w.context.path === '10-scenario-1.ipynb');
})()"""

KERNEL_IDLE = f"""(() => {{
  const panel = {NOTEBOOK};
  const kernel = panel && panel.context.isReady && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return kernel && kernel.status === 'idle' ? kernel.name : null;
}})()"""

RUN_ALL = f"""(() => {{
  const panel = {NOTEBOOK};
  window.jupyterapp.shell.activateById(panel.id);
  window.meshbookRun = 'running';
  window.jupyterapp.commands.execute('notebook:run-all-cells').then(
    ok => {{ window.meshbookRun = ok === false ? 'a cell failed' : 'done'; }},
    err => {{ window.meshbookRun = 'error: ' + err; }});
  return true;
}})()"""

TABLE_ROWS = """(selector => Array.from(document.querySelectorAll(selector + ' tr'))
  .map(row => Array.from(row.cells).map(cell => cell.innerText.trim())))"""


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


async def _drive(chromium: Path, profile: Path, url: str) -> dict[str, Any]:
    process = subprocess.Popen(
        [str(chromium), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "--window-size=1400,2400",
         "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        browser = None
        for line in process.stderr:  # Chromium names its DevTools endpoint on stderr once it listens
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            if found:
                browser = found.group(1)
                break
        assert browser, "Chromium did not start its DevTools endpoint"
        threading.Thread(target=process.stderr.read, daemon=True).start()
        port = browser.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
        async with aiohttp.ClientSession() as http:
            targets = await (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
            page = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                cdp = Cdp(ws)
                lab_url = url.replace("/lab?", "/lab/tree/10-scenario-1.ipynb?")
                await cdp.call("Page.navigate", url=lab_url)
                kernel = await cdp.until(KERNEL_IDLE, "the notebook to open with an idle kernel")
                await cdp.evaluate(RUN_ALL)
                await cdp.until("document.querySelector('.meshbook-panel table.meshbook-pods') !== null", "the panel")
                pods = await cdp.until(
                    f"""(() => {{
                      const rows = {TABLE_ROWS}('.meshbook-panel table.meshbook-pods');
                      const vault = rows.some(r => r[1] === 'vault-0' && r[2] === '3/3' && r[3] === 'Running');
                      const app = rows.some(r => r[0] === 'app' && r[1].startsWith('app-') && r[2] === '2/2');
                      return vault && app ? rows : null;
                    }})()""",
                    "the panel's pod table to show vault-0 3/3 and app 2/2",
                )
                outcome = await cdp.until("window.meshbookRun !== 'running' && window.meshbookRun", "run-all to end")
                connections = await cdp.evaluate(f"{TABLE_ROWS}('.meshbook-panel table.meshbook-connections')")
                target = await cdp.evaluate(f"{TABLE_ROWS}('.meshbook-panel table.meshbook-target')")
                await cdp.evaluate("document.querySelector('.meshbook-panel').scrollIntoView(); true")
                shot = await cdp.call("Page.captureScreenshot", format="png")
                await cdp.call("Browser.close")
        process.wait(30)
        return {
            "kernel": kernel,
            "pods": pods,
            "outcome": outcome,
            "connections": connections,
            "target": target,
            "png": base64.b64decode(shot["data"]),
        }
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.timeout(1800)
def test_panel_in_jupyterlab_shows_scenario_1_live(chromium: Path, lab: str, tmp_path: Path) -> None:
    seen = asyncio.run(_drive(chromium, tmp_path / "profile", lab))

    assert seen["kernel"] == "python3"
    assert seen["outcome"] == "done"  # every cell ran, rb.finish() included: scenario 1's expectations held
    pods = {row[1]: row for row in seen["pods"][1:]}
    assert pods["vault-0"][:4] == ["vault", "vault-0", "3/3", "Running"]
    (app,) = [row for name, row in pods.items() if name.startswith("app-")]
    assert app[2:6] == ["2/2", "Running", "Running", "classic"]
    header, *rows = seen["connections"]
    assert header[:2] == ["connection", "verdict"]
    assert [row[1] for row in rows] == ["allowed", "allowed", "allowed"]
    assert ["target", "sandbox"] in seen["target"]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.write_bytes(seen["png"])
    assert SCREENSHOT.exists()
    width, height = _png_size(SCREENSHOT.read_bytes())
    assert width >= 1000 and height >= 1500
    assert SCREENSHOT.stat().st_size > 50_000  # a rendered page, not a blank one
