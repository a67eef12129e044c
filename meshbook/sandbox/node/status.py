"""The pod status the kubelet reports: each container's state, and the pod's phase and conditions from them.

The pod worker (`podworker.py`) runs the containers and updates their `ContainerRun` records; this module
turns those records into the `status` the kubelet writes, keeping the transition times of conditions
that did not change. Only the clock is read here: nothing runs, nothing is stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshbook.sandbox.config import NODE_IP, pod_ip_for
from meshbook.sandbox.node.containers import ContainerLog
from meshbook.sandbox.storage.store import now_rfc3339

KUBELET_CONDITIONS = {"PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"}


@dataclass
class ContainerRun:
    """The kubelet's view of one container: state, counters and logs of this and the previous run."""

    spec: dict[str, Any]
    kind: str  # init, sidecar, main
    state: str = "waiting"  # waiting, running, terminated
    reason: str = "PodInitializing"
    message: str | None = None
    exit_code: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    ready: bool = False
    restart_count: int = 0
    last_state: dict[str, Any] = field(default_factory=dict)
    log: ContainerLog | None = None
    previous_log: ContainerLog | None = None
    container_id: str = ""

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def status(self) -> dict[str, Any]:
        image = self.spec.get("image", "")
        state: dict[str, Any]
        if self.state == "running":
            state = {"running": {"startedAt": self.started_at}}
        elif self.state == "terminated":
            state = {
                "terminated": {
                    "exitCode": self.exit_code,
                    "reason": self.reason,
                    "startedAt": self.started_at,
                    "finishedAt": self.finished_at,
                    "containerID": self.container_id,
                }
            }
        else:
            state = {"waiting": {"reason": self.reason} | ({"message": self.message} if self.message else {})}
        out: dict[str, Any] = {
            "name": self.name,
            "image": image,
            "imageID": f"{image.split('@')[0]}@sha256:{hashlib.sha256(image.encode()).hexdigest()}",
            "ready": self.ready,
            "started": self.state == "running",
            "restartCount": self.restart_count,
            "state": state,
            "lastState": self.last_state,
        }
        if self.container_id:
            out["containerID"] = self.container_id
        return out


def pod_status(
    old: Mapping[str, Any],
    *,
    uid: str,
    restart_policy: str | None,
    init_runs: Sequence[ContainerRun],
    main_runs: Sequence[ContainerRun],
    mounted: bool,
    initialized: bool,
    failed: bool,
    start_time: str,
) -> dict[str, Any]:
    """The pod's `status` as the kubelet computes it from its containers; `old` is the stored status."""
    sidecars = [r for r in init_runs if r.kind == "sidecar"]
    containers_ready = all(r.ready for r in main_runs) and all(r.ready for r in sidecars)
    if failed:
        phase = "Failed"
    elif not initialized:
        phase = "Pending"
    elif main_runs and all(r.state == "terminated" for r in main_runs) and restart_policy != "Always":
        # OnFailure restarts the failed ones, so the pod is still Running (the kubelet's getPhase)
        succeeded = all(r.exit_code == 0 for r in main_runs)
        phase = "Succeeded" if succeeded else ("Failed" if restart_policy == "Never" else "Running")
    elif any(r.state in ("running", "terminated") or r.restart_count for r in main_runs):
        phase = "Running"
    else:
        phase = "Pending"
    previous = {c["type"]: c for c in old.get("conditions", [])}

    def condition(kind: str, ok: bool) -> dict[str, Any]:
        value = "True" if ok else "False"
        before = previous.get(kind)
        since = before["lastTransitionTime"] if before and before.get("status") == value else now_rfc3339()
        return {"type": kind, "status": value, "lastProbeTime": None, "lastTransitionTime": since}

    ip = pod_ip_for(uid)
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [
            condition("PodReadyToStartContainers", mounted),
            condition("Initialized", initialized),
            condition("Ready", containers_ready and initialized),
            condition("ContainersReady", containers_ready and initialized),
            condition("PodScheduled", True),
            *[c for c in old.get("conditions", []) if c.get("type") not in KUBELET_CONDITIONS],
        ],
        "hostIP": NODE_IP,
        "hostIPs": [{"ip": NODE_IP}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": start_time,
        "qosClass": old.get("qosClass", "BestEffort"),
        "containerStatuses": [r.status() for r in main_runs],
    }
    if init_runs:
        status["initContainerStatuses"] = [r.status() for r in init_runs]
    return status


def stored_container_status(pod: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    status = pod.get("status", {})
    for entry in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if entry.get("name") == name:
            return dict(entry)
    return None
