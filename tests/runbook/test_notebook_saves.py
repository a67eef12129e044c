"""papermill's saves after every cell are atomic renames without an fsync; the runner fsyncs the last one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from meshbook.runbook.rundir import AtomicNotebookHandler, sync_file, write_text_atomically


def _fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    synced: list[str] = []
    real = os.fsync

    def counting(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return synced


def test_intermediate_saves_are_whole_files_and_not_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced = _fsyncs(monkeypatch)
    target = tmp_path / "book.ipynb"
    handler = AtomicNotebookHandler()
    for n in range(5):
        handler.write(json.dumps({"cells": n}), str(target))
        assert json.loads(target.read_text()) == {"cells": n}
    assert synced == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book.ipynb"], "no temporary file left behind"
    sync_file(target)
    assert synced == [str(target)]


def test_a_durable_write_is_synced_before_its_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced = _fsyncs(monkeypatch)
    target = tmp_path / "summary.json"
    write_text_atomically(target, "{}\n")
    assert len(synced) == 1 and Path(synced[0]).name.startswith(".summary.json.")
    assert target.read_text() == "{}\n"


def test_syncing_a_missing_file_is_nothing(tmp_path: Path) -> None:
    sync_file(tmp_path / "never-written.ipynb")
