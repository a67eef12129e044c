"""The run directory: `runs/<UTC time>-<id>/` with executed notebooks, evidence and reports.

A run directory is created with a `RUNNING` marker (pid, start time) that is replaced by the final
manifest only when the run ends; a directory still holding `RUNNING` after its process is gone is a
run that died, and says so. `runs/latest` points at the newest run.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RUNNING_MARKER = "RUNNING"
FAILED_MARKER = "INCOMPLETE"


@dataclass(frozen=True)
class RunDirectory:
    path: Path
    run_id: str
    started_at: str

    @property
    def notebooks(self) -> Path:
        return self.path / "notebooks"

    @property
    def evidence(self) -> Path:
        return self.path / "evidence.jsonl"

    def mark_incomplete(self, reason: str) -> None:
        """The run stopped before its end (bad cluster, kernel died, interrupted): say so on disk."""
        (self.path / FAILED_MARKER).write_text(
            json.dumps({"run_id": self.run_id, "reason": reason, "at": _now()}, indent=2) + "\n"
        )

    def finish(self) -> None:
        (self.path / RUNNING_MARKER).unlink(missing_ok=True)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def create_run_directory(parent: Path) -> RunDirectory:
    parent.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    run_id = f"{started:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    path = parent / run_id
    path.mkdir()
    (path / "notebooks").mkdir()
    marker: dict[str, Any] = {"run_id": run_id, "pid": os.getpid(), "started_at": started.isoformat()}
    (path / RUNNING_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    latest = parent / "latest"
    tmp = parent / f".latest-{run_id}"
    tmp.symlink_to(run_id)
    tmp.replace(latest)
    return RunDirectory(path, run_id, started.strftime("%Y-%m-%dT%H:%M:%SZ"))
