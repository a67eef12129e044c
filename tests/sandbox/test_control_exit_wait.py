"""`control._exited`: the stop of a process is seen through its pidfd, at once, not at a polling tick."""

from __future__ import annotations

import subprocess
import sys

from meshbook.sandbox.control import _exited


def test_a_running_process_has_not_exited_after_the_wait() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        assert _exited(proc.pid, 0.2) is False
    finally:
        proc.kill()
        proc.wait(timeout=60)


def test_an_exited_child_is_seen_before_it_is_reaped_and_a_reaped_one_too() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    assert _exited(proc.pid, 120.0) is True  # a zombie until reaped: exited all the same
    proc.wait(timeout=60)
    assert _exited(proc.pid, 120.0) is True  # no such process any more
