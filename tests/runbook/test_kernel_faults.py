"""A kernel that dies or freezes mid-cell ends its notebook promptly with the right exit code; never a hang.

The sandbox runs at realistic speed so the first runbook's cells wait on pods for seconds: the test waits
(on the run directory, not on time) until papermill has saved the executing notebook, then kills or
stops the kernel. Every process of the run must be gone afterwards.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.runbook import hermetic_env, run_args, run_dirs

BOUND = 240.0  # seconds: generous bounds on events, not expectations


def _start(tmp_path: Path, *sets: str) -> tuple[subprocess.Popen[str], Path]:
    out = tmp_path / "runs"
    args = run_args(out, "sandbox.speed=realistic", *sets, only=("00-prereq-istio",))
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshbook", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env=hermetic_env(tmp_path),
    )
    return proc, out


def _kernel_while_a_cell_runs(proc: subprocess.Popen[str], out: Path) -> psutil.Process:
    """The run's kernel, once papermill has saved the notebook it executes (a cell has started)."""
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before its notebook started"
        dirs = run_dirs(out)
        saved = dirs and any(_a_cell_runs(path) for path in (dirs[0] / "notebooks").glob("*.ipynb"))
        kernels = [p for p in psutil.Process(proc.pid).children() if "ipykernel_launcher" in " ".join(p.cmdline())]
        if saved and kernels:
            return kernels[0]
        time.sleep(0.05)  # polling the process table and a directory: no event to wait on
    raise AssertionError("no kernel ran a cell in time")


def _a_cell_runs(path: Path) -> bool:
    """papermill marks a cell `running` in the saved notebook when it starts it (after the kernel started)."""
    try:
        cells = json.loads(path.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return False
    return any(c.get("metadata", {}).get("papermill", {}).get("status") == "running" for c in cells)


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    output = proc.communicate(timeout=BOUND)[0]
    return proc.returncode, output


def _notebooks_are_valid_json(out: Path) -> None:
    for path in (run_dirs(out)[0] / "notebooks").glob("*.ipynb"):
        json.loads(path.read_text())


@pytest.mark.slow
def test_a_killed_kernel_ends_the_notebook_with_exit_3(tmp_path: Path) -> None:
    proc, out = _start(tmp_path)
    try:
        kernel = _kernel_while_a_cell_runs(proc, out)
        tree = psutil.Process(proc.pid).children(recursive=True)
        kernel.kill()
        code, output = _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 3, output
    assert "the kernel died while running cell" in " ".join(output.split()), output
    summary = json.loads((run_dirs(out)[0] / "summary.json").read_text())
    (notebook,) = summary["notebooks"]
    assert notebook["error"] == "DeadKernelError" and notebook["cell"] is not None
    _notebooks_are_valid_json(out)
    _, alive = psutil.wait_procs(tree, timeout=60)
    assert not alive, [p.pid for p in alive]


@pytest.mark.slow
def test_a_frozen_kernel_is_a_timeout_not_a_hang(tmp_path: Path) -> None:
    proc, out = _start(tmp_path, "timeouts.notebook=20")
    try:
        kernel = _kernel_while_a_cell_runs(proc, out)
        tree = psutil.Process(proc.pid).children(recursive=True)
        kernel.send_signal(signal.SIGSTOP)
        code, output = _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 4, output
    assert "did not finish within timeouts.notebook (20s)" in " ".join(output.split())
    _notebooks_are_valid_json(out)
    _, alive = psutil.wait_procs(tree, timeout=60)
    assert not alive, [p.pid for p in alive]
