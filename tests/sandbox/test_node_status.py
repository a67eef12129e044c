"""The pod status the sandbox's kubelet reports, computed from its container records (pure, no server)."""

from __future__ import annotations

from typing import Any

from meshbook.podstatus import pod_summary
from meshbook.sandbox.node.status import ContainerRun, pod_status

UID = "0b7e1c2a-5a55-4c1e-9d43-3b1f7f6c2d10"


def _run(name: str, kind: str = "main", **state: Any) -> ContainerRun:
    run = ContainerRun({"name": name, "image": "busybox"}, kind)
    for key, value in state.items():
        setattr(run, key, value)
    return run


def _status(
    inits: list[ContainerRun], mains: list[ContainerRun], old: dict[str, Any] | None = None, **flags: Any
) -> dict[str, Any]:
    settings: dict[str, Any] = {"mounted": True, "initialized": True, "failed": False, "restart_policy": "Always"}
    settings |= flags
    return pod_status(
        old or {}, uid=UID, init_runs=inits, main_runs=mains, start_time="2025-01-01T00:00:00Z", **settings
    )


def _conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def _pod(inits: list[ContainerRun], mains: list[ContainerRun], status: dict[str, Any]) -> dict[str, Any]:
    spec = {"initContainers": [r.spec | ({"restartPolicy": "Always"} if r.kind == "sidecar" else {}) for r in inits]}
    return {"metadata": {"name": "p"}, "spec": spec | {"containers": [r.spec for r in mains]}, "status": status}


def test_initialising_pod_is_pending_and_not_ready() -> None:
    inits = [_run("setup", "init", state="running", reason="")]
    mains = [_run("app")]
    status = _status(inits, mains, initialized=False)
    assert status["phase"] == "Pending"
    assert _conditions(status) == {
        "PodReadyToStartContainers": "True",
        "Initialized": "False",
        "Ready": "False",
        "ContainersReady": "False",
        "PodScheduled": "True",
    }
    assert pod_summary(_pod(inits, mains, status)) == ("0/1", "Init:0/1", 0)


def test_ready_needs_every_container_and_native_sidecar_ready() -> None:
    proxy = _run("istio-proxy", "sidecar", state="running", reason="", ready=False)
    app = _run("app", state="running", reason="", ready=True)
    status = _status([proxy], [app])
    assert (status["phase"], _conditions(status)["Ready"]) == ("Running", "False")
    proxy.ready = True
    status = _status([proxy], [app])
    assert (status["phase"], _conditions(status)["Ready"]) == ("Running", "True")
    assert pod_summary(_pod([proxy], [app], status)) == ("2/2", "Running", 0)


def test_finished_containers_end_the_pod_unless_it_restarts_them() -> None:
    done = _run("job", state="terminated", reason="Completed", exit_code=0)
    assert _status([], [done], restart_policy="Never")["phase"] == "Succeeded"
    assert _status([], [done], restart_policy="Always")["phase"] == "Running"
    failed = _run("job", state="terminated", reason="Error", exit_code=1)
    assert _status([], [failed], restart_policy="Never")["phase"] == "Failed"
    assert _status([], [failed], restart_policy="OnFailure")["phase"] == "Running"  # restarted: kubelet's getPhase
    assert _status([], [_run("app")], failed=True)["phase"] == "Failed"


def test_unchanged_conditions_keep_their_transition_time_and_foreign_conditions_stay() -> None:
    app = _run("app", state="running", reason="", ready=True)
    first = _status([], [app])
    old = first | {"conditions": [*first["conditions"], {"type": "example.com/gate", "status": "True"}]}
    for condition in old["conditions"]:
        condition["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    app.ready = False
    again = {c["type"]: c for c in _status([], [app], old)["conditions"]}
    assert again["Initialized"]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert again["Ready"]["status"] == "False"
    assert again["Ready"]["lastTransitionTime"] != "2020-01-01T00:00:00Z"
    assert again["example.com/gate"]["status"] == "True"
