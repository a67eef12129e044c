"""Restarted containers as the pod check records them, on a real sandbox: count, last exit, and whether
the previous instance's log shows vault-env failing to get a Vault token (the log itself is not kept).

Slow: one sandbox for the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client

from meshbook.runbook.checks import _restarted_containers
from tests.sandbox.conftest import RunningSandbox, start_sandbox, wait_for

NAMESPACE = "default"
TOKEN_FAILURE = 'level=ERROR msg="failed to request new Vault token" app=vault-env'


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    from meshbook.sandbox import control

    running = start_sandbox(tmp_path_factory.mktemp("restarts"))
    try:
        yield running
    finally:
        running.api.close()
        control.down(running.info.state_dir)


def _container(name: str, script: str) -> dict[str, Any]:
    return {"name": name, "image": "alpine", "command": ["sh", "-c", script]}


def _restarted_twice(pod: object) -> bool:
    statuses = getattr(getattr(pod, "status", None), "container_statuses", None) or []
    return len(statuses) == 3 and all((s.restart_count or 0) >= 1 for s in statuses if s.name != "steady")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_restarts_are_recorded_with_their_cause(sandbox: RunningSandbox, tmp_path: Path) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "restarts", "namespace": NAMESPACE},
        "spec": {
            "containers": [
                _container("steady", "echo going to sleep... && sleep 10000"),
                _container("waits", f"echo '{TOKEN_FAILURE}' && exit 1"),
                _container("crashes", "echo boom && exit 2"),
            ]
        },
    }
    core = client.CoreV1Api(sandbox.api)
    core.create_namespaced_pod(NAMESPACE, pod)
    wait_for(
        core.list_namespaced_pod,
        _restarted_twice,
        timeout=300,
        namespace=NAMESPACE,
        field_selector="metadata.name=restarts",
    )
    session = SimpleNamespace(context=SimpleNamespace(api=sandbox.api))
    found = _restarted_containers(session, NAMESPACE)  # type: ignore[arg-type]
    assert sorted(found) == ["restarts"]
    by_name = {r["container"]: r for r in found["restarts"]}
    assert sorted(by_name) == ["crashes", "waits"]  # a container that never restarted is not listed
    assert (by_name["waits"]["exit_code"], by_name["waits"]["vault_env_token_failed"]) == (1, True)
    assert (by_name["crashes"]["exit_code"], by_name["crashes"]["vault_env_token_failed"]) == (2, False)
    assert all(r["restarts"] >= 1 for r in by_name.values())
