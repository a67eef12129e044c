"""Report rows from typed evidence records: one row per pod state, secret delivery and mesh policy.

Each kind's payload model says which keys exist, so a row is attribute reads rather than guarded dict
digging. Rows are built once, when a run is read (`meshbook.report.rundir`): the typed records are
then let go, and every renderer and DataFrame reads the same plain rows.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from meshbook.evidence.payloads import Kind
from meshbook.evidence.records import ActionRecord, AnyRecord, MeshPolicyRecord, PodStateRecord, SecretDeliveryRecord

__all__ = [
    "EXPECTATION_KINDS",
    "KindRows",
    "Row",
    "delivery_rows",
    "kind_rows",
    "pod_rows",
    "policy_rows",
    "workload_of",
]

Row = dict[str, Any]

EXPECTATION_KINDS = (Kind.POD_STATE, Kind.SECRET_DELIVERY, Kind.MESH_POLICY)
"""Kinds whose records are expectations (counted per notebook, test cases in junit.xml)."""

# Deployment pods: <name>-<pod-template-hash>-<5 chars>; StatefulSet pods: <name>-<ordinal>.
_DEPLOYMENT_POD = re.compile(r"^(?P<name>.+)-[a-z0-9]{6,10}-[a-z0-9]{5}$")
_STATEFUL_POD = re.compile(r"^(?P<name>.+)-[0-9]+$")


@functools.lru_cache(maxsize=4096)  # a run records the same pods again and again
def workload_of(pod: str) -> str:
    """The workload a pod name belongs to (`app-7d9f8c6b5-x2x9z` -> `app`, `vault-0` -> `vault`)."""
    for pattern in (_DEPLOYMENT_POD, _STATEFUL_POD):
        match = pattern.match(pod)
        if match:
            return match.group("name")
    return pod


@dataclass(frozen=True)
class KindRows:
    """A run's rows per kind, in record order."""

    pods: list[Row] = field(default_factory=list)
    deliveries: list[Row] = field(default_factory=list)
    policies: list[Row] = field(default_factory=list)


def kind_rows(run_id: str, records: Iterable[AnyRecord]) -> KindRows:
    """Every row the records give (`records` is read once)."""
    records = list(records)
    return KindRows(pod_rows(run_id, records), delivery_rows(run_id, records), policy_rows(run_id, records))


def _where(run_id: str, r: AnyRecord) -> Row:
    """The columns every row starts with: which run, record, time, notebook and step it comes from."""
    return {"run_id": run_id, "seq": r.seq, "at": r.at, "notebook": r.notebook, "step": r.step}


def pod_rows(run_id: str, records: Iterable[AnyRecord]) -> list[Row]:
    """One row per `pod_state` record: expected and observed READY, sidecar, phase, restarts."""
    rows = []
    for r in records:
        if not isinstance(r, PodStateRecord):
            continue
        observed, expected = r.observed, r.expected
        namespace, _, pod = r.subject.partition("/")
        rows.append(
            {
                **_where(run_id, r),
                "namespace": namespace if pod else "",
                "pod": pod or namespace,
                "workload": workload_of(pod or namespace),
                "expected_ready": expected.ready if expected else None,
                "ready": observed.ready if observed else None,
                "status": (observed.status if observed.status is not None else observed.phase) if observed else None,
                "sidecar": observed.sidecar if observed else None,
                "containers": list(observed.containers) if observed else [],
                "init_containers": list(observed.init_containers) if observed else [],
                "restarts": observed.restarts if observed else None,
                "restarted": [c.model_dump(mode="json") for c in observed.restarted or []] if observed else [],
                "outcome": r.outcome.value,
                "reason": r.reason,
            }
        )
    return rows


def delivery_rows(run_id: str, records: Iterable[AnyRecord]) -> list[Row]:
    """One row per `secret_delivery` record: container, delivered, matches_vault, fingerprint (no value)."""
    rows = []
    for r in records:
        if not isinstance(r, SecretDeliveryRecord):
            continue
        observed = r.observed
        parts = r.subject.split("/")
        rows.append(
            {
                **_where(run_id, r),
                "subject": r.subject,
                "namespace": parts[0] if len(parts) > 1 else "",
                "workload": parts[1] if len(parts) > 2 else parts[-1],
                "container": observed.container if observed else (parts[-1] if len(parts) > 2 else ""),
                "path": observed.path if observed else None,
                "key": observed.key if observed else None,
                "delivered": observed.delivered if observed else None,
                "matches_vault": observed.matches_vault if observed else None,
                "fingerprint": observed.fingerprint if observed else None,
                "expected_fingerprint": r.expected.fingerprint if r.expected else None,
                "literal_reference": observed.literal_reference if observed else None,
                "deciding_object": observed.deciding_object if observed else None,
                "outcome": r.outcome.value,
                "reason": r.reason,
            }
        )
    return rows


def policy_rows(run_id: str, records: Iterable[AnyRecord]) -> list[Row]:
    """`mesh_policy` records and applied PeerAuthentications: subject, mode, deciding object, outcome."""
    rows = []
    for r in records:
        if isinstance(r, MeshPolicyRecord):
            observed = r.observed
            mode, source = (observed.mode if observed else None), "observed"
            deciding = (observed.deciding_object if observed else None) or ""
            scope = observed.scope if observed else None
            expected_mode = r.expected.mode if r.expected else None
        elif isinstance(r, ActionRecord) and r.observed is not None and r.observed.kind == "PeerAuthentication":
            applied = r.observed.applied or ""
            mode = "PERMISSIVE" if "permissive" in applied else "STRICT" if "mtls" in applied else None
            source, deciding = "applied", f"PeerAuthentication {r.subject} ({applied})"
            scope, expected_mode = None, None
        else:
            continue
        rows.append(
            {
                **_where(run_id, r),
                "subject": r.subject,
                "source": source,
                "expected_mode": expected_mode,
                "mode": mode,
                "deciding_object": deciding,
                "scope": scope,
                "outcome": r.outcome.value,
                "reason": r.reason,
            }
        )
    return rows
