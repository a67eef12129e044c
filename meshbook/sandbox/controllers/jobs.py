"""The Job controller: run pods to completion, count successes and failures, finish Complete or Failed.

What it does, as the real controller does it for NonIndexed Jobs: keeps up to `parallelism` pods
running until `completions` pods have succeeded (without `completions`, until one succeeded and the
rest finished); counts each pod that ends in phase Failed (restartPolicy Never) and fails the Job
once more than `backoffLimit` have; with restartPolicy OnFailure the kubelet restarts containers in
place, and the Job fails once the restarts of its running pods reach `backoffLimit`. Replacements for
failed pods wait an exponential back-off (the kubelet's delays, in cluster time: simulated at instant
speed, `clock.py`), and deadlines and TTLs are measured on the same clock.
`activeDeadlineSeconds` fails a Job with DeadlineExceeded. Finished Jobs keep their pods (garbage
collection removes them with the Job). Conditions are those of 1.33: SuccessCriteriaMet then Complete,
FailureTarget then Failed.

`spec.suspend` stops the pods and sets the Suspended condition (resuming restarts the clock);
`ttlSecondsAfterFinished` deletes a finished Job, as the TTL-after-finished controller does.

Not modelled: Indexed completion, pod failure and success policies, and the job-tracking finalizer
(a pod is counted once by its uid; after a restart of the sandbox the pods already finished are taken
as counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from dataclasses import dataclass
from typing import Any

from meshbook.param_enums import SandboxSpeed
from meshbook.podstatus import parse_time
from meshbook.sandbox.apiserver import events
from meshbook.sandbox.apiserver.verbs import ApiCore, DeleteOptions
from meshbook.sandbox.clock import current as current_clock
from meshbook.sandbox.config import delays
from meshbook.sandbox.controllers.base import Key
from meshbook.sandbox.controllers.workloads import _WorkloadController, pod_active, pod_ready
from meshbook.sandbox.storage.store import Object, StoreError, WatchEvent, now_rfc3339

COMPONENT = "job-controller"


@dataclass(frozen=True)
class Outcome:
    """How a Job ends: its conditions (the target first, as 1.31+ writes them), reason and message."""

    conditions: tuple[str, str]
    reason: str
    message: str
    event_type: str


COMPLETE = Outcome(
    ("SuccessCriteriaMet", "Complete"), "CompletionsReached", "Reached expected number of succeeded pods", "Normal"
)
BACKOFF_LIMIT_EXCEEDED = Outcome(
    ("FailureTarget", "Failed"), "BackoffLimitExceeded", "Job has reached the specified backoff limit", "Warning"
)
DEADLINE_EXCEEDED = Outcome(
    ("FailureTarget", "Failed"), "DeadlineExceeded", "Job was active longer than specified deadline", "Warning"
)
#: spec.suspend -> the Suspended condition's (reason, message), also the Event's message.
SUSPENSION = {True: ("JobSuspended", "Job suspended"), False: ("JobResumed", "Job resumed")}
#: The Event each outcome leaves on the Job (reason, message), as `kubectl describe job` shows.
OUTCOME_EVENTS = {
    COMPLETE: ("Completed", "Job completed"),
    BACKOFF_LIMIT_EXCEEDED: ("BackoffLimitExceeded", "Job has reached the specified backoff limit"),
    DEADLINE_EXCEEDED: ("DeadlineExceeded", "Job was active longer than specified deadline"),
}


def finished(job: Object) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def _restarts(pod: Object) -> int:
    status = pod.get("status") or {}
    if status.get("phase") not in ("Pending", "Running"):
        return 0
    return sum(
        int(c.get("restartCount", 0))
        for key in ("initContainerStatuses", "containerStatuses")
        for c in status.get(key) or []
    )


class JobController(_WorkloadController):
    name = "job"
    group = "batch"
    plural = "jobs"

    def __init__(self, core: ApiCore, speed: SandboxSpeed) -> None:
        super().__init__(core, speed)
        self._counted: dict[str, set[str]] = {}  # job uid -> uids of finished pods already counted
        self._not_before: dict[str, float] = {}  # job uid -> clock time before which no pod is replaced
        self._waits: set[asyncio.Task[None]] = set()  # back-offs under way (cluster time: `clock.py`)

    def _counted_for(self, job: Object, pods: list[Object]) -> set[str]:
        uid = job["metadata"]["uid"]
        if uid not in self._counted:
            # A Job this process has not seen: if it was started before, its finished pods are counted.
            started = bool((job.get("status") or {}).get("startTime"))
            self._counted[uid] = {p["metadata"]["uid"] for p in pods if started and not pod_active(p)}
        return self._counted[uid]

    async def reconcile(self, key: Key) -> None:
        job = self.core.store.get(self.rt, *key)
        if job is None:
            return
        if job["metadata"].get("deletionTimestamp"):
            return
        if finished(job):
            await self._expire(job)
            return
        status = copy.deepcopy(job.get("status") or {})
        pods = self.owned_pods(job)
        counted = self._counted_for(job, pods)
        new_succeeded = [
            p for p in pods if p.get("status", {}).get("phase") == "Succeeded" and p["metadata"]["uid"] not in counted
        ]
        new_failed = [
            p for p in pods if p.get("status", {}).get("phase") == "Failed" and p["metadata"]["uid"] not in counted
        ]
        counted.update(p["metadata"]["uid"] for p in new_succeeded + new_failed)
        succeeded = status.get("succeeded", 0) + len(new_succeeded)
        failed = status.get("failed", 0) + len(new_failed)
        active = [p for p in pods if pod_active(p)]
        now = now_rfc3339()
        if self._suspension(job, status, now):
            for pod in active:
                await self.delete_pod(pod)
            self._write(job, status, succeeded, failed, [], None, now)
            return
        status.setdefault("startTime", now)
        if new_failed:  # the next pod waits 10 s, 20 s, 40 s ... after the last failure (cluster time)
            wait = min(delays(self.speed).backoff * 2 ** (failed - 1), delays(self.speed).backoff_cap)
            self._not_before[job["metadata"]["uid"]] = current_clock().time() + wait
        outcome = self._outcome(job, succeeded, failed, active, status["startTime"])
        if outcome is not None and outcome.conditions[-1] == "Failed":
            failed += len(active)  # the running pods are stopped and count as failed
            for pod in active:
                await self.delete_pod(pod)
            active = []
        elif outcome is None:
            active = await self._start_pods(job, succeeded, active)
        self._write(job, status, succeeded, failed, active, outcome, now)

    def _suspension(self, job: Object, status: dict[str, Any], now: str) -> bool:
        """Record a change of `spec.suspend` in the Suspended condition; True while suspended."""
        suspended = bool(job["spec"].get("suspend"))
        conditions = list(status.get("conditions") or [])
        current = next((c for c in conditions if c.get("type") == "Suspended"), None)
        was_suspended = current is not None and current.get("status") == "True"
        if suspended == was_suspended:
            return suspended  # no change (a Job never suspended has no Suspended condition)
        reason, message = SUSPENSION[suspended]
        condition = {"type": "Suspended", "status": str(suspended), "lastProbeTime": now, "lastTransitionTime": now,
                     "reason": reason, "message": message}  # fmt: skip
        status["conditions"] = [c for c in conditions if c.get("type") != "Suspended"] + [condition]
        if not suspended:
            status["startTime"] = now  # a resumed Job starts again
        events.record(self.core, job, "Normal", "Suspended" if suspended else "Resumed", message, COMPONENT)
        return suspended

    async def _expire(self, job: Object) -> None:
        """ttlSecondsAfterFinished: the TTL controller deletes a finished Job (Foreground) when it is due."""
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        conditions = (job.get("status") or {}).get("conditions") or []
        ended = next((c.get("lastTransitionTime") for c in conditions if c.get("type") in ("Complete", "Failed")), None)
        now = current_clock().now()
        since = (now - (parse_time(ended) or now)).total_seconds()
        meta = job["metadata"]
        if since < ttl:
            asyncio.get_running_loop().call_later(ttl - since + 0.05, self.enqueue, (meta["namespace"], meta["name"]))
            return
        with contextlib.suppress(StoreError):
            await self.core.delete(self.rt, meta["namespace"], meta["name"], DeleteOptions("Foreground"))

    def _outcome(self, job: Object, succeeded: int, failed: int, active: list[Object], start: str) -> Outcome | None:
        spec = job["spec"]
        completions = spec.get("completions")
        if completions is not None and succeeded >= completions:
            return COMPLETE
        if completions is None and succeeded > 0 and not active:
            return COMPLETE
        limit = spec.get("backoffLimit", 6)
        if failed > limit:
            return BACKOFF_LIMIT_EXCEEDED
        if spec["template"]["spec"].get("restartPolicy") == "OnFailure":
            restarts = sum(_restarts(p) for p in active)
            if restarts > 0 if limit == 0 else restarts >= limit:
                return BACKOFF_LIMIT_EXCEEDED
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None:
            now = current_clock().now()
            elapsed = (now - (parse_time(start) or now)).total_seconds()
            if elapsed >= deadline:
                return DEADLINE_EXCEEDED
            key = (job["metadata"]["namespace"], job["metadata"]["name"])
            asyncio.get_running_loop().call_later(deadline - elapsed + 0.05, self.enqueue, key)
        return None

    async def _enqueue_after(self, seconds: float, key: tuple[str, str]) -> None:
        await current_clock().sleep(seconds)
        self.enqueue(key)

    async def _start_pods(self, job: Object, succeeded: int, active: list[Object]) -> list[Object]:
        spec = job["spec"]
        completions = spec.get("completions")
        parallelism = spec.get("parallelism", 1)
        if completions is None:
            want = 0 if succeeded > 0 else parallelism
        else:
            want = min(parallelism, completions - succeeded)
        missing = want - len(active)
        if missing <= 0:
            return active
        wait = self._not_before.get(job["metadata"]["uid"], 0.0) - current_clock().time()
        key = (job["metadata"]["namespace"], job["metadata"]["name"])
        if wait > 0:
            waiting = asyncio.ensure_future(self._enqueue_after(wait, key))
            self._waits.add(waiting)
            waiting.add_done_callback(self._waits.discard)
            return active
        for _ in range(missing):
            try:
                await self.create_pod(job, None, {})
            except StoreError as exc:
                events.record(self.core, job, "Warning", "FailedCreate", f"Error creating: {exc.message}", COMPONENT)
                raise  # retried with back-off by the controller loop
        created = [p for p in self.owned_pods(job) if pod_active(p)]
        known = {p["metadata"]["uid"] for p in active}
        for pod in created:
            if pod["metadata"]["uid"] not in known:
                events.record(
                    self.core, job, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}", COMPONENT
                )
        return created

    def _write(
        self,
        job: Object,
        status: dict[str, Any],
        succeeded: int,
        failed: int,
        active: list[Object],
        outcome: Outcome | None,
        now: str,
    ) -> None:
        status.update(
            active=len(active),
            succeeded=succeeded,
            failed=failed,
            ready=sum(1 for p in active if pod_ready(p)),
            terminating=0,
            uncountedTerminatedPods={},
        )
        for key in ("active", "succeeded", "failed"):
            if not status[key]:
                del status[key]  # omitempty int32 counters
        if outcome is not None:
            conditions = list(status.get("conditions") or [])
            for kind in outcome.conditions:
                conditions.append(
                    {"type": kind, "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
                     "reason": outcome.reason, "message": outcome.message}
                )  # fmt: skip
            status["conditions"] = conditions
            if outcome is COMPLETE:
                status["completionTime"] = now
            reason, message = OUTCOME_EVENTS[outcome]
            events.record(self.core, job, outcome.event_type, reason, message, COMPONENT)
        if job.get("status") == status:
            return
        updated = copy.copy(job)
        updated["metadata"] = copy.deepcopy(job["metadata"])
        updated["status"] = status
        self.core.store.update(self.rt, updated)

    def on_event(self, event: WatchEvent) -> None:
        if event.rt_key == self.rt.storage_key and event.type == "DELETED":
            uid = event.object["metadata"]["uid"]
            self._counted.pop(uid, None)
            self._not_before.pop(uid, None)
        super().on_event(event)
