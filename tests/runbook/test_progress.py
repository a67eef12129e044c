"""The runner shows each step of the running notebook, and a long wait says what it waits for and last saw."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from meshbook import progress
from meshbook.progress import ProgressFollower


def _event(path: Path, **fields: object) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(fields) + "\n")


def _wait_until(lines: list[str], text: str, ready: threading.Event) -> None:
    assert ready.wait(timeout=30), f"never shown: {text!r}; shown: {lines}"


def test_steps_and_long_waits_are_shown(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    shown: list[str] = []
    seen_wait = threading.Event()

    def show(line: str) -> None:
        shown.append(line)
        if "waiting" in line:
            seen_wait.set()

    with ProgressFollower(path, show, quiet=0.0):
        _event(path, event="step", step="install Istio")
        _event(path, event="wait", description="1 Ready pod in namespace istio-system", last_seen="istiod-1 0/1")
        _wait_until(shown, "waiting", seen_wait)
    assert shown[0] == "      step: install Istio"
    assert any(
        "install Istio: waiting" in line
        and "for 1 Ready pod in namespace istio-system; last seen: istiod-1 0/1" in line
        for line in shown
    ), shown


def test_a_finished_wait_is_no_longer_shown(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    _event(path, event="step", step="app")
    _event(path, event="wait", description="pods", last_seen="x")
    _event(path, event="wait_done", description="pods")
    shown: list[str] = []
    with ProgressFollower(path, shown.append, quiet=0.0) as follower:
        assert follower.caught_up.wait(timeout=30)
    # With no quiet time, a wait still open would have been shown at once.
    assert shown == ["      step: app"]


def test_report_is_silent_outside_a_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(progress.ENV_PROGRESS, raising=False)
    progress.report("step", step="nothing happens")  # no file, no error
    monkeypatch.setenv(progress.ENV_PROGRESS, str(tmp_path / "p.jsonl"))
    progress.report("step", step="s")
    assert json.loads((tmp_path / "p.jsonl").read_text())["step"] == "s"
