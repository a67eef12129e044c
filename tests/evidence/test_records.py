"""Evidence records: the published schema, the append-only writer, reading back, and fingerprints."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import warnings
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema
import pytest

from meshbook.errors import ParameterError
from meshbook.evidence import (
    EvidenceRecord,
    EvidenceWriter,
    Kind,
    Redactor,
    TruncatedEvidenceWarning,
    check_record,
    evidence_schema,
    fingerprint,
    fingerprint_key,
    load_evidence,
    read_evidence,
    scan_for_leaks,
)
from meshbook.evidence.fingerprints import ENV_KEY_FILE, fingerprint_key_path
from tests.conftest import ROOT

SCHEMA_FILE = ROOT / "docs" / "evidence-schema.json"
SECRET = "hunter2-S3cr3t/value"
MARK = "‹redacted:api-token›"
KEY = bytes(range(32))
AT = "2025-01-31T12:00:00.123Z"


def _clock() -> datetime:
    return datetime(2025, 1, 31, 13, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))


@pytest.fixture
def redactor() -> Redactor:
    r = Redactor()
    r.add(SECRET, label="api token")
    return r


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "evidence.jsonl"


@pytest.fixture
def writer(path: Path, redactor: Redactor) -> EvidenceWriter:
    return EvidenceWriter(path, "20250131T120000Z-ab12", redactor=redactor, clock=_clock)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


POD = {
    "ready": "3/3",
    "containers": ["vault", "bank-vaults", "velero-fsfreeze"],
    "init_containers": [],
    "sidecar": False,
    "phase": "Running",
    "restarts": 0,
}
DELIVERY = {
    "container": "init-ubuntu",
    "path": "secret/data/accounts/aws",
    "key": "AWS_SECRET_ACCESS_KEY",
    "delivered": True,
    "matches_vault": True,
    "fingerprint": fingerprint("s3cr3t", KEY),
}

# One realistic record of every kind: (kind, subject, expected, observed, outcome).
FINDING = {
    "code": "MB0102",
    "severity": "Error",
    "title": "an init container in the mesh cannot reach Vault",
    "object": "Pod app/app-x",
    "message": "init container init-ubuntu -> https://vault.vault:8200: connection reset by peer",
    "objects": ["PeerAuthentication istio-system/default", "Service vault/vault"],
    "remedy": "PERMISSIVE in Vault's namespace",
}
EXAMPLES: list[tuple[str, str, Any, Any, str]] = [
    ("pod_state", "vault/vault-0", {"ready": "3/3", "sidecar": False}, POD, "pass"),
    ("secret_delivery", "app/app/init-ubuntu", {"delivered": True, "matches_vault": True}, DELIVERY, "pass"),
    ("mesh_policy", "istio-system/default", {"mode": "STRICT"}, {"mode": "STRICT", "scope": "mesh"}, "pass"),
    ("namespace", "app", {"injection": True}, {"injection": True}, "pass"),
    ("install", "bank-vaults", None, {"chart": "vault-secrets-webhook", "version": "1.23.1"}, "info"),
    ("vault_status", "vault/vault", {"sealed": False}, {"initialized": True, "sealed": False}, "pass"),
    ("action", "app", None, None, "skip"),
    ("finding", "app/app-x", None, FINDING, "fail"),
]


def test_published_schema_is_the_code_schema() -> None:
    """docs/evidence-schema.json is `evidence_schema()` (regenerate with `write_evidence_schema`)."""
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == evidence_schema()


def test_every_kind_has_an_example() -> None:
    assert [e[0] for e in EXAMPLES] == [k.value for k in Kind]


@pytest.mark.parametrize(("kind", "subject", "expected", "observed", "outcome"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_each_kind_validates_against_the_published_schema(
    writer: EvidenceWriter,
    path: Path,
    validator: jsonschema.Draft202012Validator,
    kind: str,
    subject: str,
    expected: Any,
    observed: Any,
    outcome: str,
) -> None:
    written = writer.record(
        kind, subject, notebook="10-scenario-1", step="check", expected=expected, observed=observed, outcome=outcome
    )
    [line] = read_evidence(path)
    assert line == written.to_dict()
    assert list(line) == ["schema", "run_id", "seq", "at", "notebook", "step", "kind", "subject", "expected",
                          "observed", "outcome", "reason"]  # fmt: skip
    assert (line["kind"], line["subject"], line["expected"], line["observed"]) == (kind, subject, expected, observed)
    assert list(validator.iter_errors(line)) == []
    assert check_record(line) == []
    assert EvidenceRecord.from_dict(line) == written


def test_record_as_written(writer: EvidenceWriter, path: Path) -> None:
    written = writer.record(
        Kind.POD_STATE, "vault/vault-0", notebook="10-scenario-1", step="vault ready", observed=POD, outcome="pass"
    )
    assert path.read_text(encoding="utf-8") == (
        '{"schema": "meshbook.evidence/v1", "run_id": "20250131T120000Z-ab12", "seq": 1, '
        f'"at": "{AT}", "notebook": "10-scenario-1", "step": "vault ready", "kind": "pod_state", '
        '"subject": "vault/vault-0", "expected": null, "observed": {"ready": "3/3", "containers": '
        '["vault", "bank-vaults", "velero-fsfreeze"], "init_containers": [], "sidecar": false, '
        '"phase": "Running", "restarts": 0}, "outcome": "pass", "reason": ""}\n'
    )
    assert written.seq == 1 and writer.last_seq == 1 and written.at == AT


def _record(kind: str, observed: Any, expected: Any = None) -> dict[str, Any]:
    return {
        "schema": "meshbook.evidence/v1", "run_id": "r1", "seq": 1, "at": AT, "notebook": "nb", "step": "s",
        "kind": kind, "subject": "app/app", "expected": expected, "observed": observed, "outcome": "pass",
        "reason": "",
    }  # fmt: skip


BAD_PAYLOADS: list[tuple[str, str, Any, Any]] = [
    ("pod_state missing ready", "pod_state", {k: v for k, v in POD.items() if k != "ready"}, None),
    ("pod_state ready not n/m", "pod_state", {**POD, "ready": "3"}, None),
    ("pod_state restarts negative", "pod_state", {**POD, "restarts": -1}, None),
    ("pod_state restarts boolean", "pod_state", {**POD, "restarts": True}, None),
    ("pod_state unknown phase", "pod_state", {**POD, "phase": "CrashLoopBackOff"}, None),
    ("pod_state containers not names", "pod_state", {**POD, "containers": "vault"}, None),
    ("pod_state expected ready wrong", "pod_state", POD, {"ready": 3}),
    ("secret_delivery no fingerprint key", "secret_delivery", {k: v for k, v in DELIVERY.items() if k != "fingerprint"},
     None),
    ("secret_delivery plain hash", "secret_delivery", {**DELIVERY, "fingerprint": "sha256:" + "0" * 64}, None),
    ("secret_delivery delivered without fingerprint", "secret_delivery", {**DELIVERY, "fingerprint": None}, None),
    ("secret_delivery matches but not delivered", "secret_delivery",
     {**DELIVERY, "delivered": False, "fingerprint": None}, None),
    ("secret_delivery value", "secret_delivery", {**DELIVERY, "value": "s3cr3t"}, None),
    ("secret_delivery nested value", "secret_delivery", {**DELIVERY, "env": [{"name": "X", "value": "s3cr3t"}]}, None),
    ("secret_delivery expected value", "secret_delivery", DELIVERY, {"value": "s3cr3t"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "observed", "expected"), [b[1:] for b in BAD_PAYLOADS], ids=[b[0] for b in BAD_PAYLOADS]
)
def test_bad_payloads_are_refused_by_schema_code_and_writer(
    validator: jsonschema.Draft202012Validator,
    writer: EvidenceWriter,
    path: Path,
    kind: str,
    observed: Any,
    expected: Any,
) -> None:
    record = _record(kind, observed, expected)
    assert not validator.is_valid(record)
    assert check_record(record) != []
    with pytest.raises(ValueError, match=f"evidence record {kind} 'app/app': "):
        writer.record(kind, "app/app", notebook="nb", step="s", expected=expected, observed=observed, outcome="pass")
    assert not path.exists()


BAD_TOP: list[tuple[str, dict[str, Any]]] = [
    ("subject with a space", {"subject": "app/my app"}),
    ("subject with an empty part", {"subject": "app//app"}),
    ("subject with a leading slash", {"subject": "/app"}),
    ("unknown outcome", {"outcome": "ok"}),
    ("unknown kind", {"kind": "pods", "observed": None}),
    ("local time", {"at": "2025-01-31T12:00:00+01:00"}),
    ("seq zero", {"seq": 0}),
    ("empty step", {"step": ""}),
    ("extra field", {"value": "x"}),
    ("wrong schema", {"schema": "meshbook.evidence/v2"}),
]


@pytest.mark.parametrize("change", [b[1] for b in BAD_TOP], ids=[b[0] for b in BAD_TOP])
def test_bad_records_are_refused_by_schema_and_code(
    validator: jsonschema.Draft202012Validator, change: dict[str, Any]
) -> None:
    record = {**_record("action", None), **change}
    assert not validator.is_valid(record)
    assert check_record(record) != []


def test_value_field_message_names_where(writer: EvidenceWriter) -> None:
    with pytest.raises(ValueError) as caught:
        writer.record("secret_delivery", "app/app", notebook="nb", step="s", outcome="pass",
                      observed={**DELIVERY, "env": [{"name": "X", "value": "s3cr3t"}]})  # fmt: skip
    assert str(caught.value) == (
        "evidence record secret_delivery 'app/app': observed.env[0].value: a secret_delivery record never holds "
        "the value (record `fingerprint` instead)"
    )
    assert "s3cr3t" not in str(caught.value)


# -- redaction -------------------------------------------------------------------------------------------


def test_secret_strings_anywhere_are_redacted(writer: EvidenceWriter, path: Path, redactor: Redactor) -> None:
    b64 = base64.b64encode(SECRET.encode()).decode()
    written = writer.record(
        "action",
        f"app/{SECRET}",
        notebook="10-scenario-1",
        step=f"login {SECRET}",
        expected={"url": f"https://vault/?token={quote(SECRET, safe='')}"},
        observed={"env": [{"name": "TOKEN", "data": b64}], SECRET: {"deep": [1, f"x{SECRET}y"]}},
        outcome="fail",
        reason=f"vault said: permission denied for {json.dumps(SECRET)}",
    )
    assert written.to_dict() == {
        "schema": "meshbook.evidence/v1", "run_id": "20250131T120000Z-ab12", "seq": 1, "at": AT,
        "notebook": "10-scenario-1", "step": f"login {MARK}", "kind": "action", "subject": f"app/{MARK}",
        "expected": {"url": f"https://vault/?token={MARK}"},
        "observed": {"env": [{"name": "TOKEN", "data": MARK}], MARK: {"deep": [1, f"x{MARK}y"]}},
        "outcome": "fail", "reason": f'vault said: permission denied for "{MARK}"',
    }  # fmt: skip
    assert read_evidence(path) == [written.to_dict()]
    assert scan_for_leaks(path.parent, redactor.known_values()) == []


def test_refusal_messages_are_redacted(writer: EvidenceWriter) -> None:
    with pytest.raises(ValueError) as caught:
        writer.record("pod_state", f"app/{SECRET}", notebook="nb", step="s", observed={**POD, "ready": SECRET},
                      outcome="fail")  # fmt: skip
    assert str(caught.value) == (
        f"evidence record pod_state 'app/{MARK}': observed.ready: expected a value matching "
        f"^[0-9]+/[0-9]+$, got '{MARK}'"
    )
    with pytest.raises(ValueError) as caught:
        writer.record("secret_delivery", "app/app", notebook="nb", step="s", outcome="pass",
                      observed={SECRET: {"value": "x"}})  # fmt: skip
    assert str(caught.value).startswith(f"evidence record secret_delivery 'app/app': observed.{MARK}.value: ")


def test_a_value_outside_strings_is_refused(path: Path) -> None:
    r = Redactor()
    r.add("48151623", label="pin")
    w = EvidenceWriter(path, "r1", redactor=r, clock=_clock)
    with pytest.raises(ValueError, match=r"would show the registered value 'pin' \(plain\) outside a string"):
        w.record("vault_status", "vault/vault", notebook="nb", step="s", observed={"pin": 48151623}, outcome="info")
    assert not path.exists()


def test_a_value_equal_to_a_fixed_field_is_refused(path: Path) -> None:
    r = Redactor()
    r.add("info", label="silly")
    w = EvidenceWriter(path, "r1", redactor=r, clock=_clock)
    with pytest.raises(ValueError, match="field outcome contains a registered secret value"):
        w.record("action", "app", notebook="nb", step="s", outcome="info")
    assert not path.exists()


def test_non_json_payloads_are_refused(writer: EvidenceWriter) -> None:
    with pytest.raises(ValueError, match="observed: not JSON-serialisable"):
        writer.record("action", "app", notebook="nb", step="s", observed={"at": datetime.now(UTC)}, outcome="info")
    with pytest.raises(ValueError, match="observed: not JSON-serialisable"):
        writer.record("action", "app", notebook="nb", step="s", observed=float("nan"), outcome="info")


def test_naive_clock_is_refused(path: Path, redactor: Redactor) -> None:
    w = EvidenceWriter(path, "r1", redactor=redactor, clock=lambda: datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        w.record("action", "app", notebook="nb", step="s", outcome="info")


def test_bad_run_id_is_refused(path: Path, redactor: Redactor) -> None:
    with pytest.raises(ValueError, match="run id 'my run'"):
        EvidenceWriter(path, "my run", redactor=redactor)


# -- appending: seq, fsync, crashes ---------------------------------------------------------------------------


def _rec(w: EvidenceWriter, step: str) -> int:
    return w.record("action", "app", notebook="nb", step=step, outcome="info").seq


_CHILD = """
import sys
from pathlib import Path
from meshbook.evidence import EvidenceWriter, Redactor
w = EvidenceWriter(Path(sys.argv[1]), sys.argv[2], redactor=Redactor())
for i in range(int(sys.argv[3])):
    w.record("action", "app", notebook=sys.argv[2], step=f"step {i}", outcome="info")
"""


def _child(path: Path, run_id: str, count: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(path), run_id, str(count)], cwd=ROOT)


def test_seq_continues_across_writers_and_processes(path: Path, redactor: Redactor) -> None:
    a = EvidenceWriter(path, "run-a", redactor=redactor, clock=_clock)
    b = EvidenceWriter(path, "run-b", redactor=redactor, clock=_clock)
    assert [_rec(a, "a1"), _rec(b, "b1"), _rec(a, "a2")] == [1, 2, 3]
    assert _child(path, "run-c", 2).wait(timeout=60) == 0
    assert _rec(b, "b2") == 6
    c = EvidenceWriter(path, "run-d", redactor=redactor, clock=_clock)
    assert c.last_seq == 6
    records = read_evidence(path)
    assert [(r["seq"], r["run_id"], r["step"]) for r in records] == [
        (1, "run-a", "a1"), (2, "run-b", "b1"), (3, "run-a", "a2"),
        (4, "run-c", "step 0"), (5, "run-c", "step 1"), (6, "run-b", "b2"),
    ]  # fmt: skip


def test_concurrent_processes_never_share_a_seq(path: Path) -> None:
    children = [_child(path, f"proc-{n}", 15) for n in range(4)]
    assert [c.wait(timeout=120) for c in children] == [0, 0, 0, 0]
    records = read_evidence(path)
    assert [r["seq"] for r in records] == list(range(1, 61))
    for n in range(4):  # each process's records in its own order
        assert [r["step"] for r in records if r["run_id"] == f"proc-{n}"] == [f"step {i}" for i in range(15)]


def test_every_record_is_fsynced(writer: EvidenceWriter, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        mode = os.fstat(fd).st_mode
        calls.append("dir" if stat.S_ISDIR(mode) else f"file with {os.fstat(fd).st_size} bytes")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    sizes = []
    for n in range(3):
        _rec(writer, f"s{n}")
        sizes.append(path.stat().st_size)
    # each record fsynced once its bytes are in; the new file's directory entry once, after the first
    assert calls == [f"file with {sizes[0]} bytes", "dir", f"file with {sizes[1]} bytes", f"file with {sizes[2]} bytes"]


def test_truncated_last_line_is_skipped_reported_and_repaired(writer: EvidenceWriter, path: Path) -> None:
    _rec(writer, "one")
    _rec(writer, "two")
    partial = b'{"schema": "meshbook.evidence/v1", "run_id": "20250131T1'
    with path.open("ab") as f:
        f.write(partial)
    with pytest.warns(TruncatedEvidenceWarning, match=r"line 3 is a partial record \(56 bytes\), skipped"):
        records = read_evidence(path)
    assert [r["step"] for r in records] == ["one", "two"]
    with pytest.warns(TruncatedEvidenceWarning):
        loaded = load_evidence(path)
    assert (loaded.truncated_line, loaded.truncated_bytes) == (3, len(partial))
    assert EvidenceWriter(path, "r2", redactor=Redactor()).last_seq == 2
    assert _rec(writer, "three") == 3  # the partial line is cut off first
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [(r["seq"], r["step"]) for r in read_evidence(path)] == [(1, "one"), (2, "two"), (3, "three")]


def test_complete_last_record_without_newline_is_kept(writer: EvidenceWriter, path: Path) -> None:
    _rec(writer, "one")
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    assert [r["step"] for r in read_evidence(path)] == ["one"]
    assert _rec(writer, "two") == 2
    assert [(r["seq"], r["step"]) for r in read_evidence(path)] == [(1, "one"), (2, "two")]


def test_damage_before_the_last_line_is_an_error(writer: EvidenceWriter, path: Path) -> None:
    _rec(writer, "one")
    with path.open("ab") as f:
        f.write(b"not json\n")
    _rec(writer, "three")
    with pytest.raises(ValueError, match=r"evidence.jsonl: line 2 is not a JSON object"):
        read_evidence(path)


# -- fingerprints -----------------------------------------------------------------------------------------------


def test_fingerprint_is_hmac_sha256() -> None:
    # RFC 4231 test case 6 (a key longer than the block size)
    key = b"\xaa" * 131
    assert fingerprint("Test Using Larger Than Block-Size Key - Hash Key First", key) == (
        "hmac-sha256:60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    )
    assert fingerprint("s3cr3t", KEY) == fingerprint(b"s3cr3t", KEY) != fingerprint("s3cr3t", bytes(32))
    with pytest.raises(ValueError, match="at least 16 bytes, got 4"):
        fingerprint("s3cr3t", b"Jefe")


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv(ENV_KEY_FILE, raising=False)
    return tmp_path / "state"


def test_fingerprint_key_is_created_private_and_stable(state_home: Path) -> None:
    key = fingerprint_key()
    path = state_home / "meshbook" / "fingerprint.key"
    assert fingerprint_key_path() == path
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text(encoding="ascii") == key.hex() + "\n"
    assert fingerprint_key() == key
    assert [p.name for p in path.parent.iterdir()] == ["fingerprint.key"]  # no temporary file left


def test_fingerprint_key_locations(state_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_KEY_FILE, str(tmp_path / "ci" / "key"))
    from_env = fingerprint_key()
    assert (tmp_path / "ci" / "key").read_text(encoding="ascii") == from_env.hex() + "\n"
    explicit = fingerprint_key(tmp_path / "explicit")
    assert (tmp_path / "explicit" / "fingerprint.key").read_text(encoding="ascii") == explicit.hex() + "\n"
    assert len({from_env, explicit}) == 2
    assert not state_home.exists()


def test_fingerprint_key_accepts_raw_bytes_and_refuses_junk(tmp_path: Path) -> None:
    (tmp_path / "fingerprint.key").write_bytes(KEY)
    assert fingerprint_key(tmp_path) == KEY
    (tmp_path / "fingerprint.key").write_text("not a key\n", encoding="ascii")
    with pytest.raises(ParameterError, match=r"fingerprint.key: not a fingerprint key \(expected 64 hex digits"):
        fingerprint_key(tmp_path)
