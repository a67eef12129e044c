"""The sandbox's control files: an ephemeral sandbox's state is removed once its server and owner are gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from meshbook.sandbox import control


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _ephemeral_state(root: Path, name: str, owner: int) -> Path:
    state = root / name
    state.mkdir(parents=True)
    (state / control.EPHEMERAL_MARKER).write_text(json.dumps({"owner_pid": owner}))
    (state / "vault-unseal-keys").write_text("stands in for the keys a SIGKILLed server left behind\n")
    return state


def test_orphaned_ephemeral_state_is_removed_and_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    root = control.runs_state_root()
    orphan = _ephemeral_state(root, "orphan", _dead_pid())
    owned = _ephemeral_state(root, "owned", os.getpid())  # its owner (this process) lives
    kept = root / "kept"  # a kept sandbox has no marker: never removed
    kept.mkdir()
    assert control.remove_orphaned_state() == [orphan]
    assert not orphan.exists()
    assert owned.exists() and kept.exists()
