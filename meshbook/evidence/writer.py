"""The append-only `evidence.jsonl`: one writer per notebook process, many processes on one file.

Several notebooks of one run, each in its own kernel process, append to the same file, possibly while a
report reads it. So each record is written with one `write` on a file opened for appending, under an
exclusive `flock`, and fsynced before `record` returns: a crash loses at most the record being written.
The next `seq` is read from the file's last line under that lock, so numbering continues across
processes and writers; a partial last line a crashed writer left behind is cut off before appending.

Every string of a record (keys included) passes through the redactor before it is written; the redacted
record is then validated and serialised by its kind's model (`meshbook.evidence.records`), and the line
is checked once more as written: if a registered value still shows (say as a number), the record is
refused. A `secret_delivery` record carries a keyed fingerprint, never the value: a `value` key anywhere
in its payload is refused.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from meshbook.evidence.payloads import RUN_ID_PATTERN, VALUE_KEY_TEXT, Kind, RecordOutcome, value_key_paths
from meshbook.evidence.records import RECORDS, SCHEMA, EvidenceRecord, record_problems
from meshbook.evidence.redaction import Redactor

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: writers of one file must then not overlap
    fcntl = None  # type: ignore[assignment]

__all__ = ["EvidenceWriter", "format_at"]

log = logging.getLogger(__name__)


def format_at(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds: `2025-01-31T12:00:00.123Z`."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("evidence times must be timezone-aware (UTC)")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _json_normal(value: Any, where: str) -> Any:
    """`value` as plain JSON (str keys, lists); ValueError for what JSON cannot hold (NaN, objects)."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: not JSON-serialisable ({exc})") from None
    return json.loads(text)


class EvidenceWriter:
    """Appends records to one evidence.jsonl; safe with other writers (processes) on the same file.

    `clock` (default: now, UTC) exists for tests and replays.
    """

    def __init__(
        self,
        path: Path,
        run_id: str,
        *,
        redactor: Redactor,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not isinstance(run_id, str) or not re.search(RUN_ID_PATTERN, run_id):
            raise ValueError(f"run id {run_id!r}: expected letters, digits and ._:+- (at most 128)")
        self.path = Path(path)
        self.run_id = run_id
        self.redactor = redactor
        self._clock = clock or (lambda: datetime.now(UTC))
        self.last_seq = _peek_last_seq(self.path)

    def record(
        self,
        kind: Kind | str,
        subject: str,
        *,
        notebook: str,
        step: str,
        expected: Any = None,
        observed: Any = None,
        outcome: RecordOutcome | str,
        reason: str = "",
    ) -> EvidenceRecord:
        """Append one record (redacted, flushed, fsynced) and return it as written.

        Raises ValueError (and writes nothing) when the record is invalid, when a `secret_delivery`
        payload has a `value` key, or when redaction would leave a registered value in the line or
        change a field whose vocabulary is fixed (kind, outcome, ...).
        """
        kind_text = str(kind.value if isinstance(kind, Kind) else kind)
        outcome_text = str(outcome.value if isinstance(outcome, RecordOutcome) else outcome)
        expected = _json_normal(expected, "expected")
        observed = _json_normal(observed, "observed")
        draft: dict[str, Any] = {
            "schema": SCHEMA, "run_id": self.run_id, "seq": 1, "at": format_at(self._clock()), "notebook": notebook,
            "step": step, "kind": kind_text, "subject": subject, "expected": expected, "observed": observed,
            "outcome": outcome_text, "reason": reason,
        }  # fmt: skip
        if kind_text == Kind.SECRET_DELIVERY:  # before redaction: a `value` key is refused even if redacted
            paths = value_key_paths(expected, "expected") + value_key_paths(observed, "observed")
            if paths:
                raise self._refusal(kind_text, subject, [f"{where}: {VALUE_KEY_TEXT}" for where in paths])
        redacted = self.redactor.redact_obj(draft)
        for name in ("schema", "run_id", "at", "kind", "outcome"):
            if redacted.get(name) != draft[name]:
                raise self._refusal(
                    kind_text, subject, [f"field {name} contains a registered secret value; not written"]
                )
        try:  # validated after redaction: a problem quotes the value it found, and that must be redacted
            record = RECORDS.validate_python(redacted)
        except ValidationError as exc:
            raise self._refusal(kind_text, subject, record_problems(redacted, exc)) from None
        obj = record.to_dict()  # serialised by its model
        self._refuse_leak(obj)  # checked again on the exact line, once seq is known
        return self._append(record, obj)

    def _refusal(self, kind: str, subject: str, problems: list[str]) -> ValueError:
        """The error listing `problems`, redacted: an error message is text that leaves too."""
        return ValueError(self.redactor.redact(f"evidence record {kind} {subject!r}: " + "; ".join(problems)))

    def _refuse_leak(self, obj: dict[str, Any]) -> str:
        """The JSON line for `obj`; ValueError if a registered value shows in it (e.g. as a number)."""
        line = json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n"
        leak = self.redactor.find(line)
        if leak is not None:
            raise ValueError(
                f"evidence record {obj['kind']} {obj['subject']!r} would show the registered value "
                f"{leak.label!r} ({leak.encoding}) outside a string (e.g. as a number); not written"
            )
        return line

    def _append(self, record: EvidenceRecord, obj: dict[str, Any]) -> EvidenceRecord:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT
        created = False
        try:
            fd = os.open(self.path, flags | os.O_EXCL, 0o644)
            created = True
        except FileExistsError:
            fd = os.open(self.path, flags, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            obj["seq"] = _repair_and_last_seq(fd, self.path) + 1
            data = self._refuse_leak(obj).encode("utf-8")
            while data:
                written = os.write(fd, data)
                data = data[written:]
            os.fsync(fd)
        finally:
            os.close(fd)  # releases the lock
        if created:
            _fsync_dir(self.path.parent)
        self.last_seq = obj["seq"]
        return record.model_copy(update={"seq": obj["seq"]})


def _fsync_dir(directory: Path) -> None:
    """Make a new file's directory entry durable (not possible on every platform/file system)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _tail(fd: int, size: int) -> tuple[bytes, bytes]:
    """(the last complete line without its newline, the bytes after the last newline)."""
    chunk = 64 * 1024
    while True:
        start = max(0, size - chunk)
        data = os.pread(fd, size - start, start)
        cut = data.rfind(b"\n")
        if cut == -1 and start > 0:
            chunk *= 4
            continue
        partial = data[cut + 1 :]
        complete = data[:cut] if cut != -1 else b""
        begin = complete.rfind(b"\n")
        if begin == -1 and start > 0 and cut != -1:
            chunk *= 4
            continue
        return complete[begin + 1 :], partial


def _seq_of(line: bytes) -> int | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    seq = obj.get("seq") if isinstance(obj, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def _max_seq(fd: int) -> int:
    """Slow path (last line unreadable): the highest seq of any readable line."""
    data = os.pread(fd, os.fstat(fd).st_size, 0)
    return max((seq for line in data.split(b"\n") if (seq := _seq_of(line)) is not None), default=0)


def _last_seq(fd: int, last: bytes) -> int:
    seq = _seq_of(last) if last else None
    return seq if seq is not None else _max_seq(fd)


def _repair_and_last_seq(fd: int, path: Path) -> int:
    """The seq of the file's last record, after cutting off a partial last line (caller holds the lock)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0
    last, partial = _tail(fd, size)
    if partial:
        if _seq_of(partial) is not None:  # complete record, only its newline missing
            os.write(fd, b"\n")
            last = partial
        else:
            os.ftruncate(fd, size - len(partial))
            os.fsync(fd)
            log.warning(
                "%s: removed a partial last line (%d bytes) left by a writer that stopped mid-record",
                path,
                len(partial),
            )
    return _last_seq(fd, last)


def _peek_last_seq(path: Path) -> int:
    """The last seq in the file as it is now (0 if none); read-only, no lock, nothing repaired."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return 0
        last, partial = _tail(fd, size)
        return _seq_of(partial) or _last_seq(fd, last)
    finally:
        os.close(fd)
