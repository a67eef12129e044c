"""An unusable `--out` is bad input (exit 2, nothing started); a disk that fills mid-run is exit 3 with the
path and the OS error, notebooks stay valid JSON, the run says INCOMPLETE and `latest` does not move."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runbook import meshbook, run_args, run_dirs


def _one_line(text: str) -> str:
    return " ".join(text.split())


def test_out_naming_a_file_exits_2_before_anything_starts(tmp_path: Path) -> None:
    target = tmp_path / "runs"
    target.write_text("not a folder\n")
    run = meshbook(tmp_path, *run_args(target))
    assert run.code == 2, run.describe()
    assert f"--out {target}: expected a folder for run directories, found a file" in _one_line(run.err)
    assert not (tmp_path / "xdg-state").exists()  # no sandbox was started


def test_out_with_a_missing_parent_exits_2(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "runs"
    run = meshbook(tmp_path, *run_args(target))
    assert run.code == 2, run.describe()
    assert f"its parent folder {target.parent} does not exist" in _one_line(run.err)
    assert not target.parent.exists()


@pytest.fixture
def mount_tmpfs(tmp_path: Path) -> Iterator[object]:
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root")
        where = tmp_path / name
        where.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_read_only_out_exits_2(tmp_path: Path, mount_tmpfs: object) -> None:
    readonly = mount_tmpfs("ro", "ro,size=64k")  # type: ignore[operator]
    run = meshbook(tmp_path, *run_args(readonly / "runs"))
    assert run.code == 2, run.describe()
    assert f"cannot write in {readonly}: Read-only file system" in _one_line(run.err)


@pytest.mark.slow
def test_a_disk_that_fills_mid_run_exits_3_and_keeps_what_was_written(tmp_path: Path, mount_tmpfs: object) -> None:
    small = mount_tmpfs("full", "size=120k")  # type: ignore[operator]
    out = small / "runs"
    run = meshbook(tmp_path, *run_args(out))
    assert run.code == 3, run.describe()
    message = _one_line(run.err)
    assert "No space left on device (errno 28)" in message, run.describe()
    assert message.count("meshbook: ") == 1  # one line, no traceback
    assert "Traceback" not in run.err
    (run_dir,) = run_dirs(out)
    assert (run_dir / "INCOMPLETE").exists()
    for notebook in (run_dir / "notebooks").glob("*.ipynb"):
        json.loads(notebook.read_text())  # never truncated: written to a temporary name, then renamed
    for line in (run_dir / "evidence.jsonl").read_text().splitlines():
        if line.endswith("}"):
            json.loads(line)
    assert not (out / "latest").exists()  # latest moves only to a finished run
