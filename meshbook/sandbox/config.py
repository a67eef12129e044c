"""What every floor of the sandbox reads: its speed, the lifecycle stages' delays and the node's identity.

Lifecycle timing as data: how long each stage of a pod's or workload's life takes at each speed.

Like kwok's stages, each entry names a step, what it applies to and the delay before the next state;
the kubelet stand-in and the controllers read their delays here instead of hard-coding sleeps, so
`instant` (tests) and `realistic` (demos, seconds as on a real cluster) differ only in this table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum


class Speed(StrEnum):
    INSTANT = "instant"
    REALISTIC = "realistic"


@dataclass(frozen=True)
class Stage:
    name: str
    applies_to: str
    next_state: str
    instant: float
    realistic: float

    def delay(self, speed: Speed) -> float:
        return self.instant if speed is Speed.INSTANT else self.realistic


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("schedule", "pod without spec.nodeName", "PodScheduled=True, podIP assigned", 0.0, 0.3),
        Stage("mount", "scheduled pod", "volumes mounted, or ContainerCreating with FailedMount", 0.0, 0.2),
        Stage("pull", "container waiting", "image present (event Pulled)", 0.0, 0.8),
        Stage("start", "container created", "container running (event Started)", 0.0, 0.3),
        Stage("ready", "running container", "container ready (restartable init: next init may start)", 0.0, 0.7),
        Stage(
            "backoff",
            "terminated container to restart",
            "running again; base of the doubling back-off",
            0.05,
            10.0,
        ),
        Stage("backoff-cap", "crash-looping container", "longest back-off between restarts", 0.4, 300.0),
        Stage("terminate", "pod with deletionTimestamp", "containers stopped, pod removed", 0.0, 1.0),
        Stage("ca-copy", "namespace listed in a Vault CR's caNamespaces", "CA Secret copied there", 0.2, 30.0),
        Stage("replicate", "workload out of date", "pods created or deleted to match replicas", 0.0, 0.2),
    )
}

# A script's own `sleep N` at instant speed: sleeps this long or longer mean "keeps running" (the demo
# app's `sleep 10000`); shorter ones are scaled down so retries and delays keep their order.
INSTANT_LONG_SLEEP = 60.0
INSTANT_SLEEP_SCALE = 0.01


def delay(name: str, speed: Speed) -> float:
    return STAGES[name].delay(speed)


def script_sleep(seconds: float, speed: Speed) -> float | None:
    """Seconds to really wait for a program's sleep, or None for "until the container is stopped"."""
    if seconds == float("inf"):
        return None
    if speed is Speed.REALISTIC:
        return seconds
    if seconds >= INSTANT_LONG_SLEEP:
        return None
    return seconds * INSTANT_SLEEP_SCALE


# The one node every pod is scheduled on.
NODE_NAME = "sandbox"
NODE_IP = "10.89.0.2"


def pod_ip_for(uid: str) -> str:
    """A stable, plausible pod IP derived from the pod's uid (never dialled: a label, not an address)."""
    digest = hashlib.sha256(uid.encode()).digest()
    return f"10.244.{digest[0]}.{max(2, digest[1])}"
