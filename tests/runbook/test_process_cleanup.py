"""Every process a run starts ends with the run, on every path: SIGTERM, SIGHUP, SIGINT, SIGKILL.

Each case starts `python -m meshbook run` as a subprocess, waits (on its output, then on the process
table) until 10-scenario-1 runs with the sandbox, its OpenBao and a kernel alive, records the whole process
tree, signals the run and then waits, with a generous bound, for every process of that tree to be gone.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.runbook import hermetic_env, run_args, run_dirs

GONE_WITHIN = 60.0  # seconds: a bound, not an expectation (they go within a second or two)
STARTED_WITHIN = 240.0
KINDS = ("meshbook.sandbox.server", "bao server", "ipykernel_launcher")  # the run's processes that must go


def _wait_for_line(proc: subprocess.Popen[str], marker: str) -> list[str]:
    """Read the run's output until a line contains `marker`; the lines read so far."""
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError(f"the run ended before printing {marker!r}:\n{''.join(seen)}")


def _wait_for_every_kind(proc: subprocess.Popen[str]) -> None:
    """Until the sandbox server, vault-0's OpenBao and the running notebook's kernel are all in the run's
    tree: 10-scenario-1 (whose "[3/5]" line was read) has created vault-0 and not finished yet."""
    deadline = time.monotonic() + STARTED_WITHIN
    while time.monotonic() < deadline:
        if _kinds(_tree(proc.pid)) == set(KINDS):
            return
        assert proc.poll() is None, "the run ended before its OpenBao and kernel ran together"
        time.sleep(0.05)  # polling the process table: there is no event to wait on
    raise AssertionError(f"no moment with all of {KINDS} in the run's tree in time")


def _tree(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def _names(procs: list[psutil.Process]) -> list[str]:
    out = []
    for p in procs:
        try:
            out.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
        except psutil.Error:
            continue
    return out


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture
def started_run(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[subprocess.Popen[str], Path, Path]]:
    """A run of every runbook, stopped while 10-scenario-1 runs, once vault-0's OpenBao has started.

    Parametrized indirectly with True, the run starts with SIGINT ignored, as a job started with `&`
    by a script (or a test runner's worker that ignores it) passes it on."""
    out = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshbook", *run_args(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env=hermetic_env(tmp_path),
        preexec_fn=_ignore_sigint if getattr(request, "param", False) else None,
    )
    try:
        _wait_for_line(proc, "[3/5]")  # 10-scenario-1 starts: it creates vault-0, whose OpenBao then starts
        _wait_for_every_kind(proc)
        yield proc, out, tmp_path / "xdg-state" / "meshbook" / "runs"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        for child in psutil.Process().children(recursive=True):
            child.kill()


def _assert_tree_gone(tree: list[psutil.Process]) -> None:
    _, alive = psutil.wait_procs(tree, timeout=GONE_WITHIN)
    assert not alive, "left behind:\n" + "\n".join(_names(alive))


def _kinds(tree: list[psutil.Process]) -> set[str]:
    found = set()
    for line in _names(tree):
        for kind in KINDS:
            if kind in line:
                found.add(kind)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signalled_run_cleans_up_and_says_incomplete(
    started_run: tuple[subprocess.Popen[str], Path, Path], sig: signal.Signals
) -> None:
    proc, out, sandboxes = started_run
    tree = _tree(proc.pid)
    assert _kinds(tree) >= {"meshbook.sandbox.server", "bao server", "ipykernel_launcher"}, _names(tree)
    proc.send_signal(sig)
    rest = proc.stdout.read() if proc.stdout else ""
    assert proc.wait(timeout=GONE_WITHIN) == 128 + int(sig), rest
    assert f"interrupted by {sig.name}" in rest
    _assert_tree_gone(tree)
    (run_dir,) = run_dirs(out)
    assert (run_dir / "INCOMPLETE").exists()
    # The run's own sandbox state (store, CA keys, OpenBao data, unseal keys, root token) is gone.
    assert not any(sandboxes.iterdir()) if sandboxes.exists() else True


@pytest.mark.slow
@pytest.mark.parametrize("started_run", [True], indirect=True, ids=["sigint-ignored-by-the-parent"])
def test_a_run_started_with_sigint_ignored_still_unwinds_on_sigint(
    started_run: tuple[subprocess.Popen[str], Path, Path],
) -> None:
    """The inherited SIG_IGN made the run ignore SIGINT and go on to exit 0, its sandbox stopped late."""
    proc, out, _ = started_run
    tree = _tree(proc.pid)
    proc.send_signal(signal.SIGINT)
    rest = proc.stdout.read() if proc.stdout else ""
    assert proc.wait(timeout=GONE_WITHIN) == 128 + int(signal.SIGINT), rest
    assert "interrupted by SIGINT" in rest
    _assert_tree_gone(tree)
    (run_dir,) = run_dirs(out)
    assert (run_dir / "INCOMPLETE").exists()


@pytest.mark.slow
def test_a_killed_run_takes_its_sandbox_openbao_and_kernel_with_it(
    started_run: tuple[subprocess.Popen[str], Path, Path],
) -> None:
    proc, _, sandboxes = started_run
    tree = _tree(proc.pid)
    assert _kinds(tree) >= {"meshbook.sandbox.server", "bao server", "ipykernel_launcher"}, _names(tree)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=GONE_WITHIN)
    _assert_tree_gone(tree)
    # The sandbox noticed its owner was gone and removed its state, keys included, as it stopped.
    assert sandboxes.exists()
    assert list(sandboxes.iterdir()) == []


@pytest.mark.slow
def test_a_killed_sandbox_server_takes_its_openbao_with_it(
    started_run: tuple[subprocess.Popen[str], Path, Path],
) -> None:
    proc, _, _ = started_run
    tree = _tree(proc.pid)
    servers = [p for p in tree if "meshbook.sandbox.server" in " ".join(p.cmdline())]
    baos = [p for p in tree if "bao server" in " ".join(p.cmdline())]
    assert servers and baos, _names(tree)
    for server in servers:
        server.kill()
    _assert_tree_gone(baos)
