"""Kernels started ahead of their notebook: meshbook already imported, the namespace still empty, and
nothing left running once stopped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from jupyter_core.utils import run_sync

from meshbook.runbook.kernels import kernelspec, start_kernel, stop_kernel, wait_until_ready


def _output_of(km: object, code: str) -> str:
    kc = km.client()  # type: ignore[attr-defined]
    kc.start_channels()
    try:
        run_sync(kc.wait_for_ready)(timeout=120)
        reply = run_sync(kc.execute_interactive)(code, timeout=120, output_hook=_collect)
        assert reply["content"]["status"] == "ok", reply
        return "".join(_COLLECTED)
    finally:
        kc.stop_channels()


_COLLECTED: list[str] = []


def _collect(msg: dict[str, object]) -> None:
    content = msg.get("content")
    if msg.get("msg_type") == "stream" and isinstance(content, dict):
        _COLLECTED.append(str(content.get("text", "")))


def test_a_kernel_started_ahead_has_meshbook_imported_and_an_empty_namespace(tmp_path: Path) -> None:
    _COLLECTED.clear()
    with kernelspec():
        km = start_kernel(tmp_path)
        pid = km.provisioner.process.pid  # type: ignore[union-attr]
        try:
            out = _output_of(
                km,
                "import os, sys\npreloaded = {'meshbook.runbook.session', 'meshbook.widgets'} <= set(sys.modules)\n"
                "print(preloaded, 'meshbook' in dir(), os.getcwd())",
            )
        finally:
            stop_kernel(km)
    assert out.split() == ["True", "False", str(tmp_path)]
    assert not Path(f"/proc/{pid}").exists() or _zombie(pid), "the kernel process is still running"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_stopping_a_kernel_that_died_is_quiet(tmp_path: Path) -> None:
    with kernelspec():
        km = start_kernel(tmp_path)
        pid = km.provisioner.process.pid  # type: ignore[union-attr]
        os.kill(pid, 9)
        stop_kernel(km)
    assert not km.has_kernel


def test_wait_until_ready_says_whether_a_kernel_started_ahead_answered(tmp_path: Path) -> None:
    with kernelspec():
        alive, dead = start_kernel(tmp_path), start_kernel(tmp_path)
        try:
            os.kill(dead.provisioner.process.pid, 9)  # type: ignore[union-attr]
            assert wait_until_ready(alive, timeout=120) is True
            # A dead kernel is no answer, found by its liveness check, not by waiting out the timeout;
            # the notebook's own wait for it then reports it in its words.
            assert wait_until_ready(dead, timeout=120) is False
        finally:
            stop_kernel(alive)
            stop_kernel(dead)


def test_a_run_s_kernels_keep_no_ipython_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels that share the user's history database contend for its lock: a notebook's output then
    shows "database is locked" (seen with kernels started ahead under parallel test workers)."""
    _COLLECTED.clear()
    ipython_dir = tmp_path / "ipython"
    monkeypatch.setenv("IPYTHONDIR", str(ipython_dir))
    with kernelspec():
        km = start_kernel(tmp_path)
        try:
            out = _output_of(km, "print(get_ipython().history_manager.enabled)")
        finally:
            stop_kernel(km)
    assert out.split() == ["False"]
    assert ipython_dir.is_dir(), "the kernel did not use the IPYTHONDIR the test set"
    assert not list(ipython_dir.rglob("history.sqlite*")), sorted(map(str, ipython_dir.rglob("*")))
