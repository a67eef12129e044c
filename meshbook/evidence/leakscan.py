"""Prove a run directory holds no secret: search every file for every known value in every encoding.

The last line of defence behind the redactor: executed notebooks (outputs, metadata, papermill's
parameters), evidence.jsonl, report.html/md, junit.xml, manifest.json and anything else under the run
directory are read as bytes, so binary files are searched too. The forms searched are exactly those
the redactor replaces (`Redactor.forms`, from `encoded_forms`): one list, so a leak the scanner finds is
one `scrub` can remove from any text file. File names are searched as well, and so is the content of
gzip members (a `.gz` file or any file starting with gzip's magic), which `scrub` rewrites recompressed.

Speed: Python's regex tries every alternative at every position, so a pattern of a thousand forms crawls
over large notebooks. Each file is first probed with `bytes.__contains__` (a fast substring search) for
the shortest forms only, those no other form contains less; only a file holding one of them is searched
with the full pattern, which counts occurrences and picks the longest form at each place.

A `Leak` says where and how a value was found, by label (or "value#N" when the values came without
labels), never the value. `scrub` rewrites text files with the redactor; it changes file hashes, so scrub
before `manifest.json` is written, or write it again afterwards.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from meshbook.evidence.detectors import find_credentials
from meshbook.evidence.encodings import ENCODINGS
from meshbook.evidence.redaction import Form, Redactor

__all__ = [
    "GZIP_ENCODING_PREFIX",
    "Leak",
    "ScanCoverage",
    "ScanResult",
    "ScrubReport",
    "scan_directory",
    "scan_for_leaks",
    "scrub",
]

NAME_ENCODING_PREFIX = "file name: "
GZIP_ENCODING_PREFIX = "gzip: "
GZIP_MAGIC = b"\x1f\x8b"
MAX_INFLATED = 1 << 30
"""At most this many bytes are inflated from one compressed file: a gzip bomb must not exhaust memory."""


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


@dataclass(frozen=True)
class ScanResult:
    """What a scan found and how much it read: files, bytes and compressed files searched inside."""

    leaks: list[Leak]
    files: int
    bytes: int
    compressed: int


@dataclass(frozen=True)
class ScanCoverage:
    """What a leak scan covered, for an auditor: classes of secrets with how many values each, the
    encodings sought, how much was read and which sources of secrets could not be read. Never a value."""

    classes: Mapping[str, int]
    files: int
    bytes: int
    gzip_files: int
    not_read: tuple[str, ...] = ()
    encodings: tuple[str, ...] = ENCODINGS

    def as_dict(self) -> dict[str, object]:
        return {
            "classes": dict(self.classes),
            "values": sum(self.classes.values()),
            "encodings": list(self.encodings),
            "inside_gzip": "the same encodings inside gzip members (.gz files, files starting with gzip's magic)",
            "files": self.files,
            "bytes": self.bytes,
            "gzip_files": self.gzip_files,
            "not_read": list(self.not_read),
        }


class _Matcher:
    """Counts each form in a buffer; a quick substring probe first spares clean buffers the regex, which
    is compiled only for the first buffer that holds a form (a few hundred long forms take re 0.1-0.3 s:
    a clean run directory never needs it)."""

    def __init__(self, forms: tuple[Form, ...]) -> None:
        self.by_bytes = {f.text.encode("utf-8"): f for f in forms}
        self._pattern: re.Pattern[bytes] | None = None
        # Any form present means one of these is: each form contains at least one probe (maybe itself).
        probes: list[bytes] = []
        for text in sorted(self.by_bytes, key=lambda b: (len(b), b)):
            if not any(probe in text for probe in probes):
                probes.append(text)
        self.probes = tuple(probes)

    def count(self, data: bytes) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        if not any(probe in data for probe in self.probes):
            return counts
        if self._pattern is None:
            ordered = sorted(self.by_bytes, key=lambda b: (-len(b), b))  # longest first, as the redactor replaces
            self._pattern = re.compile(b"|".join(re.escape(b) for b in ordered))
        for match in self._pattern.finditer(data):
            form = self.by_bytes[match.group(0)]
            key = (form.label, form.encoding)
            counts[key] = counts.get(key, 0) + 1
        return counts


def _is_gzip(path: Path, data: bytes) -> bool:
    return data.startswith(GZIP_MAGIC) or (path.suffix == ".gz" and bool(data))


def _gunzip(data: bytes) -> bytes | None:
    """Every gzip member's content, concatenated (at most `MAX_INFLATED` bytes); None if not gzip at all."""
    out = bytearray()
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        try:
            out += inflater.decompress(rest, MAX_INFLATED - len(out))
        except zlib.error:
            break  # trailing garbage, or not gzip: keep what came before
        if inflater.unconsumed_tail or not inflater.eof:
            return bytes(out)  # size cap reached, or a truncated member
        rest = inflater.unused_data.lstrip(b"\0")
        if len(out) >= MAX_INFLATED:
            break
    return bytes(out) if out or rest != data else None


PATTERN_LABEL = "found by pattern: "
PATTERN_CLASS = "found by pattern (credential formats in any artifact)"  # its row in the scan's coverage
REDACTED_MARK = "‹redacted:"  # how every redaction marker begins
REDACTION_MARK = (
    "‹redacted"  # how the redactor's markers begin  # the label prefix of a value nobody knew, found by its shape
)


def values_found_by_pattern(run_dir: Path, known: Redactor) -> dict[str, str]:
    """Credentials in any artifact found by their shape, not because meshbook knew them (a token a user
    typed into a notebook): value -> label naming its class. A finding that overlaps a known value in
    any of its encodings (`known`'s forms) keeps that value's class and is left out here. The known-value
    scan then finds these in every encoding and scrubs them; the values never leave this process."""
    forms = [form.text for form in known.forms()]
    found: dict[str, str] = {}
    for path in _files(Path(run_dir)):
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        for chunk in (data, _gunzip(data) if _is_gzip(path, data) else None):
            if not chunk:
                continue
            text = chunk.decode("utf-8", errors="replace")
            for finding in find_credentials(text):
                value = text[finding.start : finding.end]
                if value in found or REDACTED_MARK in value:  # a marker: the redactor already replaced it
                    continue
                if not any(value in form or form in value for form in forms):
                    found[value] = PATTERN_LABEL + finding.kind
    return found


def scan_for_leaks(run_dir: Path, values: Iterable[str] | Mapping[str, str]) -> list[Leak]:
    """Every occurrence of each value (any encoding) in any file under run_dir, sorted by path.

    `values` may be a mapping value -> label (e.g. `Redactor.known_values()`), or plain values, which are
    then named "value#1", "value#2", ... in the given order. Values shorter than 4 characters are
    ignored, as the redactor ignores them.
    """
    return scan_directory(run_dir, values).leaks


def scan_directory(run_dir: Path, values: Iterable[str] | Mapping[str, str]) -> ScanResult:
    """`scan_for_leaks` with the scope it covered (files, bytes, compressed files), for the manifest.

    A leak inside a gzip member is reported with its encoding prefixed "gzip: ".
    """
    run_dir = Path(run_dir)
    redactor = _redactor_for(values)
    forms = redactor.forms()
    matcher = _Matcher(forms) if forms else None
    leaks: list[Leak] = []
    files = size = compressed = 0
    for path in _files(run_dir):
        if path.is_symlink() and not path.exists():
            data = b""  # dangling link: no content, but its name is still searched
        else:
            try:
                data = path.read_bytes()
            except IsADirectoryError:
                continue
        files += 1
        size += len(data)
        inflated = _gunzip(data) if _is_gzip(path, data) else None
        compressed += inflated is not None
        if matcher is None:
            continue
        relative = path.relative_to(run_dir)
        found = [
            (NAME_ENCODING_PREFIX + encoding, label, count)
            for (label, encoding), count in matcher.count(str(relative).encode("utf-8")).items()
        ]
        found += [(encoding, label, count) for (label, encoding), count in matcher.count(data).items()]
        if inflated is not None:
            found += [(GZIP_ENCODING_PREFIX + e, label, n) for (label, e), n in matcher.count(inflated).items()]
        if found:  # the path as shown, redacted: the redactor's pattern is compiled only for a leak
            shown = Path(redactor.redact(str(relative)))
            leaks += [Leak(shown, label, encoding, count) for encoding, label, count in found]
    return ScanResult(sorted(leaks), files, size, compressed)


def scrub(run_dir: Path, leaks: Iterable[Leak], redactor: Redactor) -> ScrubReport:
    """Rewrite each text file named in `leaks` with `redactor` applied; report what stays unclean.

    Binary files (not UTF-8) cannot be rewritten safely and are reported, as are files whose name holds
    the value and files the redactor leaves unchanged (it was not given that value). A gzip file whose
    members are UTF-8 text is rewritten as one gzip member of the redacted text (no stored file name).
    A file is replaced atomically (temporary file, fsync, rename), keeping its mode. Scan again afterwards to confirm: a
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
        inflated = _gunzip(data) if _is_gzip(path, data) else None
        try:
            text = (data if inflated is None else inflated).decode("utf-8")
        except UnicodeDecodeError:
            what = "compressed binary content" if inflated is not None else "binary file (not UTF-8 text)"
            report.not_scrubbed.append((leak.path, f"{what}: cannot be rewritten; delete it"))
            continue
        cleaned = redactor.redact(text)
        if cleaned == text:
            report.not_scrubbed.append(
                (leak.path, f"still holds {leak.label_or_hint}: the redactor does not know that value")
            )
            continue
        out = cleaned.encode("utf-8")
        _replace(path, out if inflated is None else gzip.compress(out, mtime=0))
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
