"""The typed record models: one per kind, shared by writer, reader, published schema and precise problems."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from meshbook.evidence import EvidenceWriter, Redactor, check_record, read_checked_evidence
from meshbook.evidence.__main__ import main as evidence_main
from meshbook.evidence.payloads import Kind, PodStateObserved, RecordOutcome, SecretDeliveryObserved
from meshbook.evidence.records import (
    RECORDS,
    ActionRecord,
    EvidenceRecord,
    FindingRecord,
    InstallRecord,
    MeshPolicyRecord,
    NamespaceRecord,
    PodStateRecord,
    SecretDeliveryRecord,
    VaultStatusRecord,
)
from tests.conftest import ROOT
from tests.evidence.test_records import EXAMPLES, POD, _record

SCHEMA_FILE = ROOT / "docs" / "evidence-schema.json"
MODEL_OF = {
    Kind.POD_STATE: PodStateRecord,
    Kind.SECRET_DELIVERY: SecretDeliveryRecord,
    Kind.MESH_POLICY: MeshPolicyRecord,
    Kind.NAMESPACE: NamespaceRecord,
    Kind.INSTALL: InstallRecord,
    Kind.VAULT_STATUS: VaultStatusRecord,
    Kind.ACTION: ActionRecord,
    Kind.FINDING: FindingRecord,
}


def test_the_schema_command_writes_the_published_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m meshbook.evidence write-schema PATH` writes byte for byte what docs/ holds."""
    target = tmp_path / "schema.json"
    assert evidence_main(["write-schema", str(target)]) == 0
    assert target.read_bytes() == SCHEMA_FILE.read_bytes()
    assert capsys.readouterr().out == f"wrote {target}\n"
    assert evidence_main(["schema"]) == 2


def test_every_kind_has_its_model() -> None:
    assert set(MODEL_OF) == set(Kind)
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))["discriminator"]["mapping"] == {
        kind.value: f"#/$defs/{model.__name__}" for kind, model in MODEL_OF.items()
    }


@pytest.mark.parametrize(("kind", "subject", "expected", "observed", "outcome"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_a_record_parses_into_its_kinds_model_and_back(
    kind: str, subject: str, expected: Any, observed: Any, outcome: str
) -> None:
    obj = {**_record(kind, observed, expected), "subject": subject, "outcome": outcome}
    record = RECORDS.validate_json(json.dumps(obj))
    assert type(record) is MODEL_OF[Kind(kind)]
    assert (record.kind, record.outcome) == (Kind(kind), RecordOutcome(outcome))
    assert record.to_dict() == obj
    assert list(record.to_dict()) == list(obj)
    assert EvidenceRecord.from_dict(obj) == record


def test_payloads_are_typed_and_keep_keys_they_do_not_name() -> None:
    observed = {**POD, "status": "Init:0/1", "node": "n1"}
    record = RECORDS.validate_python(_record("pod_state", observed, {"ready": "2/2"}))
    assert isinstance(record, PodStateRecord)
    assert isinstance(record.observed, PodStateObserved)
    assert (record.observed.ready, record.observed.status, record.observed.restarts) == ("3/3", "Init:0/1", 0)
    assert record.expected is not None and record.expected.ready == "2/2" and record.expected.sidecar is None
    assert record.to_dict()["observed"] == observed
    assert record.to_dict()["expected"] == {"ready": "2/2"}  # keys not given are not invented


PROBLEMS: list[tuple[str, dict[str, Any], list[str]]] = [
    ("seq as text", {"seq": "1"}, ['seq: expected integer, got "1"']),
    ("empty container name", {"observed": {**POD, "containers": ["vault", ""]}},
     ["observed.containers[1]: must not be empty"]),
    ("negative restarts", {"observed": {**POD, "restarts": -1}}, ["observed.restarts: expected at least 0, got -1"]),
    ("unknown phase", {"observed": {**POD, "phase": "Crashing"}},
     ["observed.phase: expected 'Pending', 'Running', 'Succeeded', 'Failed', 'Unknown' or '', got 'Crashing'"]),
    ("missing field", {"observed": {k: v for k, v in POD.items() if k != "sidecar"}}, ["observed.sidecar: required"]),
    ("payload not an object", {"observed": ["3/3"]}, ["observed: expected an object, got list"]),
    ("unknown field and bad date", {"at": "2025-02-30T12:00:00Z", "extra": 1},
     ["at: not a real date and time: '2025-02-30T12:00:00Z'", "extra: unknown field"]),
    ("unknown kind and bad outcome", {"kind": "pods", "outcome": "ok"},
     ["kind: expected 'pod_state', 'secret_delivery', 'mesh_policy', 'namespace', 'install', 'vault_status', "
      "'action' or 'finding', got 'pods'", "outcome: expected 'pass', 'fail', 'info' or 'skip', got 'ok'"]),
]  # fmt: skip


@pytest.mark.parametrize(("change", "problems"), [p[1:] for p in PROBLEMS], ids=[p[0] for p in PROBLEMS])
def test_problems_name_the_field_what_was_expected_and_what_was_found(
    change: dict[str, Any], problems: list[str]
) -> None:
    assert check_record({**_record("pod_state", POD), **change}) == problems


def test_delivery_rules_across_fields() -> None:
    delivered = {"container": "app", "path": "p", "key": "k", "delivered": True, "matches_vault": True}
    assert check_record(_record("secret_delivery", {**delivered, "fingerprint": None})) == [
        "observed.fingerprint: a delivered value needs its fingerprint"
    ]
    not_delivered = {**delivered, "delivered": False, "fingerprint": None}
    assert check_record(_record("secret_delivery", not_delivered)) == [
        "observed.matches_vault: true although the value was not delivered"
    ]
    with pytest.raises(ValueError, match="value"):
        SecretDeliveryObserved.model_validate({**not_delivered, "matches_vault": None, "value": "x"})


def test_the_writer_refuses_an_unknown_kind_by_name(tmp_path: Path) -> None:
    writer = EvidenceWriter(tmp_path / "evidence.jsonl", "r1", redactor=Redactor())
    with pytest.raises(ValueError, match=r"^evidence record pods 'app': kind: expected 'pod_state', .* got 'pods'$"):
        writer.record("pods", "app", notebook="nb", step="s", outcome="info")
    assert not (tmp_path / "evidence.jsonl").exists()


def test_read_checked_evidence_types_valid_records_and_lists_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "evidence.jsonl"
    good = _record("pod_state", POD)
    bad = {**_record("pod_state", {**POD, "ready": "3"}), "seq": 2}
    action = {**_record("action", {"drift": ["x"], "anything": {"else": 1}}), "seq": 3}
    lines = [json.dumps(good), json.dumps(bad), json.dumps(action), '{"schema": "meshbook.ev']
    path.write_text("\n".join(lines), encoding="utf-8")
    checked = read_checked_evidence(path, quiet=True)
    assert [type(r) for r in checked.records] == [PodStateRecord, ActionRecord]
    assert checked.objects == [good, action]
    assert checked.skipped == [
        "record seq 2 skipped: observed.ready: expected a value matching ^[0-9]+/[0-9]+$, got '3'"
    ]
    assert (checked.truncated_line, checked.truncated_bytes) == (4, len(lines[3]))
    action_record = checked.records[1]
    assert isinstance(action_record, ActionRecord) and action_record.observed is not None
    assert action_record.observed.drift == ["x"]


def test_read_checked_evidence_refuses_damage_before_the_last_line(tmp_path: Path) -> None:
    path = tmp_path / "evidence.jsonl"
    path.write_text(json.dumps(_record("action", None)) + "\nnot json\n" + json.dumps(_record("action", None)) + "\n")
    with pytest.raises(ValueError, match=r"evidence.jsonl: line 2 is not a JSON object"):
        read_checked_evidence(path)
