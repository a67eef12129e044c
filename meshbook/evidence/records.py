"""Evidence records (`meshbook.evidence/v1`) and the append-only `evidence.jsonl` they go to.

Several notebooks of one run, each in its own kernel process, append to the same file, possibly while a
report reads it. So each record is written with one `write` on a file opened for appending, under an
exclusive `flock`, and fsynced before `record` returns: a crash loses at most the record being written.
The next `seq` is read from the file's last line under that lock, so numbering continues across
processes and writers; a partial last line a crashed writer left behind is cut off before appending.

Every string of a record (keys included) passes through the redactor before it is written, and the
line is checked once more as written: if a registered value still shows (say as a number), the record
is refused. A `secret_delivery` record carries a keyed fingerprint, never the value: a `value` key
anywhere in its payload is refused.

`evidence_schema()` is the JSON Schema of a record; `docs/evidence-schema.json` is its published copy
(tests keep them equal). `check_record` applies the same rules in Python, so writing needs no
JSON Schema library.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from meshbook.evidence.redaction import Redactor

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: writers of one file must then not overlap
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "SCHEMA",
    "EvidenceFile",
    "EvidenceRecord",
    "EvidenceWriter",
    "Kind",
    "Outcome",
    "TruncatedEvidenceWarning",
    "check_record",
    "evidence_schema",
    "load_evidence",
    "read_evidence",
    "write_evidence_schema",
]

SCHEMA = "meshbook.evidence/v1"

log = logging.getLogger(__name__)


class Kind(StrEnum):
    POD_STATE = "pod_state"
    SECRET_DELIVERY = "secret_delivery"
    MESH_POLICY = "mesh_policy"
    NAMESPACE = "namespace"
    INSTALL = "install"
    VAULT_STATUS = "vault_status"
    ACTION = "action"


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INFO = "info"
    SKIP = "skip"


POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown", "")
"""Kubernetes pod phases; "" while the kubelet has not reported one yet."""

# Patterns are written for both Python `re` and ECMA-262 (JSON Schema): [0-9] rather than \d.
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$"
AT_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$"
SUBJECT_PATTERN = r"^[^\s/]+(/[^\s/]+)*$"
READY_PATTERN = r"^[0-9]+/[0-9]+$"
FINGERPRINT_PATTERN = r"^hmac-sha256:[0-9a-f]{64}$"

_FIELDS = (
    "schema", "run_id", "seq", "at", "notebook", "step", "kind", "subject", "expected", "observed", "outcome", "reason",
)  # fmt: skip


# -- the schema --------------------------------------------------------------------------------------------


def _nonempty() -> dict[str, Any]:
    return {"type": "string", "minLength": 1}


def _string_list() -> dict[str, Any]:
    return {"type": "array", "items": _nonempty()}


_POD_STATE_PROPS: dict[str, Any] = {
    "ready": {"type": "string", "pattern": READY_PATTERN, "description": 'kubectl READY, e.g. "3/3"'},
    "containers": {**_string_list(), "description": "container names"},
    "init_containers": {**_string_list(), "description": "init container names"},
    "sidecar": {"type": "boolean", "description": "an istio-proxy sidecar is present"},
    "phase": {"enum": list(POD_PHASES)},
    "restarts": {"type": "integer", "minimum": 0, "description": "restarts of all containers"},
}
_SECRET_DELIVERY_PROPS: dict[str, Any] = {
    "container": _nonempty(),
    "path": {**_nonempty(), "description": "Vault path the value comes from"},
    "key": {**_nonempty(), "description": "key at that path"},
    "delivered": {"type": "boolean"},
    "matches_vault": {"type": ["boolean", "null"], "description": "null when it could not be compared"},
    "fingerprint": {
        "anyOf": [{"type": "string", "pattern": FINGERPRINT_PATTERN}, {"type": "null"}],
        "description": "HMAC-SHA256 of the delivered value under a key kept outside the bundle",
    },
}


def evidence_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one evidence record, per-kind payload shapes included."""
    nullable = {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/pod_state"}]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:meshbook:evidence:v1",
        "title": "meshbook evidence record",
        "description": (
            "One line of evidence.jsonl. Strings are redacted: known secret values appear only as "
            "‹redacted:label›. A secret_delivery carries a keyed fingerprint, never the value."
        ),
        "type": "object",
        "required": list(_FIELDS),
        "additionalProperties": False,
        "properties": {
            "schema": {"const": SCHEMA},
            "run_id": {"type": "string", "pattern": RUN_ID_PATTERN},
            "seq": {"type": "integer", "minimum": 1, "description": "1, 2, ... in file order"},
            "at": {"type": "string", "format": "date-time", "pattern": AT_PATTERN, "description": "RFC 3339, UTC"},
            "notebook": _nonempty(),
            "step": _nonempty(),
            "kind": {"enum": [k.value for k in Kind]},
            "subject": {
                "type": "string",
                "pattern": SUBJECT_PATTERN,
                "description": "namespace/name; a cluster-scoped name; namespace/name/container",
            },
            "expected": {"description": "what the scenario expects; shape per kind"},
            "observed": {"description": "what was found; shape per kind"},
            "outcome": {"enum": [o.value for o in Outcome]},
            "reason": {"type": "string"},
        },
        "allOf": [
            {
                "if": {"properties": {"kind": {"const": Kind.POD_STATE.value}}},
                "then": {
                    "properties": {
                        "observed": nullable,
                        "expected": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/pod_state_partial"}]},
                    }
                },
            },
            {
                "if": {"properties": {"kind": {"const": Kind.SECRET_DELIVERY.value}}},
                "then": {
                    "properties": {
                        "observed": {
                            "allOf": [
                                {"$ref": "#/$defs/no_value_key"},
                                {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/secret_delivery"}]},
                            ]
                        },
                        "expected": {
                            "allOf": [
                                {"$ref": "#/$defs/no_value_key"},
                                {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/secret_delivery_partial"}]},
                            ]
                        },
                    }
                },
            },
        ],
        "$defs": {
            "pod_state": {
                "type": "object",
                "required": list(_POD_STATE_PROPS),
                "properties": _POD_STATE_PROPS,
            },
            "pod_state_partial": {"type": "object", "properties": _POD_STATE_PROPS},
            "secret_delivery": {
                "type": "object",
                "required": list(_SECRET_DELIVERY_PROPS),
                "properties": _SECRET_DELIVERY_PROPS,
                "allOf": [
                    {
                        "description": "a delivered value has a fingerprint",
                        "if": {"properties": {"delivered": {"const": True}}},
                        "then": {"properties": {"fingerprint": {"type": "string"}}},
                    },
                    {
                        "description": "only a delivered value can match Vault",
                        "if": {"properties": {"matches_vault": {"const": True}}},
                        "then": {"properties": {"delivered": {"const": True}}},
                    },
                ],
            },
            "secret_delivery_partial": {"type": "object", "properties": _SECRET_DELIVERY_PROPS},
            "no_value_key": {
                "description": "no object at any depth has a key named value",
                "anyOf": [
                    {"type": ["string", "number", "boolean", "null"]},
                    {"type": "array", "items": {"$ref": "#/$defs/no_value_key"}},
                    {
                        "type": "object",
                        "not": {"required": ["value"]},
                        "additionalProperties": {"$ref": "#/$defs/no_value_key"},
                    },
                ],
            },
        },
    }


def write_evidence_schema(path: Path) -> None:
    """Write `evidence_schema()` as the published `docs/evidence-schema.json`."""
    path.write_text(json.dumps(evidence_schema(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# -- the same rules in Python --------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_type(kind: str, value: Any) -> bool:
    if kind == "integer":
        return _is_int(value)
    if kind == "null":
        return value is None
    python = {"string": str, "boolean": bool, "array": list, "object": Mapping}[kind]
    return isinstance(value, python)


def _check_props(where: str, obj: Any, props: Mapping[str, Any], required: bool) -> list[str]:
    if not isinstance(obj, Mapping):
        return [f"{where}: expected an object, got {type(obj).__name__}"]
    problems = [f"{where}.{name}: required" for name in props if required and name not in obj]
    for name, spec in props.items():
        if name in obj:
            problems += _check_value(f"{where}.{name}", obj[name], spec)
    return problems


def _check_value(where: str, value: Any, spec: Mapping[str, Any]) -> list[str]:
    """The subset of JSON Schema `_POD_STATE_PROPS` and `_SECRET_DELIVERY_PROPS` use."""
    if "anyOf" in spec:
        options = [_check_value(where, value, option) for option in spec["anyOf"]]
        return [] if any(not o for o in options) else min(options, key=len)
    if "enum" in spec and value not in spec["enum"]:
        return [f"{where}: expected one of {', '.join(repr(v) for v in spec['enum'])}, got {value!r}"]
    kinds = spec.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is_type(k, value) for k in kinds):
            return [f"{where}: expected {' or '.join(kinds)}, got {json.dumps(value)[:40]}"]
    if isinstance(value, str):
        if len(value) < spec.get("minLength", 0):
            return [f"{where}: must not be empty"]
        if "pattern" in spec and not re.search(spec["pattern"], value):
            return [f"{where}: expected a value matching {spec['pattern']}, got {value[:40]!r}"]
    if _is_int(value) and value < spec.get("minimum", value):
        return [f"{where}: expected at least {spec['minimum']}, got {value}"]
    if isinstance(value, list) and "items" in spec:
        return [p for i, item in enumerate(value) for p in _check_value(f"{where}[{i}]", item, spec["items"])]
    return []


def _value_keys(obj: Any, where: str) -> list[str]:
    if isinstance(obj, Mapping):
        found = [f"{where}.value"] if "value" in obj else []
        return found + [p for k, v in obj.items() for p in _value_keys(v, f"{where}.{k}")]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in _value_keys(v, f"{where}[{i}]")]
    return []


def _check_payload(kind: str, expected: Any, observed: Any) -> list[str]:
    problems: list[str] = []
    if kind == Kind.POD_STATE:
        if observed is not None:
            problems += _check_props("observed", observed, _POD_STATE_PROPS, required=True)
        if expected is not None:
            problems += _check_props("expected", expected, _POD_STATE_PROPS, required=False)
    elif kind == Kind.SECRET_DELIVERY:
        problems += [
            f"{where}: a secret_delivery record never holds the value (record `fingerprint` instead)"
            for where in _value_keys(expected, "expected") + _value_keys(observed, "observed")
        ]
        if observed is not None:
            problems += _check_props("observed", observed, _SECRET_DELIVERY_PROPS, required=True)
            if isinstance(observed, Mapping):
                if observed.get("delivered") is True and not isinstance(observed.get("fingerprint"), str):
                    problems.append("observed.fingerprint: a delivered value needs its fingerprint")
                if observed.get("matches_vault") is True and observed.get("delivered") is not True:
                    problems.append("observed.matches_vault: true although the value was not delivered")
        if expected is not None:
            problems += _check_props("expected", expected, _SECRET_DELIVERY_PROPS, required=False)
    return problems


def check_record(obj: Mapping[str, Any]) -> list[str]:
    """Every way `obj` breaks `evidence_schema()` (empty when it is a valid record)."""
    if not isinstance(obj, Mapping):
        return [f"expected an object, got {type(obj).__name__}"]
    problems = [f"{name}: required" for name in _FIELDS if name not in obj]
    problems += [f"{name}: unknown field" for name in obj if name not in _FIELDS]
    top: dict[str, Mapping[str, Any]] = {
        "schema": {"enum": [SCHEMA]},
        "run_id": {"type": "string", "pattern": RUN_ID_PATTERN},
        "seq": {"type": "integer", "minimum": 1},
        "at": {"type": "string", "pattern": AT_PATTERN},
        "notebook": _nonempty(),
        "step": _nonempty(),
        "kind": {"enum": [k.value for k in Kind]},
        "subject": {"type": "string", "pattern": SUBJECT_PATTERN},
        "outcome": {"enum": [o.value for o in Outcome]},
        "reason": {"type": "string"},
    }
    for name, spec in top.items():
        if name in obj:
            problems += _check_value(name, obj[name], spec)
    if isinstance(obj.get("at"), str) and re.search(AT_PATTERN, obj["at"]):
        try:
            datetime.strptime(obj["at"][:19], "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            problems.append(f"at: not a real date and time: {obj['at']!r}")
    problems += _check_payload(str(obj.get("kind")), obj.get("expected"), obj.get("observed"))
    return problems


# -- records -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvidenceRecord:
    """One line of evidence.jsonl, as written (redacted)."""

    run_id: str
    seq: int
    at: str
    notebook: str
    step: str
    kind: str
    subject: str
    expected: Any
    observed: Any
    outcome: str
    reason: str
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, keys in schema order."""
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> EvidenceRecord:
        """A record read back from evidence.jsonl; ValueError listing every problem if it is not valid."""
        problems = check_record(obj)
        if problems:
            raise ValueError("not a valid evidence record: " + "; ".join(problems))
        return cls(**{f.name: obj[f.name] for f in fields(cls)})


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
        outcome: Outcome | str,
        reason: str = "",
    ) -> EvidenceRecord:
        """Append one record (redacted, flushed, fsynced) and return it as written.

        Raises ValueError (and writes nothing) when the record is invalid, when a `secret_delivery`
        payload has a `value` key, or when redaction would leave a registered value in the line or
        change a field whose vocabulary is fixed (kind, outcome, ...).
        """
        kind_text = str(kind.value if isinstance(kind, Kind) else kind)
        outcome_text = str(outcome.value if isinstance(outcome, Outcome) else outcome)
        expected = _json_normal(expected, "expected")
        observed = _json_normal(observed, "observed")
        draft: dict[str, Any] = {
            "schema": SCHEMA, "run_id": self.run_id, "seq": 1, "at": format_at(self._clock()), "notebook": notebook,
            "step": step, "kind": kind_text, "subject": subject, "expected": expected, "observed": observed,
            "outcome": outcome_text, "reason": reason,
        }  # fmt: skip
        if kind_text == Kind.SECRET_DELIVERY:  # before redaction: a `value` key is refused even if redacted
            self._refuse(kind_text, subject, _check_payload(kind_text, expected, observed))
        redacted = self.redactor.redact_obj(draft)
        for name in ("schema", "run_id", "at", "kind", "outcome"):
            if redacted.get(name) != draft[name]:
                self._refuse(kind_text, subject, [f"field {name} contains a registered secret value; not written"])
        self._refuse(kind_text, subject, check_record(redacted))
        self._refuse_leak(redacted)  # checked again on the exact line, once seq is known
        return self._append(redacted)

    def _refuse(self, kind: str, subject: str, problems: list[str]) -> None:
        """Raise ValueError listing `problems`, redacted: an error message is text that leaves too."""
        if problems:
            message = f"evidence record {kind} {subject!r}: " + "; ".join(problems)
            raise ValueError(self.redactor.redact(message))

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

    def _append(self, obj: dict[str, Any]) -> EvidenceRecord:
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
        return EvidenceRecord(**{f.name: obj[f.name] for f in fields(EvidenceRecord)})


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
    return seq if _is_int(seq) else None


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


# -- reading ---------------------------------------------------------------------------------------------


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
    data = Path(path).read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    records: list[dict[str, Any]] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            if number == len(lines):
                if not quiet:
                    warnings.warn(
                        f"{path}: line {number} is a partial record ({len(raw)} bytes), skipped: "
                        "a writer stopped mid-record",
                        TruncatedEvidenceWarning,
                        stacklevel=3,
                    )
                return EvidenceFile(records, number, len(raw))
            raise ValueError(f"{path}: line {number} is not a JSON object ({exc})") from None
        records.append(obj)
    return EvidenceFile(records)


def read_evidence(path: Path) -> list[dict[str, Any]]:
    """The records of an evidence.jsonl as dicts, in file order (see `load_evidence`)."""
    return load_evidence(path).records
