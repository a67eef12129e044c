"""Live progress of a headless run: what the running notebook is doing, shown in the runner's terminal.

Kernels are separate processes, so a notebook reports through a file the runner names in
`MESHBOOK_PROGRESS` (in the run's private temporary directory, never in the run directory): one JSON
line per event, `step` when the notebook starts a guide step and `wait` when it starts waiting on the
cluster or sees the awaited objects change. The runner follows the file on a thread and prints each step
at once, and every few seconds of a long wait what it waits for and what it last saw. Interactive
sessions have no such file and report nothing.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

ENV_PROGRESS = "MESHBOOK_PROGRESS"
QUIET_SECONDS = 5.0  # a wait shows itself after this long, and again after each such stretch


def report(event: str, **fields: Any) -> None:
    """Append one progress event for the runner; a no-op outside `meshbook run`."""
    path = os.environ.get(ENV_PROGRESS)
    if not path:
        return
    line = json.dumps({"event": event, "at": time.time(), **fields}, default=str)
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    except OSError:
        pass  # progress is a courtesy: never fail a notebook for it


class ProgressFollower:
    """Follows a progress file on a thread and prints what it says (`with` starts and stops it)."""

    def __init__(self, path: Path, show: Callable[[str], None], *, quiet: float = QUIET_SECONDS) -> None:
        self.path = path
        self.show = show
        self.quiet = quiet
        self._stop = threading.Event()
        self.caught_up = threading.Event()  # set whenever it has shown everything written so far
        self._thread = threading.Thread(target=self._follow, name="meshbook-progress", daemon=True)
        self._step = ""
        self._wait: dict[str, Any] | None = None
        self._wait_started = 0.0
        self._last_shown = 0.0

    def __enter__(self) -> ProgressFollower:
        self.path.touch()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _follow(self) -> None:
        with self.path.open(encoding="utf-8") as handle:
            while not self._stop.is_set():
                line = handle.readline()
                if line.endswith("\n"):
                    self._handle(line)
                    continue
                handle.seek(handle.tell() - len(line.encode()))  # a line being written: read it whole later
                self._heartbeat()
                if not line:
                    self.caught_up.set()
                self._stop.wait(0.2)

    def _handle(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        now = time.monotonic()
        if event.get("event") == "step":
            self._step, self._wait = str(event.get("step", "")), None
            self.show(f"      step: {self._step}")
        elif event.get("event") == "wait":
            if self._wait is None or self._wait.get("description") != event.get("description"):
                self._wait_started, self._last_shown = now, now
            self._wait = event
        elif event.get("event") == "wait_done":
            self._wait = None

    def _heartbeat(self) -> None:
        if self._wait is None:
            return
        now = time.monotonic()
        if now - self._last_shown < self.quiet:
            return
        self._last_shown = now
        seen = self._wait.get("last_seen") or "nothing yet"
        self.show(
            f"      {self._step}: waiting {now - self._wait_started:.0f}s for {self._wait.get('description')}; "
            f"last seen: {seen}"
        )
