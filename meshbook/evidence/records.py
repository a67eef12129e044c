"""An evidence record (`meshbook.evidence/v1`): one line of evidence.jsonl, as one typed model per kind.

`EvidenceRecord` is the envelope every line has (who, when, where in the run, the verdict); each kind's
subclass types `expected` and `observed` with its payload models (`meshbook.evidence.payloads`).
`RECORDS` (a pydantic TypeAdapter over the kinds, told apart by `kind`) is what the writer validates
with, what the reader parses whole lines with, and what `docs/evidence-schema.json` is generated from:
one definition, so the three cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, StrictInt, StringConstraints, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from meshbook.evidence.payloads import (
    AT_PATTERN,
    RUN_ID_PATTERN,
    SUBJECT_PATTERN,
    ActionObserved,
    FindingObserved,
    InstallObserved,
    Kind,
    MeshPolicyExpected,
    MeshPolicyObserved,
    NamespaceInjection,
    PodStateExpected,
    PodStateObserved,
    RecordOutcome,
    SecretDeliveryExpected,
    SecretDeliveryObserved,
    VaultHealth,
    rule_broken,
)
from meshbook.evidence.problems import describe_errors

__all__ = [
    "FIELDS",
    "RECORDS",
    "SCHEMA",
    "ActionRecord",
    "AnyRecord",
    "EvidenceRecord",
    "FindingRecord",
    "InstallRecord",
    "MeshPolicyRecord",
    "NamespaceRecord",
    "PodStateRecord",
    "SecretDeliveryRecord",
    "VaultStatusRecord",
    "check_record",
    "record_problems",
]

SCHEMA = "meshbook.evidence/v1"

FIELDS = (
    "schema", "run_id", "seq", "at", "notebook", "step", "kind", "subject", "expected", "observed", "outcome", "reason",
)  # fmt: skip
"""A record's keys, in the order they are written."""


def _real_moment(at: str) -> str:
    try:
        datetime.fromisoformat(at[:19])  # the pattern has checked the shape; this checks the calendar
    except ValueError:
        raise rule_broken(("", f"not a real date and time: {at!r}")) from None
    return at


RunId = Annotated[str, StringConstraints(strict=True, pattern=RUN_ID_PATTERN)]
At = Annotated[
    str,
    StringConstraints(strict=True, pattern=AT_PATTERN),
    AfterValidator(_real_moment),
    Field(json_schema_extra={"format": "date-time", "description": "RFC 3339, UTC"}),
]
Subject = Annotated[
    str,
    StringConstraints(strict=True, pattern=SUBJECT_PATTERN),
    Field(description="namespace/name; a cluster-scoped name; namespace/name/container"),
]
NonEmpty = Annotated[str, StringConstraints(strict=True, min_length=1)]


class EvidenceRecord(BaseModel):
    """One line of evidence.jsonl, as written (redacted); a kind's subclass types its payloads."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True)

    schema_id: Literal["meshbook.evidence/v1"] = Field(alias="schema")
    run_id: RunId
    seq: Annotated[StrictInt, Field(ge=1, description="1, 2, ... in file order")]
    at: At
    notebook: NonEmpty
    step: NonEmpty
    kind: Kind
    subject: Subject
    expected: Any = Field(description="what the scenario expects; shape per kind")
    observed: Any = Field(description="what was found; shape per kind")
    outcome: RecordOutcome
    reason: Annotated[str, StringConstraints(strict=True)]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object as written: keys in schema order, payloads with exactly their keys."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> EvidenceRecord:
        """A record read back from evidence.jsonl; ValueError listing every problem if it is not valid."""
        try:
            record: EvidenceRecord = RECORDS.validate_python(obj)
        except PydanticValidationError as exc:
            raise ValueError("not a valid evidence record: " + "; ".join(record_problems(obj, exc))) from None
        return record


class PodStateRecord(EvidenceRecord):
    """A pod's READY, containers, sidecar, phase and restarts, against the READY the guide shows."""

    kind: Literal[Kind.POD_STATE]
    expected: PodStateExpected | None
    observed: PodStateObserved | None


class SecretDeliveryRecord(EvidenceRecord):
    """Whether a container printed the secret Vault holds; a keyed fingerprint, never the value."""

    kind: Literal[Kind.SECRET_DELIVERY]
    expected: SecretDeliveryExpected | None
    observed: SecretDeliveryObserved | None


class MeshPolicyRecord(EvidenceRecord):
    """An effective mTLS mode (and what decides it), or a PeerAuthentication step skipped."""

    kind: Literal[Kind.MESH_POLICY]
    expected: MeshPolicyExpected | None
    observed: MeshPolicyObserved | None


class NamespaceRecord(EvidenceRecord):
    """A namespace's sidecar-injection label."""

    kind: Literal[Kind.NAMESPACE]
    expected: NamespaceInjection | None
    observed: NamespaceInjection | None


class InstallRecord(EvidenceRecord):
    """An install of Istio or Bank-Vaults: commands or objects, and versions."""

    kind: Literal[Kind.INSTALL]
    expected: JsonValue = Field(description="what the install should yield, if stated")
    observed: InstallObserved | None


class VaultStatusRecord(EvidenceRecord):
    """Vault initialised and unsealed, as its health endpoint says."""

    kind: Literal[Kind.VAULT_STATUS]
    expected: VaultHealth | None
    observed: VaultHealth | None


class ActionRecord(EvidenceRecord):
    """A step that changed (or, in check mode, compared) the cluster."""

    kind: Literal[Kind.ACTION]
    expected: JsonValue = Field(description='what the step should leave, e.g. "Deployment as manifest app applies it"')
    observed: ActionObserved | None


class FindingRecord(EvidenceRecord):
    """A finding of `meshbook audit`: fail for an error, info for a warning or a check that could not run."""

    kind: Literal[Kind.FINDING]
    expected: JsonValue = Field(description="what the audit expects, e.g. the guide's posture; usually null")
    observed: FindingObserved | None


AnyRecord = Annotated[
    PodStateRecord
    | SecretDeliveryRecord
    | MeshPolicyRecord
    | NamespaceRecord
    | InstallRecord
    | VaultStatusRecord
    | ActionRecord
    | FindingRecord,
    Field(discriminator="kind"),
]
"""An evidence record of any kind; `kind` picks the model."""

RECORDS: TypeAdapter[AnyRecord] = TypeAdapter(AnyRecord)
"""Validates (and parses JSON lines into) typed records; the published schema comes from it too."""

_ENVELOPE: TypeAdapter[EvidenceRecord] = TypeAdapter(EvidenceRecord)


def record_problems(obj: Any, exc: PydanticValidationError) -> list[str]:
    """`exc` (raised validating `obj` with `RECORDS`) as evidence problems, one line each."""
    errors = exc.errors(include_url=False)
    problems = describe_errors(errors)
    if any(e["type"] in ("union_tag_invalid", "union_tag_not_found") for e in errors) and isinstance(obj, Mapping):
        # No kind to pick a model by: still say what else is wrong with the envelope.
        try:
            _ENVELOPE.validate_python(obj)
        except PydanticValidationError as envelope:
            problems = describe_errors(envelope.errors(include_url=False))
    return problems


def check_record(obj: Mapping[str, Any]) -> list[str]:
    """Every way `obj` breaks the evidence schema (empty when it is a valid record)."""
    if not isinstance(obj, Mapping):
        return [f"expected an object, got {type(obj).__name__}"]
    try:
        RECORDS.validate_python(obj)
    except PydanticValidationError as exc:
        return record_problems(obj, exc)
    return []
