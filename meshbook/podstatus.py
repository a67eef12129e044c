"""kubectl's reading of a pod: READY, STATUS and RESTARTS as its `printPod` computes them; pure.

One home for these rules, shared by the library (`kube/pods.py`, waits, messages) and the sandbox's
Table printer, so `kubectl get pods` on the sandbox and meshbook's own pod tables always agree.
Restartable init containers (native sidecars) count towards READY like containers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def dig(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _terminated_reason(terminated: Mapping[str, Any], prefix: str = "") -> str:
    if terminated.get("reason"):
        return prefix + str(terminated["reason"])
    if terminated.get("signal"):
        return f"{prefix}Signal:{terminated['signal']}"
    return f"{prefix}ExitCode:{terminated.get('exitCode', 0)}"


def condition_true(pod: Mapping[str, Any], kind: str) -> bool:
    """Whether the pod's status condition `kind` (Ready, Initialized, ...) is True."""
    return any(c.get("type") == kind and c.get("status") == "True" for c in dig(pod, "status", "conditions") or [])


def is_ready(pod: Mapping[str, Any]) -> bool:
    """Ready as `kubectl wait --for=condition=Ready` means it, and not being deleted."""
    return condition_true(pod, "Ready") and not is_terminating(pod)


def is_terminating(pod: Mapping[str, Any]) -> bool:
    return bool(dig(pod, "metadata", "deletionTimestamp"))


def pod_summary(pod: Mapping[str, Any]) -> tuple[str, str, int]:
    """kubectl's READY, STATUS and RESTARTS (as a count), computed as its `printPod` does."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    inits = spec.get("initContainers") or []
    sidecars = {c.get("name") for c in inits if c.get("restartPolicy") == "Always"}
    total = len(spec.get("containers") or []) + len(sidecars)
    ready = restarts = sidecar_restarts = 0
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    initializing = False
    for index, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += cs.get("restartCount", 0)
        is_sidecar = cs.get("name") in sidecars
        if is_sidecar:
            sidecar_restarts += cs.get("restartCount", 0)
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
    if not initializing or condition_true(pod, "Initialized"):
        restarts = sidecar_restarts
        running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += cs.get("restartCount", 0)
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
    return f"{ready}/{total}", reason, restarts


def describe_pod(pod: Mapping[str, Any]) -> str:
    """One line for messages: `app-7d9f-x2 1/2 Init:CrashLoopBackOff (restarts 4)`."""
    ready, status, restarts = pod_summary(pod)
    return f"{dig(pod, 'metadata', 'name')} {ready} {status} (restarts {restarts})"


def describe_pods(pods: Iterable[Mapping[str, Any]]) -> str:
    lines = sorted(describe_pod(p) for p in pods)
    return ", ".join(lines) if lines else "no pods"
