"""What every floor of the sandbox reads: the delays of each step at each speed and the node's identity.

Lifecycle timing as data: how long each step of a pod's or workload's life waits at each speed. The
kubelet stand-in and the controllers read their delays here instead of hard-coding sleeps, so
`instant` (tests) and `realistic` (demos, seconds as on a real cluster) differ only in this table.
The order of the steps is code (the pod worker's init containers, native sidecars, back-off); only
their timing is data. The speed itself is `meshbook.params.SandboxSpeed`, the one home of that choice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from meshbook.params import SandboxSpeed


@dataclass(frozen=True)
class Delays:
    """Seconds each step waits at one speed; a field per step, so a misspelt step fails type checks."""

    schedule: float  # pod without spec.nodeName -> PodScheduled, on the node
    mount: float  # scheduled pod -> volumes mounted (or ContainerCreating with FailedMount)
    pull: float  # container waiting -> image present
    start: float  # image present -> container running (event Started)
    ready: float  # running container without its own readiness -> ready
    backoff: float  # first back-off before restarting an exited container (doubles each time)
    backoff_cap: float  # longest back-off between restarts of a crash-looping container
    terminate: float  # containers of a deleted pod stopped -> pod removed
    ca_copy: float  # namespace listed in a Vault CR's caNamespaces -> CA Secret copied there


DELAYS: dict[SandboxSpeed, Delays] = {
    SandboxSpeed.INSTANT: Delays(
        schedule=0.0,
        mount=0.0,
        pull=0.0,
        start=0.0,
        ready=0.0,
        backoff=0.05,
        backoff_cap=0.4,
        terminate=0.0,
        ca_copy=0.2,
    ),
    SandboxSpeed.REALISTIC: Delays(
        schedule=0.3,
        mount=0.2,
        pull=0.8,
        start=0.3,
        ready=0.7,
        backoff=10.0,
        backoff_cap=300.0,
        terminate=1.0,
        ca_copy=30.0,
    ),
}


def delays(speed: SandboxSpeed) -> Delays:
    return DELAYS[speed]


# A script's own `sleep N` at instant speed: sleeps this long or longer mean "keeps running" (the demo
# app's `sleep 10000`); shorter ones are scaled down so retries and delays keep their order.
INSTANT_LONG_SLEEP = 60.0
INSTANT_SLEEP_SCALE = 0.01


def script_sleep(seconds: float, speed: SandboxSpeed) -> float | None:
    """Seconds to really wait for a program's sleep, or None for "until the container is stopped"."""
    if seconds == float("inf"):
        return None
    if speed is SandboxSpeed.REALISTIC:
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
