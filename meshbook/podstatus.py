"""kubectl's reading of a pod: READY, STATUS and RESTARTS as its `printPod` computes them; pure.

One home for these rules, shared by the library (`kube/pods.py`, waits, messages) and the sandbox's
Table printer, so `kubectl get pods` on the sandbox and meshbook's own pod tables always agree.
Restartable init containers (native sidecars) count towards READY like containers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from meshbook.param_enums import SidecarMode

PROXY = "istio-proxy"  # Istio's sidecar container, as the injector names it


def dig(obj: Any, *path: str) -> Any:
    """The value at `path` in nested dicts, or None when a step is missing."""
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime (UTC when no zone is given); None if unset or invalid."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _terminated_reason(terminated: Mapping[str, Any], prefix: str = "") -> str:
    if terminated.get("reason"):
        return prefix + str(terminated["reason"])
    if terminated.get("signal"):
        return f"{prefix}Signal:{terminated['signal']}"
    return f"{prefix}ExitCode:{terminated.get('exitCode', 0)}"


def condition_true(pod: Mapping[str, Any], kind: str) -> bool:
    """Whether any status condition `kind` (Ready, ...) is True, as kubectl's `hasPodReadyCondition` reads it."""
    return any(c.get("type") == kind and c.get("status") == "True" for c in dig(pod, "status", "conditions") or [])


def _initialized(pod: Mapping[str, Any]) -> bool:
    """kubectl's `isPodInitializedConditionTrue`: the FIRST Initialized condition decides, not any."""
    found = next((c for c in dig(pod, "status", "conditions") or [] if c.get("type") == "Initialized"), None)
    return found is not None and found.get("status") == "True"


def is_ready(pod: Mapping[str, Any]) -> bool:
    """Ready as `kubectl wait --for=condition=Ready` means it, and not being deleted."""
    return condition_true(pod, "Ready") and not is_terminating(pod)


def is_terminating(pod: Mapping[str, Any]) -> bool:
    return bool(dig(pod, "metadata", "deletionTimestamp"))


@dataclass(frozen=True)
class PodSummary:
    """kubectl's READY, STATUS and RESTARTS of one pod, and when a counted container last exited.

    `last_restart` is what the RESTARTS cell's "(5m ago)" is measured from; None when no counted
    container has a last termination time.
    """

    ready: str
    status: str
    restarts: int
    last_restart: datetime | None


def _latest(current: datetime | None, container_status: Mapping[str, Any]) -> datetime | None:
    finished = parse_time(dig(container_status, "lastState", "terminated", "finishedAt"))
    return max(filter(None, (current, finished)), default=None)


def summarize_pod(pod: Mapping[str, Any]) -> PodSummary:
    """READY, STATUS, RESTARTS and the last restart, computed as kubectl's `printPod` computes them."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    inits = spec.get("initContainers") or []
    sidecars = {c.get("name") for c in inits if c.get("restartPolicy") == "Always"}
    total = len(spec.get("containers") or []) + sum(1 for c in inits if c.get("restartPolicy") == "Always")
    ready = restarts = sidecar_restarts = 0
    last: datetime | None = None
    last_sidecar: datetime | None = None
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    for index, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += cs.get("restartCount", 0)
        last = _latest(last, cs)
        is_sidecar = cs.get("name") in sidecars
        if is_sidecar:
            sidecar_restarts += cs.get("restartCount", 0)
            last_sidecar = _latest(last_sidecar, cs)
        terminated, waiting = dig(cs, "state", "terminated"), dig(cs, "state", "waiting")
        if terminated is not None and terminated.get("exitCode", 0) == 0:
            continue
        if is_sidecar and cs.get("started") is True:
            ready += bool(cs.get("ready"))
            continue
        if terminated is not None:
            reason = _terminated_reason(terminated, "Init:")
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{len(inits)}"
        initializing = True
        break

    if not initializing or _initialized(pod):
        restarts, last = sidecar_restarts, last_sidecar
        running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += cs.get("restartCount", 0)
            last = _latest(last, cs)
            terminated, waiting = dig(cs, "state", "terminated"), dig(cs, "state", "waiting")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None:
                reason = _terminated_reason(terminated)
            elif cs.get("ready") and dig(cs, "state", "running") is not None:
                running = True
                ready += 1
        if reason == "Completed" and running:
            reason = "Running" if condition_true(pod, "Ready") else "NotReady"

    if is_terminating(pod) and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif is_terminating(pod) and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return PodSummary(f"{ready}/{total}", reason, restarts, last)


def pod_summary(pod: Mapping[str, Any]) -> tuple[str, str, int]:
    """kubectl's READY, STATUS and RESTARTS (as a count), computed as its `printPod` does."""
    summary = summarize_pod(pod)
    return summary.ready, summary.status, summary.restarts


def describe_pod(pod: Mapping[str, Any]) -> str:
    """One line for messages: `app-7d9f-x2 1/2 Init:CrashLoopBackOff (restarts 4)`."""
    ready, status, restarts = pod_summary(pod)
    return f"{dig(pod, 'metadata', 'name')} {ready} {status} (restarts {restarts})"


def describe_pods(pods: Iterable[Mapping[str, Any]]) -> str:
    lines = sorted(describe_pod(p) for p in pods)
    return ", ".join(lines) if lines else "no pods"


# -- when waiting longer cannot make a pod Ready -------------------------------------------------------

# Waiting reasons that no amount of waiting cures: the image reference itself is wrong or unpullable.
IMAGE_ERRORS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")


def _statuses(pod: Mapping[str, Any]) -> list[tuple[bool, Mapping[str, Any]]]:
    status = pod.get("status") or {}
    inits = [(True, s) for s in status.get("initContainerStatuses") or []]
    return inits + [(False, s) for s in status.get("containerStatuses") or []]


def _sidecars_ready(pod: Mapping[str, Any], before_init: str | None) -> bool:
    """Whether the pod's sidecars (native sidecars started before `before_init`, or every sidecar and
    istio-proxy for a main container) are ready: while one is not, a crash may still be a race."""
    spec = pod.get("spec") or {}
    names: list[str] = []
    for c in spec.get("initContainers") or []:
        if before_init is not None and c.get("name") == before_init:
            break
        if c.get("restartPolicy") == "Always":
            names.append(str(c.get("name")))
    if before_init is None:
        names += [str(c.get("name")) for c in spec.get("containers") or [] if c.get("name") == "istio-proxy"]
    ready = {str(s.get("name")): bool(s.get("ready")) for _, s in _statuses(pod)}
    return all(ready.get(name, False) for name in names)


class CrashHistory:
    """Each container's failed terminations as a watch shows them, to tell a crash loop from a race.

    A container whose last `repeats` terminations ended the same way (exit code and reason), now in
    CrashLoopBackOff, with every sidecar it depends on ready, will not become Ready by waiting: nothing
    that could change its next attempt is still pending. An image that cannot be pulled is hopeless at once.
    """

    def __init__(self, repeats: int) -> None:
        self.repeats = repeats
        self._seen: dict[tuple[str, str], list[tuple[Any, ...]]] = {}

    @staticmethod
    def crashing(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """The pod's container statuses in CrashLoopBackOff or an image error, init containers first."""
        reasons = ("CrashLoopBackOff", *IMAGE_ERRORS)
        return [s for _, s in _statuses(pod) if (dig(s, "state", "waiting") or {}).get("reason") in reasons]

    def hopeless(self, pods: Iterable[Mapping[str, Any]]) -> str | None:
        """Why these pods cannot become Ready by waiting, or None while they still might."""
        for pod in pods:
            if is_terminating(pod):
                continue
            name = dig(pod, "metadata", "name")
            for is_init, cs in _statuses(pod):
                container = str(cs.get("name"))
                kind = "init container" if is_init else "container"
                waiting = dig(cs, "state", "waiting") or {}
                if waiting.get("reason") in IMAGE_ERRORS:
                    detail = f": {waiting['message']}" if waiting.get("message") else ""
                    return f"pod {name}: {kind} {container} cannot start, {waiting['reason']}{detail}"
                last = dig(cs, "lastState", "terminated")
                if not last or not last.get("exitCode"):
                    continue
                history = self._seen.setdefault((str(dig(pod, "metadata", "uid")), container), [])
                # One termination, however often the watch shows it: its container ID (its end time only
                # without one: a meshbook sandbox serves the same end time earlier once its clock skipped ahead).
                instance = last.get("containerID") or last.get("finishedAt")
                entry = (instance, last.get("exitCode"), last.get("reason"))
                if not history or history[-1] != entry:
                    history.append(entry)
                recent = history[-self.repeats :]
                same = len(recent) >= self.repeats and len({(e[1], e[2]) for e in recent}) == 1
                settled = _sidecars_ready(pod, container if is_init else None)
                if same and waiting.get("reason") == "CrashLoopBackOff" and settled:
                    return (
                        f"pod {name}: {kind} {container} crashed {len(recent)} times in a row the same way "
                        f"(exit code {last.get('exitCode')}, {last.get('reason') or 'Error'}) and is in "
                        "CrashLoopBackOff with its sidecars ready: waiting longer cannot make it Ready"
                    )
        return None


def sidecar_mode(pod: Mapping[str, Any]) -> SidecarMode | None:
    """The Istio sidecar mode the injector gave this pod, read from what it left in the spec.

    The one home of this reading (the library's pod rows, `explain` and the sandbox use it): istio-proxy
    among the init containers is native; among the containers it is classic when istio-init is an init
    container, else CNI (istio-validation, or nothing); no istio-proxy at all is None.
    """
    spec = pod.get("spec") or {}
    init_names = {c.get("name") for c in spec.get("initContainers") or []}
    if PROXY in init_names:
        return SidecarMode.NATIVE
    if any(c.get("name") == PROXY for c in spec.get("containers") or []):
        return SidecarMode.CLASSIC if "istio-init" in init_names else SidecarMode.CNI
    return None
