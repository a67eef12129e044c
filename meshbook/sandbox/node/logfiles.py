"""Container log files as the kubelet keeps them: on disk, in the CRI format, rotated by size.

One file per container run, `<pods dir>/<namespace>_<pod>_<uid>/<container>/<restartCount>.log`, each
record `<RFC3339Nano> <stream> <P|F> <text>` (P: a partial line the runtime cut at 16 KiB, continued by
the next record). Once the file reaches `containerLogMaxSize` it is renamed `<file>.<YYYYMMDD-HHMMSS>`
and a new one started; only `containerLogMaxFiles` files stay (the kubelet also gzips the older
rotated files; here they stay plain, which changes nothing a client sees). `pods/log` reads the
current file only, as the kubelet does, so a rotated line is gone from `kubectl logs`; a following
reader continues across a rotation. Memory holds a write buffer and a few read positions, never a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from meshbook.sandbox.clock import current as current_clock
from meshbook.sandbox.config import ContainerLogPolicy
from meshbook.sandbox.node.logs import LogLine, format_timestamp

PARTIAL_LINE_BYTES = 16 * 1024  # containerd cuts longer lines into partial records of this size
_WRITE_BUFFER = 64 * 1024
_KEPT_POSITIONS = 64  # read positions remembered for following readers


def pod_log_dir(pods_dir: Path, pod: dict[str, object] | object) -> Path:
    """The kubelet's directory for one pod's logs (`/var/log/pods/<namespace>_<name>_<uid>`)."""
    meta = pod.get("metadata", {}) if isinstance(pod, dict) else {}
    assert isinstance(meta, dict)
    return pods_dir / f"{meta.get('namespace', '')}_{meta.get('name', '')}_{meta.get('uid', '')}"


def _create(path: Path) -> BinaryIO:
    """A new, empty log file only its owner can read (a container's output may hold its secrets)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb", buffering=_WRITE_BUFFER)


def _records(data: bytes) -> Iterator[tuple[int, LogLine]]:
    """Complete lines of CRI records in `data`, each with the offset just after it (partials joined)."""
    pending: list[str] = []
    first_time: datetime | None = None
    offset = 0
    *records, _unfinished = data.split(b"\n")  # the last piece is a record still being written, or empty
    for raw in records:
        offset += len(raw) + 1
        stamp, _, rest = raw.partition(b" ")
        _stream, _, rest = rest.partition(b" ")
        tag, _, text = rest.partition(b" ")
        when = first_time or datetime.fromisoformat(stamp[:26].decode()).replace(tzinfo=UTC)
        pending.append(text.decode("utf-8", errors="replace"))
        if tag == b"P":
            first_time = when
            continue
        yield offset, (when, "".join(pending))
        pending, first_time = [], None


class ContainerLog:
    """One run of a container's output, written to its log file; the `logs.LogSource` of `pods/log`.

    Line indexes count complete lines from the run's first one; `first` is the index of the current
    file's first line (lines before it were rotated away).
    """

    def __init__(self, path: Path, policy: ContainerLogPolicy | None = None) -> None:
        self.path = path
        self.policy = policy or ContainerLogPolicy()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = _create(path)
        self._size = 0
        self.count = 0
        self.first = 0
        self.generation = 0  # rotations so far
        self.rotated: deque[Path] = deque()
        self._previous_file: tuple[int, Path] | None = None  # (generation, path) of the last rotated file
        self._positions: OrderedDict[int, tuple[int, int]] = OrderedDict()  # line -> (generation, offset)
        self.terminated = False
        self._changed = asyncio.Event()

    # -- writing -----------------------------------------------------------------------------------

    def write(self, text: str, stream: str = "stdout", partial: bool = False) -> None:
        """Append a line (or, with `partial`, part of one); longer lines are cut like containerd cuts them."""
        if self._file is None:
            return  # the run's log was removed
        for i, line in enumerate(pieces := text.split("\n")):
            last = i == len(pieces) - 1
            data = line.encode("utf-8", errors="replace")
            for start in range(0, max(len(data), 1), PARTIAL_LINE_BYTES):
                chunk = data[start : start + PARTIAL_LINE_BYTES]
                cut = start + PARTIAL_LINE_BYTES < len(data) or (last and partial)
                self._append(stream, chunk, cut)
        self._changed.set()

    def _append(self, stream: str, chunk: bytes, partial: bool) -> None:
        assert self._file is not None
        stamp = format_timestamp(current_clock().now()).encode()  # the clock objects are stamped with
        record = b"%s %s %s %s\n" % (stamp, stream.encode(), b"P" if partial else b"F", chunk)
        self._file.write(record)
        self._size += len(record)
        if not partial:
            self.count += 1
        if self._size >= self.policy.max_size:
            self._rotate()

    def _rotate(self) -> None:
        """Rename the current file and start a new one, keeping `max_files` files in all."""
        assert self._file is not None
        self._file.close()
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.{stamp}")
        serial = 0
        while target.exists():  # several rotations in one second (the kubelet checks every 10 s)
            serial += 1
            target = self.path.with_name(f"{self.path.name}.{stamp}-{serial}")
        self.path.replace(target)
        self.rotated.append(target)
        while len(self.rotated) > self.policy.max_files - 1:
            self.rotated.popleft().unlink(missing_ok=True)
        self._previous_file = (self.generation, target)
        self._file = _create(self.path)
        self.generation += 1
        self._size = 0
        self.first = self.count

    def close(self) -> None:
        """The run ended: close its file (it stays readable), and wake followers so they see the end."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.terminated = True
        self._changed.set()

    def remove(self) -> None:
        """Delete this run's files (the kubelet keeps the current and the previous run only)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.terminated = True
        self._changed.set()
        for path in [self.path, *self.rotated]:
            path.unlink(missing_ok=True)

    # -- reading (logs.LogSource) ------------------------------------------------------------------

    def _read(self, generation: int, offset: int) -> tuple[list[LogLine], int]:
        """Lines of generation `generation`'s file from `offset`, and the offset after the last one."""
        if self._file is not None:
            self._file.flush()
        path = self.path if generation == self.generation else self._rotated_path(generation)
        if path is None:
            return [], offset
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            return [], offset
        lines: list[LogLine] = []
        end = offset
        for after, line in _records(data):
            lines.append(line)
            end = offset + after
        return lines, end

    def _rotated_path(self, generation: int) -> Path | None:
        if self._previous_file is not None and self._previous_file[0] == generation:
            return self._previous_file[1]
        return None

    def _remember(self, index: int, generation: int, offset: int) -> None:
        self._positions[index] = (generation, offset)
        self._positions.move_to_end(index)
        while len(self._positions) > _KEPT_POSITIONS:
            self._positions.popitem(last=False)

    def snapshot(self) -> tuple[int, Sequence[LogLine]]:
        """The current file's lines, with the index of its first line."""
        lines, end = self._read(self.generation, 0)
        self._remember(self.first + len(lines), self.generation, end)
        return self.first, lines

    def _lines_after(self, index: int) -> list[LogLine]:
        known = self._positions.get(index)
        lines: list[LogLine] = []
        if known is not None and known[0] == self.generation - 1:  # finish the file rotated since
            lines, _ = self._read(*known)
            known = (self.generation, 0)
        if known is None or known[0] != self.generation:  # position unknown or rotated away: current file
            current, end = self._read(self.generation, 0)
            lines = current[max(index - self.first, 0) :]
        else:
            more, end = self._read(*known)
            lines += more
        self._remember(index + len(lines), self.generation, end)
        return lines

    async def wait_new(self, after_index: int) -> Sequence[LogLine] | None:
        while True:
            if self.count > after_index:
                lines = self._lines_after(after_index)
                if lines:
                    return lines
            if self.terminated:
                return None
            self._changed.clear()
            await self._changed.wait()


def remove_pod_logs(directory: Path) -> None:
    """Delete a removed pod's log directory, as the kubelet does."""
    with contextlib.suppress(OSError):
        shutil.rmtree(directory)
