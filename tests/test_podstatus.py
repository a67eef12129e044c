"""kubectl's READY / STATUS / RESTARTS rules (`printPod`), pure: the one home the library and the sandbox share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from meshbook import podstatus
from meshbook.podstatus import PodSummary, pod_summary, summarize_pod

RUNNING = {"running": {"startedAt": "2025-01-01T00:00:00Z"}}


def _pod(
    *,
    inits: list[dict[str, Any]] | None = None,
    containers: tuple[str, ...] = ("app",),
    phase: str = "Running",
    init_statuses: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    **status: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": name} for name in containers]}
    if inits is not None:
        spec["initContainers"] = inits
    body: dict[str, Any] = {"phase": phase, "containerStatuses": statuses or [], "conditions": conditions or []}
    if init_statuses is not None:
        body["initContainerStatuses"] = init_statuses
    return {"metadata": {"name": "p", "namespace": "app"}, "spec": spec, "status": body | status}


def _running(name: str, *, ready: bool = True, restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {"name": name, "state": RUNNING, "ready": ready, "restartCount": restarts} | extra


def _done(name: str) -> dict[str, Any]:
    return {"name": name, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}, "restartCount": 0}


def _exited(finished: str) -> dict[str, Any]:
    return {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": finished}}


def _true(kind: str) -> dict[str, str]:
    return {"type": kind, "status": "True"}


def _false(kind: str) -> dict[str, str]:
    return {"type": kind, "status": "False"}


SIDECAR_SPEC = [{"name": "istio-init"}, {"name": "istio-proxy", "restartPolicy": "Always"}, {"name": "setup"}]


def test_native_sidecars_count_towards_ready() -> None:
    pod = _pod(
        inits=SIDECAR_SPEC,
        init_statuses=[_done("istio-init"), _running("istio-proxy", started=True), _done("setup")],
        statuses=[_running("app")],
        conditions=[_true("Initialized"), _true("Ready")],
    )
    assert pod_summary(pod) == ("2/2", "Running", 0)


def test_a_started_native_sidecar_that_is_not_ready_is_counted_in_the_total_only() -> None:
    pod = _pod(
        inits=SIDECAR_SPEC,
        phase="Pending",
        init_statuses=[_done("istio-init"), _running("istio-proxy", ready=False, started=True), _running("setup")],
    )
    assert pod_summary(pod) == ("0/2", "Init:2/3", 0)


def test_init_progress_is_init_n_of_m() -> None:
    inits = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    pod = _pod(inits=inits, phase="Pending", init_statuses=[_done("a"), _running("b", ready=False)])
    assert pod_summary(pod) == ("0/1", "Init:1/3", 0)


def test_an_init_container_waiting_for_its_pod_reads_init_n_of_m() -> None:
    waiting = {"name": "a", "state": {"waiting": {"reason": "PodInitializing"}}, "restartCount": 0}
    assert pod_summary(_pod(inits=[{"name": "a"}], phase="Pending", init_statuses=[waiting]))[1] == "Init:0/1"


def test_a_crash_looping_init_container() -> None:
    crashing = {
        "name": "b",
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": _exited("2025-01-01T00:05:00Z"),
        "restartCount": 4,
    }
    pod = _pod(inits=[{"name": "a"}, {"name": "b"}], phase="Pending", init_statuses=[_done("a"), crashing])
    assert summarize_pod(pod) == PodSummary("0/1", "Init:CrashLoopBackOff", 4, datetime(2025, 1, 1, 0, 5, tzinfo=UTC))


def test_a_failed_init_container_without_a_reason_shows_its_exit_code_or_signal() -> None:
    for terminated, status in (({"exitCode": 3}, "Init:ExitCode:3"), ({"exitCode": 137, "signal": 9}, "Init:Signal:9")):
        failed = {"name": "a", "state": {"terminated": terminated}, "restartCount": 0}
        assert pod_summary(_pod(inits=[{"name": "a"}], phase="Pending", init_statuses=[failed]))[1] == status


def test_terminating_unless_the_pod_already_finished() -> None:
    deleting = _pod(statuses=[_running("app")], conditions=[_true("Ready")])
    deleting["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    assert pod_summary(deleting) == ("1/1", "Terminating", 0)
    finished = _pod(phase="Succeeded", statuses=[_done("app")])
    finished["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    assert pod_summary(finished)[1] == "Completed"


def test_a_deleted_pod_on_a_lost_node_is_unknown() -> None:
    lost = _pod(statuses=[_running("app")], reason="NodeLost")
    lost["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    assert pod_summary(lost)[1] == "Unknown"


def test_completed_with_a_running_container_is_running_when_ready_else_not_ready() -> None:
    statuses = [_running("app"), _done("job")]
    ready = _pod(containers=("app", "job"), statuses=statuses, conditions=[_true("Ready")])
    assert pod_summary(ready) == ("1/2", "Running", 0)
    not_ready = _pod(containers=("app", "job"), statuses=statuses, conditions=[_false("Ready")])
    assert pod_summary(not_ready) == ("1/2", "NotReady", 0)


# -- where the sandbox's former copy and the library's disagreed: kubectl's printPod decides ----------


def test_a_scheduling_gated_pod_says_so() -> None:
    gated = {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
    assert pod_summary(_pod(phase="Pending", conditions=[gated])) == ("0/1", "SchedulingGated", 0)


def test_any_true_ready_condition_counts_as_ready() -> None:
    """`hasPodReadyCondition` looks for any True Ready condition, not just the first one."""
    pod = _pod(
        containers=("app", "job"),
        statuses=[_running("app"), _done("job")],
        conditions=[_false("Ready"), _true("Ready")],
    )
    assert pod_summary(pod)[1] == "Running"


def test_only_the_first_initialized_condition_counts() -> None:
    """`isPodInitializedConditionTrue` returns at the first Initialized condition it meets."""
    pod = _pod(
        inits=[{"name": "a"}],
        phase="Pending",
        init_statuses=[_running("a", ready=False)],
        statuses=[_running("app")],
        conditions=[_false("Initialized"), _true("Initialized")],
    )
    assert pod_summary(pod) == ("0/1", "Init:0/1", 0)


def test_last_restart_is_the_latest_counted_termination() -> None:
    """Once initialised, only native sidecars' and containers' restarts (and times) count, as in printPod."""
    old_init = {**_done("setup"), "restartCount": 2, "lastState": _exited("2025-01-01T00:09:00Z")}
    proxy = _running("istio-proxy", started=True, restarts=1, lastState=_exited("2025-01-01T00:03:00Z"))
    app = _running("app", restarts=2, lastState=_exited("2025-01-01T00:07:00Z"))
    pod = _pod(
        inits=[{"name": "setup"}, {"name": "istio-proxy", "restartPolicy": "Always"}],
        init_statuses=[old_init, proxy],
        statuses=[app],
        conditions=[_true("Initialized"), _true("Ready")],
    )
    assert summarize_pod(pod) == PodSummary("2/2", "Running", 3, datetime(2025, 1, 1, 0, 7, tzinfo=UTC))


def test_no_last_restart_without_a_termination_time() -> None:
    assert summarize_pod(_pod(statuses=[_running("app", restarts=2)])).last_restart is None


def test_every_restartable_init_container_in_the_spec_counts_towards_the_total() -> None:
    inits = [{"name": "proxy", "restartPolicy": "Always"}, {"name": "agent", "restartPolicy": "Always"}]
    assert pod_summary(_pod(inits=inits, phase="Pending", init_statuses=[]))[0] == "0/3"


# -- CrashHistory: when waiting longer cannot make a pod Ready ------------------------------------------


def _crashing_pod(
    restarts: int,
    *,
    exit_code: int = 1,
    proxy_ready: bool = True,
    native: bool = False,
    waiting: str = "CrashLoopBackOff",
) -> dict[str, Any]:
    init = [{"name": "init-ubuntu", "image": "ubuntu"}]
    if native:
        init.insert(0, {"name": "istio-proxy", "image": "istio/proxyv2", "restartPolicy": "Always"})
    crashing = {
        "name": "init-ubuntu",
        "ready": False,
        "restartCount": restarts,
        "state": {"waiting": {"reason": waiting}},
        "lastState": {
            "terminated": {"exitCode": exit_code, "reason": "Error", "finishedAt": f"2026-01-01T00:00:{restarts:02d}Z"}
        },
    }
    proxy = {"name": "istio-proxy", "ready": proxy_ready, "restartCount": 0, "state": {"running": {}}}
    return {
        "metadata": {"name": "app-1", "uid": "u-1"},
        "spec": {"initContainers": init, "containers": [{"name": "app"}]},
        "status": {"initContainerStatuses": [proxy, crashing] if native else [crashing]},
    }


def test_a_crash_loop_is_hopeless_after_the_same_error_repeats() -> None:
    history = podstatus.CrashHistory(3)
    assert history.hopeless([_crashing_pod(1)]) is None
    assert history.hopeless([_crashing_pod(2)]) is None
    reason = history.hopeless([_crashing_pod(3)])
    assert reason is not None
    assert "init container init-ubuntu crashed 3 times in a row the same way (exit code 1, Error)" in reason


def test_changing_errors_are_not_a_crash_loop_yet() -> None:
    history = podstatus.CrashHistory(3)
    for restarts, code in ((1, 1), (2, 2), (3, 1)):
        assert history.hopeless([_crashing_pod(restarts, exit_code=code)]) is None


def test_a_crash_while_the_native_sidecar_is_not_ready_may_be_a_race() -> None:
    history = podstatus.CrashHistory(2)
    for restarts in (1, 2, 3):
        assert history.hopeless([_crashing_pod(restarts, native=True, proxy_ready=False)]) is None
    assert history.hopeless([_crashing_pod(4, native=True, proxy_ready=True)]) is not None


def test_the_same_status_seen_twice_counts_once() -> None:
    history = podstatus.CrashHistory(2)
    assert history.hopeless([_crashing_pod(1)]) is None
    assert history.hopeless([_crashing_pod(1)]) is None


def test_one_termination_served_with_shifted_times_counts_once() -> None:
    """A sandbox at instant speed serves the same finishedAt earlier once its clock skipped ahead: the
    container ID, not the time, says which run ended."""
    history = podstatus.CrashHistory(2)
    for finished in ("2026-01-01T00:10:00Z", "2026-01-01T00:05:00Z", "2026-01-01T00:00:00Z"):
        pod = _crashing_pod(1)
        terminated = pod["status"]["initContainerStatuses"][0]["lastState"]["terminated"]
        terminated |= {"containerID": "containerd://1", "finishedAt": finished}
        assert history.hopeless([pod]) is None


def test_an_image_that_cannot_be_pulled_is_hopeless_at_once() -> None:
    pod = _crashing_pod(0, waiting="ImagePullBackOff")
    pod["status"]["initContainerStatuses"][0].pop("lastState")
    reason = podstatus.CrashHistory(3).hopeless([pod])
    assert reason == "pod app-1: init container init-ubuntu cannot start, ImagePullBackOff"
    assert podstatus.CrashHistory.crashing(pod)[0]["name"] == "init-ubuntu"


def test_a_terminating_pod_is_not_judged() -> None:
    history = podstatus.CrashHistory(1)
    pod = _crashing_pod(5)
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert history.hopeless([pod]) is None


def test_a_restart_without_a_new_termination_counts_once() -> None:
    """The restart count rises when the container runs again, but it is still the same termination."""
    history = podstatus.CrashHistory(2)
    first = _crashing_pod(1)
    assert history.hopeless([first]) is None
    again = _crashing_pod(1)
    again["status"]["initContainerStatuses"][0]["restartCount"] = 5
    assert history.hopeless([again]) is None
