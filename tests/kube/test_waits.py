"""Watch-based waits against a sandbox: success, timeouts with what was last seen, 410 and stream resumes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from meshbook.errors import ExitCode, MeshbookError, UnreachableError, WaitTimeoutError
from meshbook.kube import rollouts, waits
from meshbook.kube.apply import Applier
from meshbook.kube.pods import delete_pods
from meshbook.sandbox import control
from tests.sandbox.conftest import RunningSandbox, start_sandbox

pytestmark = pytest.mark.slow

HELLO = ["sh", "-c", "echo hello && sleep 10000"]
FAIL = ["sh", "-c", "exit 1"]
GENEROUS = 60.0


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    running = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    try:
        yield running
    finally:
        running.api.close()
        control.down(running.info.state_dir)


@pytest.fixture
def ns(sandbox: RunningSandbox) -> str:
    name = f"w-{uuid.uuid4().hex[:8]}"
    Applier(sandbox.api).apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def workload(kind: str, namespace: str, name: str, command: list[str], replicas: int = 1) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "main", "image": "busybox", "command": command}]},
        },
    }
    if kind != "DaemonSet":
        spec["replicas"] = replicas
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def apply(sandbox: RunningSandbox, obj: dict[str, Any]) -> None:
    Applier(sandbox.api).apply(obj)


def test_pods_ready_and_rollout_of_a_deployment(sandbox: RunningSandbox, ns: str) -> None:
    apply(sandbox, workload("Deployment", ns, "hello", HELLO, replicas=2))
    deployment = rollouts.wait_for_rollout(sandbox.api, ns, "Deployment", "hello", GENEROUS)
    assert deployment["status"]["availableReplicas"] == 2
    assert rollouts.rollout_status(deployment) == (True, 'deployment "hello" successfully rolled out')
    pods = waits.wait_for_pods_ready(sandbox.api, ns, label_selector="app=hello", count=2, timeout=GENEROUS)
    names = [p["metadata"]["name"] for p in pods]
    assert len(set(names)) == 2 and names == sorted(names)
    assert all(p["metadata"]["labels"]["app"] == "hello" for p in pods)
    one = waits.wait_for_pod_ready(sandbox.api, ns, names[0], GENEROUS)
    assert one["metadata"]["uid"] == pods[0]["metadata"]["uid"]


def test_pods_ready_times_out_naming_what_was_awaited_and_last_seen(sandbox: RunningSandbox, ns: str) -> None:
    apply(sandbox, workload("Deployment", ns, "crash", FAIL))
    with pytest.raises(WaitTimeoutError) as caught:
        waits.wait_for_pods_ready(sandbox.api, ns, label_selector="app=crash", count=1, timeout=3)
    message = str(caught.value)
    pattern = (
        rf"timed out after 3s waiting for 1 Ready pod with app=crash in namespace {ns}; "
        r"last seen: crash-[a-z0-9]+-[a-z0-9]+ 0/1 (CrashLoopBackOff|Error|Running) \(restarts \d+\)"
    )
    assert re.fullmatch(pattern, message), message
    assert caught.value.exit_code is ExitCode.TIMEOUT


def test_rollout_times_out_with_kubectl_progress_message(sandbox: RunningSandbox, ns: str) -> None:
    apply(sandbox, workload("Deployment", ns, "crash", FAIL))
    with pytest.raises(WaitTimeoutError) as caught:
        rollouts.wait_for_rollout(sandbox.api, ns, "Deployment", "crash", 3)
    assert str(caught.value) == (
        f"timed out after 3s waiting for rollout of Deployment {ns}/crash; last seen: "
        'Waiting for deployment "crash" rollout to finish: 0 of 1 updated replicas are available...'
    )


def test_rollout_of_a_missing_object_says_not_found(sandbox: RunningSandbox, ns: str) -> None:
    with pytest.raises(WaitTimeoutError, match=rf"last seen: StatefulSet {ns}/nope not found$"):
        rollouts.wait_for_rollout(sandbox.api, ns, "StatefulSet", "nope", 1)


def test_rollout_of_a_statefulset_and_a_daemonset(sandbox: RunningSandbox, ns: str) -> None:
    apply(sandbox, workload("StatefulSet", ns, "db", HELLO, replicas=2))
    apply(sandbox, workload("DaemonSet", ns, "agent", HELLO))
    sts = rollouts.wait_for_rollout(sandbox.api, ns, "StatefulSet", "db", GENEROUS)
    assert sts["status"]["readyReplicas"] == 2 and sts["kind"] == "StatefulSet"
    ds = rollouts.wait_for_rollout(sandbox.api, ns, "DaemonSet", "agent", GENEROUS)
    assert ds["status"]["numberAvailable"] == ds["status"]["desiredNumberScheduled"] == 1
    names = [p["metadata"]["name"] for p in waits.wait_for_pods_ready(sandbox.api, ns, label_selector="app=db")]
    assert names == ["db-0", "db-1"]


def test_wait_for_deletion_of_pods_and_of_a_deployment(sandbox: RunningSandbox, ns: str) -> None:
    apply(sandbox, workload("Deployment", ns, "hello", HELLO))
    waits.wait_for_pods_ready(sandbox.api, ns, label_selector="app=hello", count=1, timeout=GENEROUS)
    deleted = delete_pods(sandbox.api, ns, "app=hello")
    assert len(deleted) == 1
    waits.wait_for_deletion(sandbox.api, ns, "Pod", deleted, GENEROUS)
    pods = client.CoreV1Api(sandbox.api).list_namespaced_pod(ns).items
    assert deleted[0] not in {p.metadata.name for p in pods}
    client.AppsV1Api(sandbox.api).delete_namespaced_deployment("hello", ns)
    waits.wait_for_deletion(sandbox.api, ns, "Deployment", "hello", GENEROUS)
    assert client.AppsV1Api(sandbox.api).list_namespaced_deployment(ns).items == []


def test_wait_for_deletion_times_out_listing_what_is_still_there(sandbox: RunningSandbox, ns: str) -> None:
    apply(sandbox, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "stays", "namespace": ns}})
    with pytest.raises(WaitTimeoutError) as caught:
        waits.wait_for_deletion(sandbox.api, ns, "ConfigMap", ["stays", "gone"], 1)
    assert str(caught.value) == (
        f"timed out after 1s waiting for ConfigMap gone, stays in namespace {ns} to be deleted; last seen: stays"
    )


def _namespaces(objects: Any) -> set[str]:
    return {o["metadata"]["name"] for o in objects}


def test_a_410_expired_watch_is_replaced_by_a_fresh_list(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    wanted = f"w-{uuid.uuid4().hex[:8]}"
    calls: list[str] = []

    def list_namespace(**kwargs: Any) -> Any:
        calls.append("watch" if kwargs.get("watch") else "list")
        if kwargs.get("watch") and calls.count("watch") == 1:
            # the change happens while our resourceVersion is too new for the server: 410 Expired
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=wanted)))
            kwargs["resource_version"] = "999999999"
        return core.list_namespace(**kwargs)

    found = waits.wait_for(
        sandbox.api, list_namespace, lambda objs: wanted in _namespaces(objs), description="a namespace", timeout=30
    )
    assert wanted in _namespaces(found)
    assert calls == ["list", "watch", "list"]


def test_an_ended_watch_resumes_from_the_last_resource_version(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    first, second = (f"w-{uuid.uuid4().hex[:8]}" for _ in range(2))
    watches: list[dict[str, Any]] = []
    lists: list[dict[str, Any]] = []

    def list_namespace(**kwargs: Any) -> Any:
        (watches if kwargs.get("watch") else lists).append(dict(kwargs))
        if kwargs.get("watch"):
            if len(watches) == 1:
                core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=first)))
                kwargs["timeout_seconds"] = 1  # the server ends this watch early
            else:
                # created between two watches: only resuming from the last version seen delivers it
                core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=second)))
        return core.list_namespace(**kwargs)

    found = waits.wait_for(
        sandbox.api, list_namespace, lambda objs: second in _namespaces(objs), description="a namespace", timeout=60
    )
    assert {first, second} <= _namespaces(found)
    assert len(watches) == 2 and len(lists) == 1  # resumed, not re-listed
    first_ns = core.read_namespace(first)
    assert int(watches[1]["resource_version"]) >= int(first_ns.metadata.resource_version)


def test_timeout_message_of_the_generic_wait(sandbox: RunningSandbox, ns: str) -> None:
    with pytest.raises(WaitTimeoutError) as caught:
        waits.wait_for(
            sandbox.api,
            "Secret",
            lambda objs: False,
            namespace=ns,
            description="a Secret that never comes",
            timeout=1,
            last_seen=lambda objs: f"{len(objs)} secrets",
        )
    assert re.fullmatch(
        r"timed out after 1s waiting for a Secret that never comes; last seen: \d+ secrets", str(caught.value)
    )


def test_unknown_kind_is_a_clear_error(sandbox: RunningSandbox) -> None:
    with pytest.raises(MeshbookError, match="cannot wait for Gadget: supported kinds are ConfigMap, DaemonSet"):
        waits.wait_for(sandbox.api, "Gadget", lambda objs: True, description="gadgets", timeout=1)


def test_unreachable_cluster() -> None:
    configuration = client.Configuration()
    configuration.host = "https://127.0.0.1:9"  # nothing listens on the discard port
    configuration.retries = 0
    api = client.ApiClient(configuration)
    with pytest.raises(UnreachableError, match=re.escape("cannot reach the cluster at https://127.0.0.1:9")):
        waits.wait_for_pods_ready(api, "default", timeout=5)


def test_a_cluster_that_dies_mid_wait_is_unreachable_not_a_timeout(tmp_path: Path) -> None:
    doomed = start_sandbox(tmp_path / "doomed")
    try:
        core = client.CoreV1Api(doomed.api)

        def list_namespace(**kwargs: Any) -> Any:
            if kwargs.get("watch"):
                control.down(doomed.info.state_dir)
            return core.list_namespace(**kwargs)

        with pytest.raises(UnreachableError, match=re.escape(f"cannot reach the cluster at {doomed.info.server}")):
            waits.wait_for(doomed.api, list_namespace, lambda objs: False, description="nothing", timeout=GENEROUS)
    finally:
        doomed.api.close()
        control.down(doomed.info.state_dir)


def test_a_pod_whose_secret_volume_stays_missing_ends_the_wait_early(sandbox: RunningSandbox, ns: str) -> None:
    deployment = workload("Deployment", ns, "mounts", HELLO)
    template = deployment["spec"]["template"]["spec"]
    template["volumes"] = [{"name": "tls", "secret": {"secretName": "vault-tls"}}]
    template["containers"][0]["volumeMounts"] = [{"name": "tls", "mountPath": "/vault/tls"}]
    apply(sandbox, deployment)
    with pytest.raises(waits.WaitAbandoned) as caught:
        waits.wait_for_pods_ready(
            sandbox.api,
            ns,
            label_selector="app=mounts",
            count=1,
            timeout=GENEROUS,
            start_failure=lambda pods: rollouts.mount_failure(sandbox.api, ns, pods, grace=1.0),
        )
    assert caught.value.cause.kind is waits.HopelessKind.NOT_STARTED
    assert re.search(
        r'pod mounts-\S+ cannot start: MountVolume.SetUp failed for volume "tls" : secret "vault-tls" not found '
        r"\(for \d+s\)",
        str(caught.value),
    ), caught.value
    # Once the Secret exists the same pod starts, and the same question no longer finds a reason.
    client.CoreV1Api(sandbox.api).create_namespaced_secret(ns, {"metadata": {"name": "vault-tls"}, "data": {}})
    pods = waits.wait_for_pods_ready(sandbox.api, ns, label_selector="app=mounts", count=1, timeout=GENEROUS)
    assert rollouts.mount_failure(sandbox.api, ns, pods, grace=0.0) is None


def test_the_webhook_a_refusal_names() -> None:
    assert (
        rollouts.failed_webhook(
            'Internal error occurred: failed calling webhook "pods.vault-secrets-webhook.admission.banzaicloud.com": '
            "failed to call webhook: x509: certificate is not valid"
        )
        == "pods.vault-secrets-webhook.admission.banzaicloud.com"
    )
    assert rollouts.failed_webhook('admission webhook "deny.example.com" denied the request: no') == "deny.example.com"
    assert rollouts.failed_webhook('pods "app-1" is forbidden: exceeded quota: compute') is None
