"""What every floor of the sandbox reads: the delays of each step at each speed and the node's identity.

Lifecycle timing as data: how long each step of a pod's or workload's life waits at each speed. The
kubelet stand-in and the controllers read their delays here instead of hard-coding sleeps, so
`instant` (tests) and `realistic` (demos, seconds as on a real cluster) differ only in this table.
The kubelet's back-off is cluster time at both speeds (10 s doubling to 5 min); at `instant` it passes
on the sandbox's simulated clock (`clock.py`), `clock_scale` real seconds per simulated second.
The order of the steps is code (the pod worker's init containers, native sidecars, back-off); only
their timing is data. The speed itself is `meshbook.param_enums.SandboxSpeed`, the one home of that choice.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from meshbook.param_enums import SandboxSpeed


@dataclass(frozen=True)
class Delays:
    """Seconds each step waits at one speed; a field per step, so a misspelt step fails type checks."""

    schedule: float  # pod without spec.nodeName -> PodScheduled, on the node
    mount: float  # scheduled pod -> volumes mounted (or ContainerCreating with FailedMount)
    pull: float  # container waiting -> image present
    start: float  # image present -> container running (event Started)
    ready: float  # running container without its own readiness -> ready
    backoff: float  # first back-off before restarting an exited container (doubles each time), cluster time
    backoff_cap: float  # longest back-off between restarts of a crash-looping container, cluster time
    backoff_reset: float  # a back-off last used this long ago is forgotten (the container ran fine meanwhile)
    terminate: float  # containers of a deleted pod stopped -> pod removed
    ca_copy: float  # namespace listed in a Vault CR's caNamespaces -> CA Secret copied there
    clock_scale: float | None  # real seconds a simulated second of cluster time takes; None: wall time


DELAYS: dict[SandboxSpeed, Delays] = {
    SandboxSpeed.INSTANT: Delays(
        schedule=0.0,
        mount=0.0,
        pull=0.0,
        start=0.0,
        ready=0.0,
        backoff=10.0,
        backoff_cap=300.0,
        backoff_reset=600.0,
        terminate=0.0,
        ca_copy=0.2,
        clock_scale=0.005,  # a 10 s back-off takes 0.05 s, the 5 min cap 1.5 s
    ),
    SandboxSpeed.REALISTIC: Delays(
        schedule=0.3,
        mount=0.2,
        pull=0.8,
        start=0.3,
        ready=0.7,
        backoff=10.0,
        backoff_cap=300.0,
        backoff_reset=600.0,
        terminate=1.0,
        ca_copy=30.0,
        clock_scale=None,
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


# -- the kubelet's limits on what a container may use ------------------------------------------------

KUBELET_CONFIG_FILE = "kubelet-config.yaml"  # in the state directory: a KubeletConfiguration, optional
_QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]+)?)(m|k|Ki|M|Mi|G|Gi|)")
_SUFFIX = {"m": 1e-3, "": 1, "k": 1e3, "Ki": 1024, "M": 1e6, "Mi": 1024**2, "G": 1e9, "Gi": 1024**3}


@dataclass(frozen=True)
class ContainerLogPolicy:
    """The kubelet's log rotation: rotate a container's log once it reaches `max_size` bytes and keep
    `max_files` files in all (the current one and the newest rotated ones)."""

    max_size: int = 10 * 1024 * 1024  # containerLogMaxSize: 10Mi
    max_files: int = 5  # containerLogMaxFiles


# A container's CPU, like a cgroup's CFS quota: `resources.limits.cpu` cores per period, or the default
# when no limit is set. Every container shares the server's one event loop, so none gets more than
# MAX_CONTAINER_CPU of it, whatever its limit says.
DEFAULT_CONTAINER_CPU = 0.1
MAX_CONTAINER_CPU = 0.5
CFS_PERIOD = 0.1  # seconds: the kernel's default cfs_period_us
CPU_SLICE = 0.002  # seconds of CPU a container runs before it lets other tasks of the loop run


class KubeletConfigError(ValueError):
    """The state directory's kubelet configuration is unusable; the message says which field and why."""


def parse_quantity(text: str) -> float:
    """A Kubernetes quantity (`500m`, `2`, `10Mi`, `1.5Gi`); ValueError if it is none."""
    match = _QUANTITY.fullmatch(str(text).strip())
    if match is None:
        raise ValueError(f"quantities must match the regular expression '{_QUANTITY.pattern}'")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def container_cpu(container: dict[str, object] | object) -> float:
    """The cores a container may use per CFS period (its CPU limit, else the default; capped)."""
    resources = container.get("resources") if isinstance(container, dict) else None
    limit = (resources.get("limits") or {}).get("cpu") if isinstance(resources, dict) else None
    try:
        cores = parse_quantity(str(limit)) if limit is not None else DEFAULT_CONTAINER_CPU
    except ValueError:
        cores = DEFAULT_CONTAINER_CPU  # validation refuses a bad quantity before a container runs
    return min(max(cores, 0.001), MAX_CONTAINER_CPU)


def container_log_policy(state_dir: Path) -> ContainerLogPolicy:
    """The log policy of `state_dir/kubelet-config.yaml` (containerLogMaxSize, containerLogMaxFiles),
    the kubelet's defaults for what it does not set."""
    path = state_dir / KUBELET_CONFIG_FILE
    if not path.exists():
        return ContainerLogPolicy()
    config = yaml.safe_load(path.read_text()) or {}
    if not isinstance(config, dict) or config.get("kind", "KubeletConfiguration") != "KubeletConfiguration":
        raise KubeletConfigError(f"{path}: expected a KubeletConfiguration mapping")
    default = ContainerLogPolicy()
    try:
        size = int(parse_quantity(str(config.get("containerLogMaxSize", default.max_size))))
    except ValueError as exc:
        raise KubeletConfigError(f"{path}: containerLogMaxSize: {exc}") from None
    files = config.get("containerLogMaxFiles", default.max_files)
    if not isinstance(files, int) or files < 2:
        raise KubeletConfigError(f"{path}: containerLogMaxFiles: {files!r} must be an integer greater than 1")
    if size <= 0:
        raise KubeletConfigError(f"{path}: containerLogMaxSize: {size} must be greater than 0")
    return ContainerLogPolicy(size, files)
