"""The run directory: `runs/<UTC time>-<id>/` with executed notebooks, evidence and reports.

A run directory is created with a `RUNNING` marker (pid, start time) that is replaced by the final
manifest only when the run ends; a directory still holding `RUNNING` after its process is gone is a
run that died, and says so. `runs/latest` points at the newest finished run: it moves only when a run
ends (whatever its outcome), never to one that was interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from meshbook.errors import ParameterError, StorageError

RUNNING_MARKER = "RUNNING"
_ATOMIC_PREFIXES: set[str] = set()
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

    def publish_as_latest(self) -> None:
        """Point `latest` here: only once the run's reports and manifest are written."""
        latest = self.path.parent / "latest"
        tmp = self.path.parent / f".latest-{self.run_id}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(self.run_id)
        tmp.replace(latest)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_output_folder(out: Path) -> None:
    """Refuse an unusable `--out` before anything starts: exit 2, one line naming it and what is wrong."""
    if out.exists() and not out.is_dir():
        raise ParameterError([f"--out {out}: expected a folder for run directories, found a file"])
    target = out if out.exists() else out.parent
    if not target.is_dir():
        raise ParameterError([f"--out {out}: its parent folder {target} does not exist; create it first"])
    try:
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as exc:
        raise ParameterError([f"--out {out}: cannot write in {target}: {exc.strerror or exc}"]) from None


def create_run_directory(parent: Path) -> RunDirectory:
    parent.mkdir(exist_ok=True)
    started = datetime.now(UTC)
    run_id = f"{started:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    path = parent / run_id
    path.mkdir()
    (path / "notebooks").mkdir()
    marker: dict[str, Any] = {"run_id": run_id, "pid": os.getpid(), "started_at": started.isoformat()}
    (path / RUNNING_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return RunDirectory(path, run_id, started.strftime("%Y-%m-%dT%H:%M:%SZ"))


def write_text_atomically(path: Path, text: str, *, durable: bool = True) -> None:
    """Write to a temporary name beside `path`, fsync, then rename: readers (and a run killed mid-write)
    see the old file or the new one, never half of one.

    `durable=False` leaves out the fsync: the rename alone keeps a killed run from leaving half a file,
    and a later `sync_file` makes the last version durable (papermill's saves after every cell)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def sync_file(path: Path) -> None:
    """fsync `path` (the last version of a file written with `durable=False`); a missing file is none."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicNotebookHandler:
    """papermill's I/O for executed notebooks: papermill saves the notebook after every cell, and a plain
    `open(path, "w")` leaves invalid JSON when the run dies or the disk fills during a save. Each save is
    renamed into place without an fsync (about 40 saves a notebook); the runner syncs the last one."""

    def read(self, path: str) -> str:
        return Path(path).read_text(encoding="utf-8")

    def listdir(self, path: str) -> list[str]:
        return [str(p) for p in Path(path).iterdir()]

    def write(self, buf: str, path: str) -> None:
        write_text_atomically(Path(path), buf, durable=False)

    def pretty_path(self, path: str) -> str:
        return path


def atomic_notebook_path(path: Path) -> str:
    """`path` as papermill's output path, written through `AtomicNotebookHandler` (registered for its folder)."""
    from papermill.iorw import papermill_io

    prefix = str(path.parent) + os.sep
    if prefix not in _ATOMIC_PREFIXES:
        papermill_io.register(prefix, AtomicNotebookHandler())
        _ATOMIC_PREFIXES.add(prefix)
    return str(path)


@contextlib.contextmanager
def incomplete_on_error(run_dir: RunDirectory, what: str = "") -> Iterator[None]:
    """A run (or its end) that stops on an error says so on disk, in INCOMPLETE: an unwritable run
    directory becomes StorageError (exit 3, naming the path); anything else, an interrupt included, is
    recorded as `what` and the error's first line, then raised on."""
    try:
        yield
    except OSError as exc:
        with contextlib.suppress(OSError):
            run_dir.mark_incomplete(f"cannot write the run directory: {exc.strerror or exc}")
        raise StorageError(exc.filename or run_dir.path, exc) from None
    except BaseException as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0]
        with contextlib.suppress(OSError):  # a full disk must not hide why the run stopped
            run_dir.mark_incomplete(f"{what + ': ' if what else ''}{type(exc).__name__}: {first_line}")
        raise
