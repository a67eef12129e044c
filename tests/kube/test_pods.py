"""Pod snapshots (kubectl READY and STATUS), pod deletion and recreation, and masked logs."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from meshbook import podstatus
from meshbook.errors import MeshbookError
from meshbook.kube import logs, pods, rollouts, waits
from meshbook.kube.apply import Applier
from meshbook.mesh.istio_objects import istio_objects
from meshbook.params import IstioParams, SidecarMode
from meshbook.sandbox import control
from meshbook.sandbox.addons.istio import InjectionConfig, inject
from tests.sandbox.conftest import RunningSandbox, start_sandbox

HELLO = ["sh", "-c", "echo hello && sleep 10000"]
GENEROUS = 60.0
slow = pytest.mark.slow


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    running = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    try:
        yield running
    finally:
        running.api.close()
        control.down(running.info.state_dir)


def new_namespace(sandbox: RunningSandbox, labels: dict[str, str] | None = None) -> str:
    name = f"p-{uuid.uuid4().hex[:8]}"
    meta: dict[str, Any] = {"name": name, "labels": labels or {}}
    Applier(sandbox.api).apply({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
    return name


@pytest.fixture
def ns(sandbox: RunningSandbox) -> str:
    return new_namespace(sandbox)


def container(name: str, command: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "command": command, **extra}


def deployment(
    namespace: str, name: str, pod_spec: dict[str, Any], *, replicas: int = 1, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}, "annotations": annotations or {}}, "spec": pod_spec},
        },
    }


def run(sandbox: RunningSandbox, *objects: dict[str, Any]) -> None:
    Applier(sandbox.api).apply_all(objects)


# -- pure: reading pods --------------------------------------------------------------------------------


def _pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web-5d8f7c9b6-abcde", "namespace": "app", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web"}], **spec},
        "status": {"phase": "Pending"},
    }


@pytest.mark.parametrize(
    ("mode", "inits", "containers"),
    [
        (SidecarMode.CLASSIC, ["init-ubuntu", "istio-init"], ["web", "istio-proxy"]),
        (SidecarMode.CNI, ["init-ubuntu", "istio-validation"], ["web", "istio-proxy"]),
        (SidecarMode.NATIVE, ["istio-init", "istio-proxy", "init-ubuntu"], ["web"]),
    ],
)
def test_sidecar_mode_as_the_injector_leaves_it(mode: SidecarMode, inits: list[str], containers: list[str]) -> None:
    pod = inject(_pod(initContainers=[{"name": "init-ubuntu"}]), InjectionConfig(mode.value, False))
    row = pods.pod_rows([pod], now=datetime.now(UTC))[0]
    assert (row.init_containers, row.containers) == (inits, containers)
    assert row.sidecar is True and row.sidecar_mode is mode
    assert row.ready == "0/2"  # app + istio-proxy, whether container or native sidecar


def test_no_sidecar_without_istio_proxy() -> None:
    row = pods.pod_rows([_pod()], now=datetime.now(UTC))[0]
    assert (row.sidecar, row.sidecar_mode, row.ready, row.status) == (False, None, "0/1", "Pending")


def _with_init_status(pod: dict[str, Any], *statuses: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(pod)
    out["status"]["initContainerStatuses"] = list(statuses)
    return out


def test_status_column_during_initialisation_and_deletion() -> None:
    pod = _pod(initContainers=[{"name": "a"}, {"name": "b"}])
    done = {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    running = {"name": "b", "state": {"running": {}}, "restartCount": 0}
    crashing = {"name": "b", "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "restartCount": 4}
    failed = {"name": "b", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}, "restartCount": 1}
    assert podstatus.pod_summary(_with_init_status(pod, done, running)) == ("0/1", "Init:1/2", 0)
    assert podstatus.pod_summary(_with_init_status(pod, done, crashing)) == ("0/1", "Init:CrashLoopBackOff", 4)
    assert podstatus.pod_summary(_with_init_status(pod, done, failed)) == ("0/1", "Init:Error", 1)
    deleting = _with_init_status(pod, done, running)
    deleting["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    assert podstatus.pod_summary(deleting)[1] == "Terminating"
    assert podstatus.describe_pod(_with_init_status(pod, done, crashing)) == (
        "web-5d8f7c9b6-abcde 0/1 Init:CrashLoopBackOff (restarts 4)"
    )


def test_workload_from_owner_references() -> None:
    pod = _pod()
    pod["metadata"]["labels"]["pod-template-hash"] = "5d8f7c9b6"
    pod["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "web-5d8f7c9b6", "controller": True}]
    assert pods.workload_of(pod) == "web"  # <deployment>-<pod-template-hash>
    assert pods.workload_of(pod, {"web-5d8f7c9b6": "frontend"}) == "frontend"  # the cluster's answer wins
    pod["metadata"]["ownerReferences"] = [{"kind": "StatefulSet", "name": "vault", "controller": True}]
    assert pods.workload_of(pod) == "vault"
    pod["metadata"]["ownerReferences"] = []
    assert pods.workload_of(pod) == "web-5d8f7c9b6-abcde"


def test_ready_by_workload_keeps_pod_order() -> None:
    rows = [
        pods.PodRow("ns", "b-2", "b", "1/2", "Running", 0),
        pods.PodRow("ns", "a-1", "a", "2/2", "Running", 0),
        pods.PodRow("ns", "b-1", "b", "2/2", "Running", 0),
    ]
    assert pods.ready_by_workload(pods.rows_frame(rows)) == {"a": ["2/2"], "b": ["2/2", "1/2"]}
    assert list(pods.rows_frame([]).columns) == pods.COLUMNS


def test_default_container_error_lists_the_choices() -> None:
    pod = _pod(initContainers=[{"name": "setup"}])
    pod["spec"]["containers"].append({"name": "istio-proxy"})
    with pytest.raises(MeshbookError) as caught:
        logs.default_container(pod)
    assert str(caught.value) == (
        "pod app/web-5d8f7c9b6-abcde has 2 containers and no kubectl.kubernetes.io/default-container annotation: "
        "choose a container: web, istio-proxy (init containers: setup)"
    )
    pod["metadata"]["annotations"] = {"kubectl.kubernetes.io/default-container": "istio-proxy"}
    assert logs.default_container(pod) == "istio-proxy"


def test_selector_string() -> None:
    selector = {
        "matchLabels": {"app": "web", "tier": "front"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["a", "b"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert logs.selector_string(selector) == "app=web,tier=front,env in (a,b),!canary"


# -- against a sandbox ---------------------------------------------------------------------------------


@slow
def test_snapshot_columns_and_ready_with_init_containers(sandbox: RunningSandbox, ns: str) -> None:
    run(
        sandbox,
        deployment(ns, "plain", {"containers": [container("main", HELLO)]}),
        deployment(
            ns,
            "init",
            {
                "initContainers": [container("setup", ["sh", "-c", "echo set up"])],
                "containers": [container("main", HELLO)],
            },
        ),
        deployment(
            ns,
            "native",
            {
                "initContainers": [container("side", HELLO, restartPolicy="Always")],
                "containers": [container("main", HELLO)],
            },
        ),
    )
    for name in ("plain", "init", "native"):
        rollouts.wait_for_rollout(sandbox.api, ns, "Deployment", name, GENEROUS)
    df = pods.pod_snapshot(sandbox.api, ns)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == [
        "namespace",
        "pod",
        "workload",
        "ready",
        "status",
        "restarts",
        "containers",
        "init_containers",
        "sidecar",
        "sidecar_mode",
        "phase",
        "age_seconds",
    ]
    by = {row["workload"]: row for row in df.to_dict("records")}
    assert set(by) == {"plain", "init", "native"}
    assert (by["plain"]["ready"], by["plain"]["init_containers"]) == ("1/1", [])
    assert (by["init"]["ready"], by["init"]["init_containers"], by["init"]["containers"]) == (
        "1/1",
        ["setup"],
        ["main"],
    )
    assert (by["native"]["ready"], by["native"]["init_containers"]) == ("2/2", ["side"])  # native sidecar counts
    for row in by.values():
        assert (row["status"], row["phase"], row["restarts"], row["sidecar"]) == ("Running", "Running", 0, False)
        assert row["namespace"] == ns and row["pod"].startswith(row["workload"] + "-") and row["age_seconds"] >= 0
    assert pods.ready_by_workload(df) == {"init": ["1/1"], "native": ["2/2"], "plain": ["1/1"]}
    kubectl = sandbox.kubectl("get", "pods", "-n", ns, "--no-headers").stdout.split("\n")
    assert {line.split()[0]: line.split()[1] for line in kubectl if line} == dict(
        zip(df["pod"], df["ready"], strict=True)
    )


@slow
def test_snapshot_of_crashing_statefulset_and_bare_pods(sandbox: RunningSandbox, ns: str) -> None:
    run(
        sandbox,
        deployment(ns, "crash", {"containers": [container("main", ["sh", "-c", "exit 1"])]}),
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": ns},
            "spec": {
                "replicas": 1,
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [container("db", HELLO)]}},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "lonely", "namespace": ns, "labels": {"app": "lonely"}},
            "spec": {"containers": [container("main", HELLO)]},
        },
    )
    rollouts.wait_for_rollout(sandbox.api, ns, "StatefulSet", "db", GENEROUS)
    waits.wait_for_pod_ready(sandbox.api, ns, "lonely", GENEROUS)
    crashing = waits.wait_for(
        sandbox.api,
        "Pod",
        lambda found: len(found) == 1 and podstatus.pod_summary(found[0])[1] == "CrashLoopBackOff",
        namespace=ns,
        label_selector="app=crash",
        description="the crashing pod in back-off",
        timeout=GENEROUS,
    )
    crash = pods.pod_rows(crashing)[0]  # the state the wait saw: the pod keeps cycling
    assert (crash.workload, crash.ready, crash.status, crash.phase) == ("crash", "0/1", "CrashLoopBackOff", "Running")
    assert crash.restarts > 0
    by = {row.workload: row for row in pods.pod_rows(pods.list_pods(sandbox.api, ns))}
    assert set(by) == {"crash", "db", "lonely"}
    assert (by["db"].pod, by["db"].ready, by["db"].status) == ("db-0", "1/1", "Running")
    assert (by["lonely"].pod, by["lonely"].ready, by["lonely"].status) == ("lonely", "1/1", "Running")


@slow
@pytest.mark.parametrize("mode", [SidecarMode.CLASSIC, SidecarMode.NATIVE])
def test_snapshot_of_injected_pods(sandbox: RunningSandbox, mode: SidecarMode) -> None:
    run(sandbox, *istio_objects(IstioParams(sidecar_mode=mode)))  # type: ignore[call-arg]
    rollouts.wait_for_rollout(sandbox.api, "istio-system", "Deployment", "istiod", GENEROUS)
    ns = new_namespace(sandbox, {"istio-injection": "enabled"})
    run(sandbox, deployment(ns, "app", {"containers": [container("app", HELLO)]}))
    ready = waits.wait_for_pods_ready(sandbox.api, ns, label_selector="app=app", count=1, timeout=GENEROUS)
    row = pods.pod_snapshot(sandbox.api, ns).to_dict("records")[0]
    assert (row["workload"], row["ready"], row["sidecar"], row["sidecar_mode"]) == ("app", "2/2", True, mode)
    if mode is SidecarMode.NATIVE:
        assert (row["init_containers"], row["containers"]) == (["istio-init", "istio-proxy"], ["app"])
    else:
        assert (row["init_containers"], row["containers"]) == (["istio-init"], ["app", "istio-proxy"])
    # two containers: the injector's default-container annotation says which one `kubectl logs` reads
    name = ready[0]["metadata"]["name"]
    assert logs.container_log(sandbox.api, ns, name) == "hello\n"


@slow
def test_recreate_pods_gives_new_ready_pods(sandbox: RunningSandbox, ns: str) -> None:
    run(
        sandbox,
        deployment(ns, "web", {"containers": [container("main", HELLO)]}, replicas=2),
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": ns},
            "spec": {
                "replicas": 1,
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [container("db", HELLO)]}},
            },
        },
    )
    before = waits.wait_for_pods_ready(sandbox.api, ns, count=3, timeout=GENEROUS)
    old_uids = {p["metadata"]["uid"] for p in before}
    old_web = {p["metadata"]["name"] for p in before if p["metadata"]["labels"]["app"] == "web"}
    replacements = pods.recreate_pods(sandbox.api, ns, GENEROUS)
    assert len(replacements) == 3
    assert all(podstatus.is_ready(p) for p in replacements)
    assert not old_uids & {p["metadata"]["uid"] for p in replacements}
    new_web = {p["metadata"]["name"] for p in replacements if p["metadata"]["labels"]["app"] == "web"}
    assert len(new_web) == 2 and not new_web & old_web
    assert "db-0" in {p["metadata"]["name"] for p in replacements}  # a StatefulSet's replacement keeps the name
    now = pods.list_pods(sandbox.api, ns)
    assert {p["metadata"]["uid"] for p in now} == {p["metadata"]["uid"] for p in replacements}


@slow
def test_delete_pods_returns_the_names(sandbox: RunningSandbox, ns: str) -> None:
    run(sandbox, deployment(ns, "web", {"containers": [container("main", HELLO)]}, replicas=2))
    before = waits.wait_for_pods_ready(sandbox.api, ns, label_selector="app=web", count=2, timeout=GENEROUS)
    deleted = pods.delete_pods(sandbox.api, ns, label_selector="app=web")
    assert deleted == sorted(p["metadata"]["name"] for p in before)
    waits.wait_for_deletion(sandbox.api, ns, "Pod", deleted, GENEROUS)
    assert pods.delete_pods(sandbox.api, ns, label_selector="app=nothing") == []


# -- logs ----------------------------------------------------------------------------------------------

SECRET = "s3cr3t-value"


def mask(text: str) -> str:
    return text.replace(SECRET, "***")


@slow
def test_logs_default_container_annotation_and_mask(sandbox: RunningSandbox, ns: str) -> None:
    spec = {
        "initContainers": [container("side", ["sh", "-c", "echo sidecar up && sleep 10000"], restartPolicy="Always")],
        "containers": [
            container("app", ["sh", "-c", f"echo token={SECRET} && echo second line && sleep 10000"]),
            container("other", ["sh", "-c", "echo other && sleep 10000"]),
        ],
    }
    annotated = {"kubectl.kubernetes.io/default-container": "app"}
    run(sandbox, deployment(ns, "web", spec, annotations=annotated), deployment(ns, "bare", spec))
    for name in ("web", "bare"):
        rollouts.wait_for_rollout(sandbox.api, ns, "Deployment", name, GENEROUS)
    pod = waits.wait_for_pods_ready(sandbox.api, ns, label_selector="app=web", count=1, timeout=GENEROUS)[0]
    name = pod["metadata"]["name"]
    assert logs.container_log(sandbox.api, ns, name) == f"token={SECRET}\nsecond line\n"
    assert logs.container_log(sandbox.api, ns, name, mask=mask) == "token=***\nsecond line\n"
    assert logs.container_log(sandbox.api, ns, name, tail_lines=1, mask=mask) == "second line\n"
    assert logs.container_log(sandbox.api, ns, name, "other") == "other\n"
    assert logs.container_log(sandbox.api, ns, name, "side") == "sidecar up\n"
    assert logs.workload_log(sandbox.api, ns, "web", mask=mask) == "token=***\nsecond line\n"
    bare = waits.wait_for_pods_ready(sandbox.api, ns, label_selector="app=bare", count=1, timeout=GENEROUS)[0]
    with pytest.raises(MeshbookError, match=r"has 2 containers and no kubectl.kubernetes.io/default-container"):
        logs.workload_log(sandbox.api, ns, "bare")
    assert "choose a container: app, other (init containers: side)" in _error(
        lambda: logs.container_log(sandbox.api, ns, bare["metadata"]["name"])
    )
    # errors are masked too: nothing leaves this module unmasked
    message = _error(lambda: logs.container_log(sandbox.api, ns, name, SECRET, mask=mask))
    assert SECRET not in message and "container *** is not valid" in message


@slow
def test_previous_log_of_a_crashing_container_is_masked(sandbox: RunningSandbox, ns: str) -> None:
    spec = {"containers": [container("main", ["sh", "-c", f"echo password={SECRET} && exit 1"])]}
    run(sandbox, deployment(ns, "crash", spec))
    found = waits.wait_for(
        sandbox.api,
        "Pod",
        # restarts 2: the container has been started again since a run ended (the sandbox keeps a
        # previous log from the next start on; a real kubelet already once the run ended)
        lambda found: len(found) == 1 and podstatus.pod_summary(found[0])[2] >= 2,
        namespace=ns,
        label_selector="app=crash",
        description="two restarts of the crashing pod",
        timeout=GENEROUS,
    )
    name = found[0]["metadata"]["name"]
    assert logs.container_log(sandbox.api, ns, name, previous=True, mask=mask) == "password=***\n"
    message = _error(lambda: logs.container_log(sandbox.api, ns, "nope", mask=mask))
    assert message == f'cannot read pod {ns}/nope: pods "nope" not found (HTTP 404)'


def _error(call: Any) -> str:
    with pytest.raises(MeshbookError) as caught:
        call()
    return str(caught.value)
