"""Cluster time at instant speed: a crash-looping container backs off 10 s, 20 s, 40 s ... 5 min in
simulated seconds, and everything a client sees (restart counts, container and pod times, events,
kubectl's ages) agrees with a cluster on which that much time passed, none of it in the future."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from tests.sandbox.conftest import KUBECTL, KUBECTL_IDS, KUBECTL_VERSIONS, RunningSandbox, running_sandbox

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl not installed"),
]

# The kubelet's waits before restarts 1, 2, 3 ...: the first restart is immediate, then 10 s doubling to 5 min.
SCHEDULE = (0, 10, 20, 40, 80, 160, 300, 300)
RESTARTS = 7  # 10 + 20 + 40 + 80 + 160 + 300 = 610 s: past 10 minutes, with one wait at the cap
TIMESTAMP = re.compile(r'"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)"')
AGE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


@pytest.fixture(scope="module", params=KUBECTL_VERSIONS, ids=KUBECTL_IDS)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("simulated-time"), request.param) as running:
        yield running


@pytest.fixture(scope="module")
def crash_loop(cluster: RunningSandbox) -> tuple[str, list[client.V1Pod]]:
    """A pod whose container exits 1 at once, watched until its RESTARTS-th restart: (namespace, every
    state the watch delivered, in order)."""
    ns = f"t-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(cluster.api)
    core.create_namespace({"metadata": {"name": ns}})
    container = {"name": "app", "image": "alpine", "command": ["sh", "-c", "echo crashing; exit 1"]}
    since = core.list_namespaced_pod(ns).metadata.resource_version  # the watch sees every change from here
    core.create_namespaced_pod(ns, {"metadata": {"name": "crash"}, "spec": {"containers": [container]}})
    seen: list[client.V1Pod] = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_pod, ns, resource_version=since, timeout_seconds=120):
        pod = event["object"]
        seen.append(pod)
        status = (pod.status.container_statuses or [None])[0]
        if status is not None and status.restart_count >= RESTARTS and status.state.running is not None:
            w.stop()
            return ns, seen
    raise AssertionError(f"restart {RESTARTS} not seen within 120 s; last: {seen[-1].status if seen else None}")


JUMP_FREE_ATTEMPTS = 20


def skipped_seconds(cluster: RunningSandbox) -> int:
    """The simulated seconds the sandbox's clock has skipped so far, as it keeps them in its state."""
    return int(json.loads((cluster.info.state_dir / "clock.json").read_text())["skippedSeconds"])


def served_times(text: str) -> list[datetime]:
    return [datetime.fromisoformat(found) for found in TIMESTAMP.findall(text)]


def seconds(age: str) -> int:
    """kubectl's short duration (`72s`, `10m5s`, `3h`) in seconds."""
    found = AGE.match(age)
    assert found and age, f"not an age: {age!r}"
    days, hours, minutes, secs = (int(g or 0) for g in found.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + secs


def test_no_served_time_is_in_the_future(cluster: RunningSandbox, crash_loop: tuple[str, list[client.V1Pod]]) -> None:
    ns, _ = crash_loop
    pods = cluster.kubectl("get", "pods", "-n", ns, "-o", "json").stdout
    events = cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout
    logs = cluster.kubectl("logs", "-n", ns, "crash", "--timestamps").stdout
    now = datetime.now(UTC)
    times = served_times(pods) + served_times(events)
    assert len(times) > 10
    future = [t for t in times if t > now]
    assert not future, f"served in the future of {now}: {future}"
    stamps = [datetime.fromisoformat(line.split(" ", 1)[0]) for line in logs.splitlines()]
    assert stamps and all(s <= now for s in stamps), logs


def test_restarts_follow_the_kubelets_back_off_in_simulated_seconds(
    crash_loop: tuple[str, list[client.V1Pod]],
) -> None:
    _, seen = crash_loop
    runs = {}  # restart count -> (that run's start, the previous run's finish)
    for pod in seen:
        status = (pod.status.container_statuses or [None])[0]
        if status is not None and status.state.running is not None and status.restart_count not in runs:
            finished = status.last_state.terminated.finished_at if status.last_state.terminated else None
            runs[status.restart_count] = (status.state.running.started_at, finished)
    assert set(runs) >= set(range(1, RESTARTS + 1)), f"restarts seen running: {sorted(runs)}"
    for restart in range(1, RESTARTS + 1):
        started, finished = runs[restart]
        waited = (started - finished).total_seconds()
        assert SCHEDULE[restart - 1] <= waited <= SCHEDULE[restart - 1] + 5, (restart, waited)


def test_the_pod_is_as_old_as_its_restarts_imply(
    cluster: RunningSandbox, crash_loop: tuple[str, list[client.V1Pod]]
) -> None:
    ns, _ = crash_loop
    pod = client.CoreV1Api(cluster.api).read_namespaced_pod("crash", ns)
    age = (datetime.now(UTC) - pod.metadata.creation_timestamp).total_seconds()
    status = pod.status.container_statuses[0]
    at_least = sum(SCHEDULE[: status.restart_count])
    assert age >= at_least, f"{status.restart_count} restarts imply {at_least} s, the pod is {age} s old"
    assert age <= at_least + SCHEDULE[min(status.restart_count, len(SCHEDULE) - 1)] + 60
    assert status.restart_count < 20  # a handful, as a real cluster would show by now: never hundreds
    last = status.last_state.terminated
    assert last is not None and last.finished_at <= datetime.now(UTC)
    assert pod.metadata.creation_timestamp <= pod.status.start_time <= last.started_at <= last.finished_at


def test_kubectl_ages_are_plausible_and_never_invalid(
    cluster: RunningSandbox, crash_loop: tuple[str, list[client.V1Pod]]
) -> None:
    ns, _ = crash_loop
    row = cluster.kubectl("get", "pod", "crash", "-n", ns, "--no-headers").stdout
    assert "<invalid>" not in row, row
    columns = row.split()  # crash 0/1 CrashLoopBackOff 7 (1s ago) 10m
    restarts, age = int(columns[3]), columns[-1]
    at_least = sum(SCHEDULE[:RESTARTS])  # 610 s, which kubectl prints in whole minutes
    assert restarts >= RESTARTS and seconds(age) >= at_least - at_least % 60, row
    described = cluster.kubectl("describe", "pod", "crash", "-n", ns).stdout
    events = described.split("Events:", 1)[1]
    assert "<invalid>" not in described, described
    backoff = next(line for line in events.splitlines() if "BackOff" in line)
    assert re.search(r"\(x\d+ over \d+m", backoff), backoff  # repeated over minutes, as on a cluster
    listed = cluster.kubectl("get", "events", "-n", ns).stdout
    assert "<invalid>" not in listed, listed


def test_times_a_client_sends_are_kept_as_it_sees_them(
    cluster: RunningSandbox, crash_loop: tuple[str, list[client.V1Pod]]
) -> None:
    ns, _ = crash_loop
    sent = "2024-05-01T12:00:00Z"
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "sent-by-a-client", "namespace": ns},
        "involvedObject": {"kind": "Pod", "name": "crash", "namespace": ns},
        "reason": "Tested",
        "message": "a time sent by a client",
        "firstTimestamp": sent,
        "lastTimestamp": sent,
        "type": "Normal",
    }
    # The crash loop moves the clock on every back-off (each 5 simulated minutes, 1.5 s of real time): a
    # time sent before such a jump is served that much earlier after it, as everything else the sandbox
    # stored ages with its clock. The round trip is checked over two requests during which the clock
    # stood still, read from the seconds it skipped (clock.json), so a busy machine cannot split them.
    for _ in range(JUMP_FREE_ATTEMPTS):
        before = skipped_seconds(cluster)
        created = json.loads(cluster.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(body)).stdout)
        again = json.loads(cluster.kubectl("get", "event", "sent-by-a-client", "-n", ns, "-o", "json").stdout)
        if skipped_seconds(cluster) == before:
            break
        cluster.kubectl("delete", "event", "sent-by-a-client", "-n", ns)
    else:
        raise AssertionError(f"the clock jumped during each of {JUMP_FREE_ATTEMPTS} create-and-get pairs")
    assert before > 0, "the clock skipped no time: the shift of sent times is not exercised"
    assert created["firstTimestamp"] == sent
    assert again["firstTimestamp"] == again["lastTimestamp"] == sent
    assert time.time() > datetime.fromisoformat(sent).timestamp()


def test_a_restarted_sandbox_serves_the_same_past(tmp_path: Path) -> None:
    """The skipped seconds are kept with the state: stored times stay in the past after a restart."""
    state = tmp_path / "state"
    container = {"name": "app", "image": "alpine", "command": ["sh", "-c", "exit 1"]}
    with running_sandbox(state) as first:
        core = client.CoreV1Api(first.api)
        core.create_namespaced_pod("default", {"metadata": {"name": "crash"}, "spec": {"containers": [container]}})
        w = watch.Watch()
        for event in w.stream(core.list_namespaced_pod, "default", timeout_seconds=120):
            statuses = event["object"].status.container_statuses or []
            if statuses and statuses[0].restart_count >= 6:  # 10 + 20 + 40 + 80 + 160 = 310 s
                w.stop()
        before = core.read_namespaced_pod("crash", "default").metadata.creation_timestamp
        assert (datetime.now(UTC) - before).total_seconds() >= 310
    with running_sandbox(state) as second:
        after = client.CoreV1Api(second.api).read_namespaced_pod("crash", "default").metadata.creation_timestamp
    assert after <= before <= datetime.now(UTC)  # as old as before, or older: never moved into the future
