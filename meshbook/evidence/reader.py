"""Reading evidence.jsonl back: JSON objects as written, or typed records validated line by line.

A partial last line is what a writer that stopped mid-record leaves (the next writer cuts it off): it is
skipped and reported. An unreadable line elsewhere is damage, not a crash artefact.
"""

from __future__ import annotations

import contextlib
import gc
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json

from meshbook.evidence.records import RECORDS, AnyRecord, record_problems

__all__ = [
    "CheckedEvidence",
    "EvidenceFile",
    "TruncatedEvidenceWarning",
    "load_evidence",
    "read_checked_evidence",
    "read_evidence",
]


class TruncatedEvidenceWarning(UserWarning):
    """evidence.jsonl ends in a partial record (a writer stopped mid-write); it was skipped."""


@dataclass(frozen=True)
class EvidenceFile:
    """What `load_evidence` found: the records and, if any, the partial last line it skipped."""

    records: list[dict[str, Any]]
    truncated_line: int | None = None
    truncated_bytes: int = 0


def load_evidence(path: Path, *, quiet: bool = False) -> EvidenceFile:
    """Every record of an evidence.jsonl; a partial last line is skipped and reported (warning).

    An unreadable line elsewhere is not a crash artefact but damage, and raises ValueError naming it.
    """
    lines = _lines(path)
    records: list[dict[str, Any]] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            _partial_or_damage(path, lines, number, exc, quiet)
            return EvidenceFile(records, number, len(raw))
        records.append(obj)
    return EvidenceFile(records)


def _lines(path: Path) -> list[bytes]:
    lines = Path(path).read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _partial_or_damage(path: Path, lines: list[bytes], number: int, exc: Exception, quiet: bool) -> None:
    """Line `number` is no JSON object: warn when it is the last (a partial record), else raise ValueError."""
    if number != len(lines):
        raise ValueError(f"{path}: line {number} is not a JSON object ({exc})") from None
    if not quiet:
        warnings.warn(
            f"{path}: line {number} is a partial record ({len(lines[-1])} bytes), skipped: a writer stopped mid-record",
            TruncatedEvidenceWarning,
            stacklevel=4,
        )


def read_evidence(path: Path) -> list[dict[str, Any]]:
    """The records of an evidence.jsonl as dicts, in file order (see `load_evidence`)."""
    return load_evidence(path).records


@dataclass(frozen=True)
class CheckedEvidence:
    """What `read_checked_evidence` found: each valid record typed and as written, and what was skipped."""

    records: list[AnyRecord]
    objects: list[dict[str, Any]]
    """The same records as the JSON objects written, in the same order."""
    skipped: list[str] = field(default_factory=list)
    """Records that are JSON but not valid evidence: `record seq N skipped: problem; problem; problem`."""
    truncated_line: int | None = None
    truncated_bytes: int = 0


@contextlib.contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Pause the cyclic garbage collector while many long-lived acyclic objects are made (reading
    records, building reports from them): it would find nothing and walk them all again each time.

    Without this, a run's 1,000 records (a dict and a typed model each, with their lists) trigger
    collections that walk every record read so far, over and over: most of the reading time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_checked_evidence(path: Path, *, quiet: bool = False) -> CheckedEvidence:
    """The valid records of an evidence.jsonl, each line parsed and validated by its kind's model at once.

    An invalid record is skipped and listed (a report shows the rest); a partial last line is skipped
    and reported as in `load_evidence`; an unreadable line elsewhere raises ValueError naming it.
    """
    with no_cycle_collection():
        return _read_checked(path, quiet)


def _read_checked(path: Path, quiet: bool) -> CheckedEvidence:
    lines = _lines(path)
    records: list[AnyRecord] = []
    objects: list[dict[str, Any]] = []
    skipped: list[str] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:  # parsed once (pydantic-core's parser), then validated from the parsed object
            obj = from_json(raw)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            _partial_or_damage(path, lines, number, exc, quiet)
            return CheckedEvidence(records, objects, skipped, number, len(raw))
        try:
            records.append(RECORDS.validate_python(obj))
        except ValidationError as invalid:
            problems = record_problems(obj, invalid)
            skipped.append(f"record seq {obj.get('seq', '?')} skipped: {'; '.join(problems[:3])}")
            continue
        objects.append(obj)
    return CheckedEvidence(records, objects, skipped)
