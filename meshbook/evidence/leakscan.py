"""Prove a run directory holds no secret: search every file for every known value in every encoding.

The last line of defence behind the redactor: executed notebooks (outputs, metadata, papermill's
parameters), evidence.jsonl, report.html/md, junit.xml, manifest.json and anything else under the run
directory are read as bytes, so binary files are searched too. The forms searched are exactly those
the redactor replaces (`Redactor.forms`, from `encoded_forms`): one list, so a leak the scanner finds is
one `scrub` can remove from any text file. File names are searched as well.

A `Leak` says where and how a value was found, by label (or "value#N" when the values came without
labels), never the value. `scrub` rewrites text files with the redactor; it changes file hashes, so scrub
before `manifest.json` is written, or write it again afterwards.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from meshbook.evidence.redaction import Form, Redactor

__all__ = ["Leak", "ScrubReport", "scan_for_leaks", "scrub"]

NAME_ENCODING_PREFIX = "file name: "


@dataclass(frozen=True, order=True)
class Leak:
    """A value found in a file: `count` occurrences in `encoding` (value never included).

    `path` is relative to the run directory. When the file's own name holds the value, `path` is shown
    redacted and `encoding` starts with "file name: ".
    """

    path: Path
    label_or_hint: str
    encoding: str
    count: int

    def __str__(self) -> str:
        times = "once" if self.count == 1 else f"{self.count} times"
        return f"{self.path}: {self.label_or_hint} ({self.encoding}) {times}"


@dataclass
class ScrubReport:
    """Files `scrub` rewrote, and those it could not clean, each with the reason."""

    rewritten: list[Path] = field(default_factory=list)
    not_scrubbed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.not_scrubbed


def _redactor_for(values: Iterable[str] | Mapping[str, str]) -> Redactor:
    redactor = Redactor()
    if isinstance(values, Mapping):
        for value, label in values.items():
            redactor.add(value, label=label)
    else:
        for number, value in enumerate(values, start=1):
            redactor.add(value, label=f"value#{number}")
    return redactor


def _files(run_dir: Path) -> list[Path]:
    """Every file under run_dir (symlinked files included, symlinked directories not followed), sorted."""
    found: list[Path] = []
    for root, dirs, files in os.walk(run_dir, followlinks=False):
        dirs.sort()
        found += [Path(root) / name for name in sorted(files)]
        found += [Path(root) / name for name in dirs if (Path(root) / name).is_symlink()]
    return sorted(p for p in found if p.is_file() or p.is_symlink())


def _bytes_pattern(forms: tuple[Form, ...]) -> tuple[re.Pattern[bytes], dict[bytes, Form]]:
    by_bytes = {f.text.encode("utf-8"): f for f in forms}
    ordered = sorted(by_bytes, key=lambda b: (-len(b), b))  # longest first, as the redactor replaces
    return re.compile(b"|".join(re.escape(b) for b in ordered)), by_bytes


def _count(pattern: re.Pattern[bytes], by_bytes: Mapping[bytes, Form], data: bytes) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for match in pattern.finditer(data):
        form = by_bytes[match.group(0)]
        key = (form.label, form.encoding)
        counts[key] = counts.get(key, 0) + 1
    return counts


def scan_for_leaks(run_dir: Path, values: Iterable[str] | Mapping[str, str]) -> list[Leak]:
    """Every occurrence of each value (any encoding) in any file under run_dir, sorted by path.

    `values` may be a mapping value -> label (e.g. `Redactor.known_values()`), or plain values, which are
    then named "value#1", "value#2", ... in the given order. Values shorter than 4 characters are
    ignored, as the redactor ignores them.
    """
    run_dir = Path(run_dir)
    redactor = _redactor_for(values)
    forms = redactor.forms()
    if not forms:
        return []
    pattern, by_bytes = _bytes_pattern(forms)
    leaks: list[Leak] = []
    for path in _files(run_dir):
        relative = path.relative_to(run_dir)
        shown = Path(redactor.redact(str(relative)))
        for (label, encoding), count in _count(pattern, by_bytes, str(relative).encode("utf-8")).items():
            leaks.append(Leak(shown, label, NAME_ENCODING_PREFIX + encoding, count))
        if path.is_symlink() and not path.exists():
            continue  # dangling link: no content
        try:
            data = path.read_bytes()
        except IsADirectoryError:
            continue
        for (label, encoding), count in _count(pattern, by_bytes, data).items():
            leaks.append(Leak(shown, label, encoding, count))
    return sorted(leaks)


def scrub(run_dir: Path, leaks: Iterable[Leak], redactor: Redactor) -> ScrubReport:
    """Rewrite each text file named in `leaks` with `redactor` applied; report what stays unclean.

    Binary files (not UTF-8) cannot be rewritten safely and are reported, as are files whose name holds
    the value and files the redactor leaves unchanged (it was not given that value). A file is replaced
    atomically (temporary file, fsync, rename), keeping its mode. Scan again afterwards to confirm: a
    redactor that knows some of a file's values but not all rewrites it and still leaves the others.
    """
    run_dir = Path(run_dir)
    report = ScrubReport()
    done: set[Path] = set()
    for leak in sorted(set(leaks)):
        if leak.path in done:
            continue
        done.add(leak.path)
        path = run_dir / leak.path
        if leak.encoding.startswith(NAME_ENCODING_PREFIX) or not path.exists():
            report.not_scrubbed.append((leak.path, "the file name holds the value: rename or delete the file"))
            continue
        if path.is_symlink():
            report.not_scrubbed.append((leak.path, "a symbolic link: scrub or remove its target"))
            continue
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            report.not_scrubbed.append((leak.path, "binary file (not UTF-8 text): cannot be rewritten; delete it"))
            continue
        cleaned = redactor.redact(text)
        if cleaned == text:
            report.not_scrubbed.append(
                (leak.path, f"still holds {leak.label_or_hint}: the redactor does not know that value")
            )
            continue
        _replace(path, cleaned.encode("utf-8"))
        report.rewritten.append(leak.path)
    return report


def _replace(path: Path, data: bytes) -> None:
    mode = path.stat().st_mode & 0o7777
    tmp = path.with_name(f".{path.name}.scrub-{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
