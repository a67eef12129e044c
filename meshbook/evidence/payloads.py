"""What an evidence record says: its kind, its outcome, and the typed `expected` / `observed` of each kind.

One pydantic model per payload is the single home of a payload's shape: the writer validates and
serialises through it, the reader parses lines into it, `docs/evidence-schema.json` is generated from
it, and the report builds its rows from its attributes. Payload models accept keys they do not name
(older records and richer writers stay readable) but check every key they do name.

All models are validated from JSON (or JSON-shaped Python), strictly for numbers and booleans: JSON
Schema tells `true` from `1` and `"1"` from `1`, and so must the code that claims to follow it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

__all__ = [
    "EVIDENCE_RULE",
    "NO_VALUE_KEY_MODELS",
    "NO_VALUE_KEY_SCHEMA",
    "ActionObserved",
    "AppliedObjectSummary",
    "ContainerRestart",
    "FindingObserved",
    "InstallObserved",
    "Kind",
    "MeshPolicyExpected",
    "MeshPolicyObserved",
    "NamespaceInjection",
    "PodStateExpected",
    "PodStateObserved",
    "RecordOutcome",
    "SecretDeliveryExpected",
    "SecretDeliveryObserved",
    "VaultHealth",
    "rule_broken",
    "value_key_paths",
]


class Kind(StrEnum):
    """What an evidence record is about."""

    POD_STATE = "pod_state"
    SECRET_DELIVERY = "secret_delivery"
    MESH_POLICY = "mesh_policy"
    NAMESPACE = "namespace"
    INSTALL = "install"
    VAULT_STATUS = "vault_status"
    ACTION = "action"
    FINDING = "finding"


class RecordOutcome(StrEnum):
    """An evidence record's verdict: an expectation held (pass) or not (fail), a fact (info), not done (skip).

    A StrEnum, so a record read back as JSON (`r["outcome"] == RecordOutcome.FAIL`) compares equal.
    """

    PASS = "pass"
    FAIL = "fail"
    INFO = "info"
    SKIP = "skip"


# Patterns are written for Python `re`, Rust `regex` (pydantic-core) and ECMA-262 (JSON Schema).
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$"
AT_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$"
SUBJECT_PATTERN = r"^[^\s/]+(/[^\s/]+)*$"
READY_PATTERN = r"^[0-9]+/[0-9]+$"
FINGERPRINT_PATTERN = r"^hmac-sha256:[0-9a-f]{64}$"

EVIDENCE_RULE = "evidence_rule"
"""pydantic error type of a rule across fields; its context carries `problems`: ((field path, text), ...)."""


def rule_broken(*problems: tuple[str, str]) -> PydanticCustomError:
    """The error for broken evidence rules, each `(field path relative to the model, what is wrong)`."""
    summary = "; ".join(f"{where}: {text}" if where else text for where, text in problems)
    return PydanticCustomError(EVIDENCE_RULE, "{summary}", {"summary": summary, "problems": problems})


NonEmpty = Annotated[str, StringConstraints(strict=True, min_length=1)]
Text = Annotated[str, StringConstraints(strict=True)]
Ready = Annotated[str, StringConstraints(strict=True, pattern=READY_PATTERN)]
Fingerprint = Annotated[str, StringConstraints(strict=True, pattern=FINGERPRINT_PATTERN)]
Restarts = Annotated[StrictInt, Field(ge=0)]
Phase = Literal["Pending", "Running", "Succeeded", "Failed", "Unknown", ""]
"""Kubernetes pod phases; "" while the kubelet has not reported one yet."""


class Payload(BaseModel):
    """A record's `expected` or `observed`: named keys checked, other keys kept as written."""

    model_config = ConfigDict(extra="allow", frozen=True, use_attribute_docstrings=True)


# -- pod_state ---------------------------------------------------------------------------------------------


class ContainerRestart(Payload):
    """One restarted container of a pod: how often, how its last instance ended, and whether vault-env
    failed to get a Vault token in it (decided from its log at check time; the log is not kept)."""

    container: NonEmpty
    restarts: Restarts
    exit_code: StrictInt | None = None
    reason: Text | None = None
    vault_env_token_failed: StrictBool | None = None


class PodStateObserved(Payload):
    """A pod as `kubectl get pods` shows it (`observed` of pod_state)."""

    ready: Ready
    """kubectl READY, e.g. "3/3"."""
    containers: list[NonEmpty]
    """Container names."""
    init_containers: list[NonEmpty]
    """Init container names."""
    sidecar: StrictBool
    """An istio-proxy sidecar is present."""
    phase: Phase
    restarts: Restarts
    """Restarts of all containers."""
    status: Text | None = None
    """kubectl STATUS (`Running`, `Init:0/1`, `CrashLoopBackOff`); absent in older records."""
    restarted: list[ContainerRestart] | None = None
    """The containers that restarted, when any did; absent in older records."""


class PodStateExpected(Payload):
    """What a scenario expects of a pod (`expected` of pod_state); only the keys given are expected."""

    ready: Ready | None = None
    containers: list[NonEmpty] | None = None
    init_containers: list[NonEmpty] | None = None
    sidecar: StrictBool | None = None
    phase: Phase | None = None
    restarts: Restarts | None = None
    status: Text | None = None


# -- secret_delivery -----------------------------------------------------------------------------------------

NO_VALUE_KEY_SCHEMA: dict[str, Any] = {
    "description": "no object at any depth has a key named value",
    "anyOf": [
        {"type": ["string", "number", "boolean", "null"]},
        {"type": "array", "items": {"$ref": "#/$defs/no_value_key"}},
        {"type": "object", "not": {"required": ["value"]}, "additionalProperties": {"$ref": "#/$defs/no_value_key"}},
    ],
}
"""JSON Schema of JSON without a `value` key anywhere (`$defs/no_value_key` of the published schema).

pydantic cannot say "no key named value at any depth" of the keys a model does not name, so the
schema generator points the `additionalProperties` of each of `NO_VALUE_KEY_MODELS` at this.
"""

_NO_VALUE_KEY: dict[str, Any] = {"not": {"required": ["value"]}}


def value_key_paths(obj: Any, where: str) -> list[str]:
    """Where a `value` key sits in `obj` (`observed.env[0].value`): a secret_delivery never holds one."""
    if isinstance(obj, Mapping):
        found = [f"{where}.value"] if "value" in obj else []
        return found + [p for k, v in obj.items() for p in value_key_paths(v, f"{where}.{k}")]
    if isinstance(obj, list | tuple):
        return [p for i, v in enumerate(obj) for p in value_key_paths(v, f"{where}[{i}]")]
    return []


VALUE_KEY_TEXT = "a secret_delivery record never holds the value (record `fingerprint` instead)"


def _refuse_value_keys(data: Any) -> Any:
    """Before field checks: a value key anywhere is the one problem that matters."""
    paths = value_key_paths(data, "")
    if paths:
        raise rule_broken(*((p.lstrip("."), VALUE_KEY_TEXT) for p in paths))
    return data


class SecretDeliveryObserved(Payload):
    """Whether a container got its secret, proven by keyed fingerprint (`observed` of secret_delivery)."""

    model_config = ConfigDict(
        json_schema_extra={
            **_NO_VALUE_KEY,
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
        }
    )

    container: NonEmpty
    path: NonEmpty
    """Vault path the value comes from."""
    key: NonEmpty
    """Key at that path."""
    delivered: StrictBool
    matches_vault: StrictBool | None
    """null when it could not be compared."""
    fingerprint: Fingerprint | None
    """HMAC-SHA256 of the delivered value under a key kept outside the bundle; null when none was delivered."""
    literal_reference: StrictBool | None = None
    """The container showed the literal `vault:PATH#KEY` (not mutated); absent in older records."""
    deciding_object: Text | None = None
    """When not delivered: the object that decided the refused connection to Vault (the connectivity
    model's, e.g. `PeerAuthentication istio-system/default`); absent in older records."""

    _no_value_key = model_validator(mode="before")(_refuse_value_keys)

    @model_validator(mode="after")
    def _consistent(self) -> SecretDeliveryObserved:
        if self.delivered and self.fingerprint is None:
            raise rule_broken(("fingerprint", "a delivered value needs its fingerprint"))
        if self.matches_vault and not self.delivered:
            raise rule_broken(("matches_vault", "true although the value was not delivered"))
        return self


class SecretDeliveryExpected(Payload):
    """What a scenario expects of a delivery (`expected` of secret_delivery); never the value itself."""

    model_config = ConfigDict(json_schema_extra=_NO_VALUE_KEY)

    container: NonEmpty | None = None
    path: NonEmpty | None = None
    key: NonEmpty | None = None
    delivered: StrictBool | None = None
    matches_vault: StrictBool | None = None
    fingerprint: Fingerprint | None = None

    _no_value_key = model_validator(mode="before")(_refuse_value_keys)


NO_VALUE_KEY_MODELS: tuple[type[Payload], ...] = (SecretDeliveryObserved, SecretDeliveryExpected)
"""Payloads that must never hold a `value` key, at any depth."""


# -- mesh_policy, namespace, vault_status ---------------------------------------------------------------------


class MeshPolicyExpected(Payload):
    """The PeerAuthentication mode a scenario expects (`expected` of mesh_policy)."""

    mode: Text | None = None


class MeshPolicyObserved(Payload):
    """An effective mTLS mode and the object that decides it: a row of `mtls_table`, or a mode read back."""

    mode: Text | None = None
    """STRICT | PERMISSIVE | DISABLE | UNSET; None when the policy is missing."""
    scope: Text | None = None
    """mesh | namespace | workload | port | default."""
    deciding_object: Text | None = None
    namespace: Text | None = None
    workload: Text | None = None
    port: StrictInt | None = None
    sidecar_injection: Text | None = None


class NamespaceInjection(Payload):
    """A namespace's `istio-injection` label, expected or observed (namespace)."""

    injection: StrictBool | None = None


class VaultHealth(Payload):
    """Vault's `sys/health` as the runbook reads it (vault_status), expected or observed."""

    initialized: StrictBool | None = None
    sealed: StrictBool | None = None
    version: Text | None = None
    cluster_id: Text | None = None


# -- install, action -----------------------------------------------------------------------------------------


class AppliedObjectSummary(Payload):
    """One object an apply wrote, with its resourceVersion before (None: created) and after."""

    api_version: Text | None = None
    kind: Text | None = None
    namespace: Text | None = None
    name: Text | None = None
    resource_version_before: Text | None = None
    resource_version_after: Text | None = None


class InstallObserved(Payload):
    """What an install did (`observed` of install): commands run (live) or objects applied (sandbox)."""

    component: Text | None = None
    method: Text | None = None
    namespace: Text | None = None
    versions: dict[str, Text] | None = None
    commands: list[list[Text]] | None = None
    applied: list[AppliedObjectSummary] | None = None
    outputs: list[Text] | None = None


class ActionObserved(Payload):
    """What a step did (`observed` of action): an object applied, drift found in check mode, pods recreated."""

    kind: Text | None = None
    applied: Text | None = None
    """What applied it, e.g. "manifest mesh-mtls"."""
    resource_version_before: Text | None = None
    resource_version_after: Text | None = None
    changed: StrictBool | None = None
    drift: list[Text] | None = None
    recreated: Text | None = None


# -- finding ---------------------------------------------------------------------------------------------------


class FindingObserved(Payload):
    """What `meshbook audit` found (`observed` of finding): a stable code, its severity and the deciding objects."""

    code: Annotated[str, StringConstraints(strict=True, pattern=r"^MB[0-9]{4}$")]
    """Stable check code, e.g. MB0101 (`meshbook.audit.codes`)."""
    severity: Literal["Error", "Warning", "Info"]
    title: NonEmpty
    object: NonEmpty
    """The object the finding is about, e.g. `Pod app/app-7d9c-x`."""
    message: Text
    objects: list[NonEmpty]
    """The objects that decide it (a PeerAuthentication, a Service, a webhook configuration)."""
    remedy: Text
    """The guide's remedy."""
