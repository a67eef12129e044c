"""The official kubernetes client against a real sandbox process: CRUD, patches, watch, logs, dry-run."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
import uuid

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.sandbox.conftest import RunningSandbox, wait_for

pytestmark = pytest.mark.slow


def _ns(sandbox: RunningSandbox) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(sandbox.api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def test_requests_without_the_token_get_401(sandbox: RunningSandbox) -> None:
    context = ssl.create_default_context(cafile=str(sandbox.info.state_dir / "ca.crt"))
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{sandbox.info.server}/api/v1/namespaces", context=context)
    assert caught.value.code == 401
    body = json.loads(caught.value.read())
    assert body["kind"] == "Status" and body["reason"] == "Unauthorized"
    request = urllib.request.Request(f"{sandbox.info.server}/version", headers={"Authorization": "Bearer wrong"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, context=context)
    assert caught.value.code == 401


def test_version_and_system_namespaces(sandbox: RunningSandbox) -> None:
    version = client.VersionApi(sandbox.api).get_code()
    assert (version.major, version.minor) == ("1", "33")
    names = {ns.metadata.name for ns in client.CoreV1Api(sandbox.api).list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names


def test_configmap_crud_and_errors(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm", labels={"a": "1"}), data={"k": "v"})
    created = core.create_namespaced_config_map(ns, body)
    assert created.metadata.uid and created.metadata.resource_version and created.metadata.creation_timestamp
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map(ns, body)
    assert caught.value.status == 409
    assert json.loads(caught.value.body)["reason"] == "AlreadyExists"
    got = core.read_namespaced_config_map("cm", ns)
    assert got.data == {"k": "v"}
    got.data = {"k": "w"}
    replaced = core.replace_namespaced_config_map("cm", ns, got)
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    got.data = {"k": "stale"}
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("cm", ns, got)  # stale resourceVersion
    assert caught.value.status == 409 and json.loads(caught.value.body)["reason"] == "Conflict"
    listed = core.list_namespaced_config_map(ns, label_selector="a=1")
    assert [c.metadata.name for c in listed.items] == ["cm"]
    assert core.list_namespaced_config_map(ns, label_selector="a notin (1)").items == [] or all(
        c.metadata.name != "cm" for c in core.list_namespaced_config_map(ns, label_selector="a notin (1)").items
    )
    core.delete_namespaced_config_map("cm", ns)
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("cm", ns)
    assert caught.value.status == 404
    assert json.loads(caught.value.body)["message"] == 'configmaps "cm" not found'


def test_secret_string_data_becomes_data(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    core.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name="s"), string_data={"x": "y"}))
    secret = core.read_namespaced_secret("s", ns)
    assert secret.type == "Opaque" and secret.data == {"x": "eQ=="}
    typed = core.list_namespaced_secret(ns, field_selector="type=Opaque")
    assert [s.metadata.name for s in typed.items] == ["s"]


def test_patches_of_every_type(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="p"), data={"a": "1"}))
    # typed API with a dict body: strategic merge patch
    core.patch_namespaced_config_map("p", ns, {"data": {"b": "2"}})
    # JSON patch
    core.api_client.set_default_header("Content-Type", "application/json-patch+json")
    try:
        core.patch_namespaced_config_map("p", ns, [{"op": "replace", "path": "/data/a", "value": "10"}])
    finally:
        core.api_client.default_headers.pop("Content-Type", None)
    # merge patch deleting a key
    core.patch_namespaced_config_map("p", ns, {"data": {"b": None}}, _content_type="application/merge-patch+json")
    assert core.read_namespaced_config_map("p", ns).data == {"a": "10"}
    # server-side apply, creating a missing object
    applied = core.patch_namespaced_config_map(
        "ssa",
        ns,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"z": "1"}},
        field_manager="meshbook-test",
        _content_type="application/apply-patch+yaml",
    )
    assert applied.data == {"z": "1"}
    assert any(m.manager == "meshbook-test" and m.operation == "Apply" for m in applied.metadata.managed_fields)


def test_dry_run_persists_nothing(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    before = core.list_namespaced_config_map(ns).metadata.resource_version
    out = core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dry")), dry_run="All"
    )
    assert out.metadata.name == "dry"
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("dry", ns)
    assert core.list_namespaced_config_map(ns).metadata.resource_version == before


def test_watch_sees_changes_and_resumes(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w1")))
    core.patch_namespaced_config_map("w1", ns, {"data": {"x": "1"}})
    core.delete_namespaced_config_map("w1", ns)
    seen = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, ns, resource_version=start, timeout_seconds=30):
        if event["object"].metadata.name == "w1":
            seen.append(event["type"])
        if len(seen) == 3:
            w.stop()
    assert seen == ["ADDED", "MODIFIED", "DELETED"]


def test_deployment_rolls_out_pods_with_logs(sandbox: RunningSandbox) -> None:
    apps = client.AppsV1Api(sandbox.api)
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    labels = {"app": "hello"}
    apps.create_namespaced_deployment(
        ns,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "hello"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "initContainers": [
                            {
                                "name": "init",
                                "image": "busybox",
                                "command": ["sh", "-c", "echo init $GREETING"],
                                "env": [{"name": "GREETING", "value": "hi"}],
                            }
                        ],
                        "containers": [
                            {
                                "name": "main",
                                "image": "alpine",
                                "command": [
                                    "sh",
                                    "-c",
                                    "echo hello $(NAME) && echo going to sleep... && sleep 10000",
                                ],
                                "env": [{"name": "NAME", "value": "world"}],
                            }
                        ],
                    },
                },
            },
        },
    )
    deploy = wait_for(
        apps.list_namespaced_deployment,
        lambda d: d.metadata.name == "hello" and (d.status.available_replicas or 0) == 2,
        namespace=ns,
    )
    assert deploy.status.updated_replicas == 2  # type: ignore[attr-defined]
    pods = core.list_namespaced_pod(ns, label_selector="app=hello").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.status.phase == "Running"
        assert pod.metadata.name.startswith("hello-")
        assert pod.metadata.owner_references[0].kind == "ReplicaSet"
        assert all(c.ready for c in pod.status.container_statuses)
        assert core.read_namespaced_pod_log(pod.metadata.name, ns, container="init") == "init hi\n"
        assert (
            core.read_namespaced_pod_log(pod.metadata.name, ns, container="main") == "hello world\ngoing to sleep...\n"
        )
    # Deleting a pod brings a replacement with a new name.
    victim = pods[0].metadata.name
    core.delete_namespaced_pod(victim, ns)
    wait_for(
        core.list_namespaced_pod,
        lambda p: p.metadata.name not in {x.metadata.name for x in pods} and p.status.phase == "Running",
        namespace=ns,
    )


def test_crash_looping_container(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    core.create_namespaced_pod(
        ns,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="crash"),
            spec=client.V1PodSpec(
                containers=[client.V1Container(name="c", image="alpine", command=["sh", "-c", "echo boom; exit 3"])]
            ),
        ),
    )
    pod = wait_for(
        core.list_namespaced_pod,
        lambda p: (
            p.metadata.name == "crash"
            and (p.status.container_statuses or [None])[0] is not None
            and p.status.container_statuses[0].restart_count >= 2
        ),
        namespace=ns,
    )
    status = pod.status.container_statuses[0]  # type: ignore[attr-defined]
    assert status.last_state.terminated.exit_code == 3
    assert core.read_namespaced_pod_log("crash", ns, previous=True) == "boom\n"


def test_missing_secret_volume_holds_pod_until_created(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    core.create_namespaced_pod(
        ns,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "needs-secret"},
            "spec": {
                "volumes": [{"name": "tls", "secret": {"secretName": "vault-tls"}}],
                "containers": [{"name": "c", "image": "alpine", "command": ["sleep", "3600"]}],
            },
        },
    )
    wait_for(
        core.list_namespaced_event,
        lambda e: e.reason == "FailedMount" and 'secret "vault-tls" not found' in e.message,
        namespace=ns,
    )
    pod = core.read_namespaced_pod("needs-secret", ns)
    assert pod.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    core.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name="vault-tls"), data={}))
    wait_for(
        core.list_namespaced_pod,
        lambda p: p.metadata.name == "needs-secret" and p.status.phase == "Running",
        namespace=ns,
    )
