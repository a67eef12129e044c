"""A real sandbox server process per test module, with clients for it: the official client and kubectl."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client, config, watch

from meshbook.params import SandboxSpeed
from meshbook.sandbox import control

KUBECTL = "/usr/bin/kubectl"


@dataclass
class RunningSandbox:
    info: control.SandboxInfo
    api: client.ApiClient

    @property
    def kubeconfig(self) -> Path:
        return self.info.kubeconfig

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as a user would, against this sandbox."""
        # Its own discovery and HTTP cache: kubectl processes of parallel test workers never share one.
        cache = str(self.info.state_dir / "kubectl-cache")
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "KUBECACHEDIR": cache}
        proc = subprocess.run(
            [KUBECTL, *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc


def start_sandbox(state: Path, kubernetes_version: str = "1.33") -> RunningSandbox:
    info, _ = control.up(state, SandboxSpeed.INSTANT, kubernetes_version)
    api = config.new_client_from_config(config_file=str(info.kubeconfig))
    return RunningSandbox(info, api)


# The kubectl versions sandbox tests speak with: the newest and the oldest the guide's users run.
KUBECTL_VERSIONS = ("1.33", "1.28")
KUBECTL_IDS = tuple(f"kubectl-{v}" for v in KUBECTL_VERSIONS)


@contextmanager
def running_sandbox(state: Path, kubernetes_version: str = "1.33") -> Iterator[RunningSandbox]:
    """A sandbox for the block, stopped (and its client closed) however the block ends."""
    running = start_sandbox(state, kubernetes_version)
    try:
        yield running
    finally:
        running.api.close()
        control.down(running.info.state_dir)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("sandbox")) as running:
        yield running


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[RunningSandbox, Path]]:
    """A fresh sandbox for one test, with its state directory (for `meshbook sandbox install --state`)."""
    state = tmp_path / "state"
    with running_sandbox(state) as running:
        yield running, state


def wait_for(
    list_fn: Callable[..., object],
    predicate: Callable[[dict[str, object] | object], bool],
    timeout: int = 60,
    **kwargs: object,
) -> object:
    """Watch a list call until an object satisfies `predicate` (no sleeps: events drive it)."""
    w = watch.Watch()
    for event in w.stream(list_fn, timeout_seconds=timeout, **kwargs):
        obj = event["object"]  # type: ignore[index]
        if predicate(obj):
            w.stop()
            return obj
    raise AssertionError(f"no object satisfied the condition within {timeout}s")
