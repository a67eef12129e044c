"""The scenario expectations: pods Ready with the guide's READY counts, and the secret delivered.

Each check waits on watches (never sleeps) up to the configured timeout, then judges what it sees and
writes evidence. A failing check explains itself with the objects that decided it: the pod status
kubectl would show and, for a secret that did not arrive, the mesh connectivity model's verdict for the
connection that failed (e.g. `PeerAuthentication istio-system/default STRICT ...`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Protocol

import pandas as pd

from meshbook.errors import MeshbookError, WaitTimeoutError
from meshbook.evidence import Kind, RecordOutcome
from meshbook.kube.apply import Applier
from meshbook.kube.event_times import EventsAfter
from meshbook.kube.logs import container_log, selector_string
from meshbook.kube.rollouts import creation_failure, failed_webhook, mount_failure
from meshbook.kube.waits import HopelessKind, WaitAbandoned
from meshbook.mesh.explain import explain_webhook_call
from meshbook.params import RunbookParams
from meshbook.podstatus import CrashHistory
from meshbook.runbook.context import RunContext


class Session(Protocol):
    """What a check needs of the notebook's session: parameters, the cluster, and a way to record evidence."""

    params: RunbookParams
    context: RunContext
    applier: Applier

    def record(
        self,
        kind: Kind,
        subject: str,
        *,
        outcome: RecordOutcome,
        expected: Any = None,
        observed: Any = None,
        reason: str = "",
    ) -> None: ...


@dataclass(frozen=True)
class ExpectationResult:
    """One expectation's verdict, a row of the notebook's expectations table (`Session.finish`).

    Not an evidence record's outcome (`RecordOutcome`): one expectation (say "pods ready" in a namespace)
    sums up several records, and its row says in words what was expected and observed.
    """

    COLUMNS: ClassVar[tuple[str, ...]] = ("expectation", "subject", "expected", "observed", "passed", "reason")

    expectation: str
    subject: str
    expected: str
    observed: str
    passed: bool
    reason: str = ""

    def row(self) -> tuple[Any, ...]:
        return (self.expectation, self.subject, self.expected, self.observed, self.passed, self.reason)


def _workload(session: Session, namespace: str, name: str) -> tuple[str, dict[str, Any]] | None:
    for kind in ("Deployment", "StatefulSet", "DaemonSet"):
        obj = session.applier.read("apps/v1", kind, name, namespace)
        if obj is not None:
            return kind, obj
    return None


def check_pods_ready(
    session: Session, namespace: str, expected: Mapping[str, str], counts: Mapping[str, int]
) -> tuple[ExpectationResult, pd.DataFrame]:
    from meshbook.kube.pods import pod_snapshot
    from meshbook.kube.waits import wait_for_pods_ready

    timeout = session.params.timeouts.pods_ready
    problems: list[str] = []
    for name in expected:
        found = _workload(session, namespace, name)
        if found is None:
            problems.append(f"workload {namespace}/{name} does not exist")
            continue
        kind, obj = found
        selector = selector_string((obj.get("spec") or {}).get("selector") or {})
        try:
            wait_for_pods_ready(
                session.context.api,
                namespace,
                label_selector=selector,
                count=counts.get(name),
                timeout=timeout,
                give_up_after_crashes=session.params.timeouts.give_up_after_crashes,
                creation_failure=partial(
                    creation_failure, session.context.api, namespace, kind, obj, EventsAfter(time.time())
                ),
                start_failure=partial(mount_failure, session.context.api, namespace),
            )
        except WaitTimeoutError as exc:
            problems.append(str(exc))
        except WaitAbandoned as exc:
            details = _crash_details(session, namespace, selector)
            refused_by_webhook = exc.cause.kind is HopelessKind.NOT_CREATED and failed_webhook(exc.cause.reason)
            if not details and refused_by_webhook:
                details = f"; the model says: {explain_webhook_call(session.context.api, session.params)}"
            problems.append(str(exc) + details)
    frame = pod_snapshot(session.context.api, namespace)
    any_restarts = "restarts" in frame and any(int(n or 0) > 0 for n in frame["restarts"])
    restarted = _restarted_containers(session, namespace) if any_restarts else {}
    observed: dict[str, list[str]] = {}
    for row in frame.to_dict("records"):
        observed.setdefault(str(row["workload"]), []).append(str(row["ready"]))
        pod_state = {
            k: _jsonable(row.get(k))
            for k in ("ready", "containers", "init_containers", "sidecar", "phase", "restarts", "status")
        }
        if restarted.get(str(row["pod"])):
            pod_state["restarted"] = restarted[str(row["pod"])]
        want = expected.get(str(row["workload"]))
        if want is None:
            outcome = RecordOutcome.INFO
        else:
            is_ready = row["ready"] == want and row["status"] == "Running"
            outcome = RecordOutcome.PASS if is_ready else RecordOutcome.FAIL
        session.record(
            Kind.POD_STATE,
            f"{namespace}/{row['pod']}",
            outcome=outcome,
            expected={"ready": want} if want else None,
            observed=pod_state,
            reason=f"READY {row['ready']}, {row['status']}",
        )
    for name, ready in expected.items():
        seen = observed.get(name, [])
        want_count = counts.get(name)
        if not seen or any(r != ready for r in seen) or (want_count is not None and len(seen) != want_count):
            problems.append(
                f"{namespace}/{name}: expected READY {ready}"
                + (f" x{want_count}" if want_count else "")
                + f", observed {', '.join(seen) or 'no pods'}"
            )
    text = ", ".join(f"{k} {v}" for k, v in expected.items())
    seen_text = ", ".join(f"{k} {' '.join(v)}" for k, v in observed.items())
    result = ExpectationResult(
        "pods ready", namespace, text, seen_text, not problems, "; ".join(dict.fromkeys(problems))
    )
    return result, frame


VAULT_ENV_TOKEN_FAILURE = re.compile(r"failed to (request new Vault token|create vault client)", re.IGNORECASE)
"""vault-env's log lines when it could not log in to Vault (FACTS 1: slog, lowercase)."""


def _restarted_containers(session: Session, namespace: str) -> dict[str, list[dict[str, Any]]]:
    """pod -> its restarted containers: count, last exit code and reason, and whether the previous
    instance's log shows vault-env unable to get a Vault token (the log itself stays in the cluster),
    so the report can tell a container that waited for its proxy from one that crashed."""
    from meshbook.kube.pods import list_pods

    found: dict[str, list[dict[str, Any]]] = {}
    for pod in list_pods(session.context.api, namespace):
        name = str(pod["metadata"]["name"])
        status = pod.get("status") or {}
        for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
            count = int(container.get("restartCount") or 0)
            if count == 0:
                continue
            last = (container.get("lastState") or {}).get("terminated") or {}
            # The last instance that ended: the previous one while a new one runs, else the current one
            # (a container waiting in back-off has not been replaced yet; `--previous` is the one before).
            running = "running" in (container.get("state") or {})
            try:
                log = container_log(
                    session.context.api, namespace, name, str(container["name"]), previous=running, tail_lines=20
                )
            except MeshbookError:
                log = ""
            found.setdefault(name, []).append(
                {
                    "container": str(container["name"]),
                    "restarts": count,
                    "exit_code": last.get("exitCode"),
                    "reason": last.get("reason"),
                    "vault_env_token_failed": bool(VAULT_ENV_TOKEN_FAILURE.search(log)),
                }
            )
            del log  # may hold anything the container printed: only the verdict above is kept
    return found


def _crash_details(session: Session, namespace: str, selector: str) -> str:
    """The crashing container's last log lines (redacted) and, for the app, the connectivity model's
    explanation of its connection to Vault: what a reader needs to act on a crash loop."""
    from meshbook.kube.pods import list_pods
    from meshbook.mesh.explain import explain_vault_access

    parts: list[str] = []
    for pod in list_pods(session.context.api, namespace, selector):
        for status in CrashHistory.crashing(pod):
            name = str(status.get("name"))
            try:
                log = container_log(
                    session.context.api,
                    namespace,
                    pod["metadata"]["name"],
                    name,
                    previous=True,
                    tail_lines=3,
                    mask=session.context.redactor.redact,
                )
            except MeshbookError:
                log = ""
            lines = " | ".join(line for line in log.splitlines() if line.strip())
            parts.append(f"{name}'s last lines: {lines or '(none)'}")
            if namespace == session.params.app.namespace:
                parts.append(f"the model says: {explain_vault_access(session.context.api, session.params, name)}")
        if parts:
            break
    return ("; " + "; ".join(parts)) if parts else ""


def _jsonable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def check_secret_delivery(session: Session, containers: list[str]) -> tuple[list[ExpectationResult], pd.DataFrame]:
    from meshbook.bankvaults.delivery import check_secret_delivery as judge
    from meshbook.bankvaults.delivery import fingerprint
    from meshbook.bankvaults.vault_access import VaultAccess
    from meshbook.kube.logs import workload_log
    from meshbook.mesh.explain import access_reason, vault_access_verdict

    p = session.params
    path, key = p.vault.secret_path, p.vault.secret_key
    subject = f"{p.app.namespace}/{p.app.name}"
    try:
        with VaultAccess(p, session.context.api) as vault:
            status = vault.status()
            expected = vault.read_secret(path, key)
    except MeshbookError as exc:
        result = ExpectationResult("secret delivered", subject, f"{path}#{key}", "Vault unreachable", False, str(exc))
        session.record(Kind.VAULT_STATUS, f"{p.vault.namespace}/vault", outcome=RecordOutcome.FAIL, reason=str(exc))
        return [result], pd.DataFrame([result.row()], columns=list(ExpectationResult.COLUMNS))
    session.context.redactor.add(expected.reveal(), label=f"{path}#{key}")
    session.record(
        Kind.VAULT_STATUS,
        f"{p.vault.namespace}/vault",
        outcome=RecordOutcome.PASS if not status.get("sealed") else RecordOutcome.FAIL,
        observed={k: status.get(k) for k in ("initialized", "sealed", "version", "cluster_id")},
    )
    results: list[ExpectationResult] = []
    rows = []
    for container in containers:
        try:
            log = workload_log(session.context.api, p.app.namespace, p.app.name, container)
        except MeshbookError as exc:
            # The container never ran (e.g. an init container before it failed): nothing was delivered,
            # and the connection that failed is the earlier container's, judged in its own row.
            reason = f"container {container} has not run: {exc}"
            session.record(
                Kind.SECRET_DELIVERY,
                f"{subject}/{container}",
                outcome=RecordOutcome.FAIL,
                expected={
                    "delivered": True,
                    "matches_vault": True,
                    "fingerprint": fingerprint(expected, session.context.fingerprint_key),
                },
                reason=reason,
            )
            result = ExpectationResult(
                "secret delivered", f"{subject}/{container}", f"{path}#{key}", "not run", False, reason
            )
            results.append(result)
            rows.append(result.row())
            continue
        delivery = judge(
            log, expected, container=container, path=path, key=key, fingerprint_key=session.context.fingerprint_key
        )
        del log  # the raw log may hold the secret: only the verdict leaves this function
        reason, observed = "", delivery.observed()
        if not delivery.delivered:
            verdict = vault_access_verdict(session.context.api, p, container)
            reason = access_reason(verdict)
            if not isinstance(verdict, str) and not verdict.allowed:  # the object the report names as deciding
                observed["deciding_object"] = verdict.deciding_object
            if delivery.literal_reference:
                reason = "the pod was not mutated (the app printed the literal vault: reference): " + reason
        session.record(
            Kind.SECRET_DELIVERY,
            f"{subject}/{container}",
            outcome=RecordOutcome.PASS if delivery.delivered else RecordOutcome.FAIL,
            expected=delivery.expected(),
            observed=observed,
            reason=reason,
        )
        result = ExpectationResult(
            "secret delivered",
            f"{subject}/{container}",
            f"{path}#{key}",
            "delivered" if delivery.delivered else "not delivered",
            delivery.delivered,
            reason,
        )
        results.append(result)
        rows.append(result.row())
    return results, pd.DataFrame(rows, columns=list(ExpectationResult.COLUMNS))
