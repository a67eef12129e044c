"""More of the API through the official client's typed APIs: every built-in kind, selectors, paging,
deletion and garbage collection, workload controllers, tokens, watches, subresources and the kubelet.

Every response goes through the client's strict models, so a field of the wrong shape fails the test.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import portforward

from tests.sandbox.conftest import RunningSandbox, wait_for

pytestmark = pytest.mark.slow

M = client.V1ObjectMeta
TIMEOUT = 60  # generous bound on every watch; the happy path never gets near it


# -- helpers -------------------------------------------------------------------------------------


def _suffix() -> str:
    return uuid.uuid4().hex[:8]


def _ns(sandbox: RunningSandbox) -> str:
    name = f"m-{_suffix()}"
    client.CoreV1Api(sandbox.api).create_namespace(client.V1Namespace(metadata=M(name=name)))
    return name


def _status_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body or "null")
    return body


def _container(name: str, *command: str, **kw: Any) -> client.V1Container:
    return client.V1Container(name=name, image="busybox", command=list(command), **kw)


def _pod(name: str, *command: str, labels: dict[str, str] | None = None, **spec: Any) -> client.V1Pod:
    return client.V1Pod(
        metadata=M(name=name, labels=labels),
        spec=client.V1PodSpec(containers=[_container("main", *command)], **spec),
    )


def _template(labels: dict[str, str], *command: str, ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "busybox", "command": list(command)}
    if ports:
        container["ports"] = ports
    return {"metadata": {"labels": labels}, "spec": {"containers": [container]}}


def _workload(kind: str, name: str, replicas: int | None = 1, **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": _template(labels, "sh", "-c", "echo up; sleep 10000"),
            **spec,
        },
    }
    if replicas is not None:
        body["spec"]["replicas"] = replicas
    return body


def _wait(list_fn: Callable[..., Any], predicate: Callable[[Any], bool], **kwargs: Any) -> Any:
    """conftest's `wait_for`, typed for attribute access on the model it returns."""
    return wait_for(list_fn, predicate, timeout=TIMEOUT, **kwargs)


def _running_and_ready(name: str) -> Callable[[Any], bool]:
    def check(pod: Any) -> bool:
        conditions = {c.type: c.status for c in pod.status.conditions or []}
        return bool(pod.metadata.name == name and pod.status.phase == "Running" and conditions.get("Ready") == "True")

    return check


def _wait_gone(list_fn: Callable[..., Any], name: str, timeout: int = TIMEOUT, **kwargs: Any) -> None:
    """List, then watch from the list's resourceVersion until the object named `name` is DELETED."""
    selector = f"metadata.name={name}"
    listed = list_fn(field_selector=selector, **kwargs)
    if not listed.items:
        return
    w = watch.Watch()
    for event in w.stream(
        list_fn,
        field_selector=selector,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=timeout,
        **kwargs,
    ):
        if event["type"] == "DELETED":
            w.stop()
            return
    raise AssertionError(f"{name} was not deleted within {timeout}s")


def _wait_raw(
    list_fn: Callable[..., Any], predicate: Callable[[dict[str, Any]], bool], timeout: int = TIMEOUT, **kwargs: Any
) -> dict[str, Any]:
    """Like `wait_for`, on the JSON objects (for kinds whose answers do not parse into the models)."""
    w = watch.Watch()
    for event in w.stream(list_fn, timeout_seconds=timeout, deserialize=False, **kwargs):
        obj: dict[str, Any] = event["object"]
        if predicate(obj):
            w.stop()
            return obj
    raise AssertionError(f"no object satisfied the condition within {timeout}s")


def _events_after(list_fn: Callable[..., Any], resource_version: str, count: int, **kwargs: Any) -> list[Any]:
    """The first `count` events of a watch started at `resource_version`."""
    out: list[Any] = []
    w = watch.Watch()
    for event in w.stream(list_fn, resource_version=resource_version, timeout_seconds=TIMEOUT, **kwargs):
        out.append(event)
        if len(out) == count:
            w.stop()
            return out
    raise AssertionError(f"only {len(out)} of {count} events within {TIMEOUT}s: {out}")


def _jwt_claims(token: str) -> dict[str, Any]:
    header, payload, signature = token.split(".")
    assert header and signature
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


# -- list, read and delete every built-in kind ---------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """A built-in kind and how to make one through its typed API (`{verb}_[namespaced_]{method}`)."""

    plural: str
    api: type[Any]
    method: str
    kind: str
    model: type[Any]
    body: Callable[[str, str], Any]  # (name, namespace) -> request body
    namespaced: bool = True
    name: Callable[[str], str] = lambda suffix: f"x-{suffix}"

    def call(self, sandbox: RunningSandbox, verb: str, ns: str, *args: Any, **kwargs: Any) -> Any:
        api = self.api(sandbox.api)
        if self.namespaced:
            if verb in ("list", "create"):
                return getattr(api, f"{verb}_namespaced_{self.method}")(ns, *args, **kwargs)
            return getattr(api, f"{verb}_namespaced_{self.method}")(*args, ns, **kwargs)
        return getattr(api, f"{verb}_{self.method}")(*args, **kwargs)


def _crd_name(suffix: str) -> str:
    return f"gadgets{suffix}.example.meshbook.dev"


def _crd(name: str, ns: str) -> client.V1CustomResourceDefinition:
    plural, group = name.split(".", 1)
    kind = "Gadget" + plural.removeprefix("gadgets")
    return client.V1CustomResourceDefinition(
        metadata=M(name=name),
        spec=client.V1CustomResourceDefinitionSpec(
            group=group,
            scope="Namespaced",
            names=client.V1CustomResourceDefinitionNames(plural=plural, singular=plural[:-1], kind=kind),
            versions=[
                client.V1CustomResourceDefinitionVersion(
                    name="v1",
                    served=True,
                    storage=True,
                    schema=client.V1CustomResourceValidation(
                        open_apiv3_schema=client.V1JSONSchemaProps(
                            type="object",
                            properties={
                                "spec": client.V1JSONSchemaProps(
                                    type="object",
                                    properties={"size": client.V1JSONSchemaProps(type="integer")},
                                )
                            },
                        )
                    ),
                )
            ],
        ),
    )


def _webhook(cls: type[Any]) -> Any:
    return cls(
        name="check.example.meshbook.dev",
        client_config=client.AdmissionregistrationV1WebhookClientConfig(url="https://webhook.example.invalid/"),
        admission_review_versions=["v1"],
        side_effects="None",
        rules=[],
    )


KINDS: tuple[Kind, ...] = (
    Kind(
        "namespaces",
        client.CoreV1Api,
        "namespace",
        "Namespace",
        client.V1Namespace,
        lambda name, ns: client.V1Namespace(metadata=M(name=name)),
        namespaced=False,
    ),
    Kind(
        "pods",
        client.CoreV1Api,
        "pod",
        "Pod",
        client.V1Pod,
        lambda name, ns: _pod(name, "sh", "-c", "sleep 10000"),
    ),
    Kind(
        "services",
        client.CoreV1Api,
        "service",
        "Service",
        client.V1Service,
        lambda name, ns: client.V1Service(
            metadata=M(name=name),
            spec=client.V1ServiceSpec(
                selector={"app": name}, ports=[client.V1ServicePort(name="http", port=80, target_port=8080)]
            ),
        ),
    ),
    Kind(
        "endpoints",
        client.CoreV1Api,
        "endpoints",
        "Endpoints",
        client.V1Endpoints,
        lambda name, ns: client.V1Endpoints(
            metadata=M(name=name),
            subsets=[
                client.V1EndpointSubset(
                    addresses=[client.V1EndpointAddress(ip="10.1.2.3")],
                    ports=[client.CoreV1EndpointPort(name="http", port=8080, protocol="TCP")],
                )
            ],
        ),
    ),
    Kind(
        "serviceaccounts",
        client.CoreV1Api,
        "service_account",
        "ServiceAccount",
        client.V1ServiceAccount,
        lambda name, ns: client.V1ServiceAccount(metadata=M(name=name)),
    ),
    Kind(
        "secrets",
        client.CoreV1Api,
        "secret",
        "Secret",
        client.V1Secret,
        lambda name, ns: client.V1Secret(metadata=M(name=name), string_data={"password": "s3cr3t"}),
    ),
    Kind(
        "configmaps",
        client.CoreV1Api,
        "config_map",
        "ConfigMap",
        client.V1ConfigMap,
        lambda name, ns: client.V1ConfigMap(metadata=M(name=name), data={"k": "v"}),
    ),
    Kind(
        "events",
        client.CoreV1Api,
        "event",
        "Event",
        client.CoreV1Event,
        lambda name, ns: client.CoreV1Event(
            metadata=M(name=name),
            involved_object=client.V1ObjectReference(kind="ConfigMap", name="cm", namespace=ns, api_version="v1"),
            reason="Tested",
            message="written by a test",
            type="Normal",
            count=1,
        ),
    ),
    Kind(
        "persistentvolumeclaims",
        client.CoreV1Api,
        "persistent_volume_claim",
        "PersistentVolumeClaim",
        client.V1PersistentVolumeClaim,
        lambda name, ns: client.V1PersistentVolumeClaim(
            metadata=M(name=name),
            spec=client.V1PersistentVolumeClaimSpec(
                access_modes=["ReadWriteOnce"],
                resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
            ),
        ),
    ),
    Kind(
        "deployments",
        client.AppsV1Api,
        "deployment",
        "Deployment",
        client.V1Deployment,
        lambda name, ns: _workload("Deployment", name),
    ),
    Kind(
        "replicasets",
        client.AppsV1Api,
        "replica_set",
        "ReplicaSet",
        client.V1ReplicaSet,
        lambda name, ns: _workload("ReplicaSet", name),
    ),
    Kind(
        "statefulsets",
        client.AppsV1Api,
        "stateful_set",
        "StatefulSet",
        client.V1StatefulSet,
        lambda name, ns: _workload("StatefulSet", name, serviceName=name),
    ),
    Kind(
        "daemonsets",
        client.AppsV1Api,
        "daemon_set",
        "DaemonSet",
        client.V1DaemonSet,
        lambda name, ns: _workload("DaemonSet", name, replicas=None),
    ),
    Kind(
        "roles",
        client.RbacAuthorizationV1Api,
        "role",
        "Role",
        client.V1Role,
        lambda name, ns: client.V1Role(
            metadata=M(name=name),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list"])],
        ),
    ),
    Kind(
        "rolebindings",
        client.RbacAuthorizationV1Api,
        "role_binding",
        "RoleBinding",
        client.V1RoleBinding,
        lambda name, ns: client.V1RoleBinding(
            metadata=M(name=name),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="reader"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="default", namespace=ns)],
        ),
    ),
    Kind(
        "clusterroles",
        client.RbacAuthorizationV1Api,
        "cluster_role",
        "ClusterRole",
        client.V1ClusterRole,
        lambda name, ns: client.V1ClusterRole(
            metadata=M(name=name),
            rules=[client.V1PolicyRule(api_groups=["apps"], resources=["deployments"], verbs=["*"])],
        ),
        namespaced=False,
    ),
    Kind(
        "clusterrolebindings",
        client.RbacAuthorizationV1Api,
        "cluster_role_binding",
        "ClusterRoleBinding",
        client.V1ClusterRoleBinding,
        lambda name, ns: client.V1ClusterRoleBinding(
            metadata=M(name=name),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
            subjects=[client.RbacV1Subject(kind="User", name="jane", api_group="rbac.authorization.k8s.io")],
        ),
        namespaced=False,
    ),
    Kind(
        "mutatingwebhookconfigurations",
        client.AdmissionregistrationV1Api,
        "mutating_webhook_configuration",
        "MutatingWebhookConfiguration",
        client.V1MutatingWebhookConfiguration,
        lambda name, ns: client.V1MutatingWebhookConfiguration(
            metadata=M(name=name), webhooks=[_webhook(client.V1MutatingWebhook)]
        ),
        namespaced=False,
    ),
    Kind(
        "validatingwebhookconfigurations",
        client.AdmissionregistrationV1Api,
        "validating_webhook_configuration",
        "ValidatingWebhookConfiguration",
        client.V1ValidatingWebhookConfiguration,
        lambda name, ns: client.V1ValidatingWebhookConfiguration(
            metadata=M(name=name), webhooks=[_webhook(client.V1ValidatingWebhook)]
        ),
        namespaced=False,
    ),
    Kind(
        "customresourcedefinitions",
        client.ApiextensionsV1Api,
        "custom_resource_definition",
        "CustomResourceDefinition",
        client.V1CustomResourceDefinition,
        _crd,
        namespaced=False,
        name=_crd_name,
    ),
    Kind(
        "leases",
        client.CoordinationV1Api,
        "lease",
        "Lease",
        client.V1Lease,
        lambda name, ns: client.V1Lease(
            metadata=M(name=name), spec=client.V1LeaseSpec(holder_identity="test", lease_duration_seconds=15)
        ),
    ),
    Kind(
        "nodes",
        client.CoreV1Api,
        "node",
        "Node",
        client.V1Node,
        lambda name, ns: client.V1Node(metadata=M(name=name, labels={"kubernetes.io/hostname": name})),
        namespaced=False,
    ),
)


def _list_fn(sandbox: RunningSandbox, kind: Kind) -> Callable[..., Any]:
    api = kind.api(sandbox.api)
    fn: Callable[..., Any] = getattr(
        api, f"list_namespaced_{kind.method}" if kind.namespaced else f"list_{kind.method}"
    )
    return fn


@pytest.mark.parametrize(
    "kind",
    KINDS,
    ids=[k.plural for k in KINDS],
)
def test_create_list_and_read_every_builtin_kind(sandbox: RunningSandbox, kind: Kind) -> None:
    ns = _ns(sandbox)
    name = kind.name(_suffix())
    created = kind.call(sandbox, "create", ns, kind.body(name, ns))
    assert isinstance(created, kind.model)
    assert created.metadata.name == name and created.metadata.uid
    assert (created.kind, created.metadata.namespace) == (kind.kind, ns if kind.namespaced else None)

    read = kind.call(sandbox, "read", ns, name)
    assert isinstance(read, kind.model)
    assert read.metadata.uid == created.metadata.uid
    assert read.metadata.creation_timestamp == created.metadata.creation_timestamp
    assert isinstance(read.metadata.creation_timestamp, datetime)

    listed = kind.call(sandbox, "list", ns)
    assert listed.kind == f"{kind.kind}List"
    assert int(listed.metadata.resource_version) >= int(created.metadata.resource_version)
    assert all(isinstance(item, kind.model) for item in listed.items)
    assert [item.metadata.uid for item in listed.items if item.metadata.name == name] == [created.metadata.uid]
    by_name = kind.call(sandbox, "list", ns, field_selector=f"metadata.name={name}")
    assert [item.metadata.uid for item in by_name.items] == [created.metadata.uid]


@pytest.mark.parametrize(
    "kind",
    KINDS,
    ids=[k.plural for k in KINDS],
)
def test_delete_every_builtin_kind(sandbox: RunningSandbox, kind: Kind) -> None:
    ns = _ns(sandbox)
    name = kind.name(_suffix())
    # Created raw: parsing the answer to a create is the other test's business.
    raw = kind.call(sandbox, "create", ns, kind.body(name, ns), _preload_content=False)
    uid = json.loads(raw.data)["metadata"]["uid"]
    answer = kind.call(sandbox, "delete", ns, name)  # parsed into the model the client declares
    if isinstance(answer, dict):  # declared as a Status or the object
        if answer["kind"] == "Status":
            assert (answer["status"], answer["details"]["name"]) == ("Success", name)
        else:
            assert (answer["kind"], answer["metadata"]["uid"]) == (kind.kind, uid)
    else:
        assert isinstance(answer, kind.model) and answer.metadata.uid == uid
    _wait_gone(_list_fn(sandbox, kind), name, **({"namespace": ns} if kind.namespaced else {}))
    with pytest.raises(ApiException) as caught:
        kind.call(sandbox, "read", ns, name)
    assert caught.value.status == 404
    status = _status_of(caught.value)
    assert (status["kind"], status["reason"], status["details"]["name"]) == ("Status", "NotFound", name)


def test_deleting_a_crd_deletes_its_custom_resources(sandbox: RunningSandbox) -> None:
    ext = client.ApiextensionsV1Api(sandbox.api)
    custom = client.CustomObjectsApi(sandbox.api)
    ns = _ns(sandbox)
    name = _crd_name(_suffix())
    crd = _crd(name, ns)
    plural, group, kind = crd.spec.names.plural, crd.spec.group, crd.spec.names.kind
    ext.create_custom_resource_definition(crd)
    gadget = {"apiVersion": f"{group}/v1", "kind": kind, "metadata": {"name": "one"}, "spec": {"size": 1}}
    custom.create_namespaced_custom_object(group, "v1", ns, plural, gadget)
    listed = custom.list_namespaced_custom_object(group, "v1", ns, plural)
    assert [o["metadata"]["name"] for o in listed["items"]] == ["one"]
    ext.delete_custom_resource_definition(name)
    _wait_gone(ext.list_custom_resource_definition, name)
    with pytest.raises(ApiException) as caught:
        custom.list_namespaced_custom_object(group, "v1", ns, plural)
    assert caught.value.status == 404
    # A new definition of the same resource starts empty: the old objects went with the old definition.
    ext.create_custom_resource_definition(_crd(name, ns))
    assert custom.list_namespaced_custom_object(group, "v1", ns, plural)["items"] == []


def test_bootstrap_objects_parse(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    node = core.read_node("sandbox")
    assert node.status.node_info.kubelet_version.startswith("v1.")
    assert {a.type for a in node.status.addresses} == {"InternalIP", "Hostname"}
    assert [c.type for c in node.status.conditions if c.status == "True"] == ["Ready"]
    service = core.read_namespaced_service("kubernetes", "default")
    assert service.spec.cluster_ip == "10.96.0.1" and service.spec.ports[0].port == 443
    assert core.read_namespace("kube-system").status.phase == "Active"
    ns = _ns(sandbox)
    sa = _wait(core.list_namespaced_service_account, lambda s: s.metadata.name == "default", namespace=ns)
    assert isinstance(sa, client.V1ServiceAccount)
    root_ca = _wait(core.list_namespaced_config_map, lambda c: c.metadata.name == "kube-root-ca.crt", namespace=ns)
    assert root_ca.data["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")


# -- selectors and paging ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled_pods(sandbox: RunningSandbox) -> Iterator[str]:
    """A namespace with four pods: three running forever with various labels, one that completed."""
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    for name, labels in (
        ("api-prod", {"app": "api", "env": "prod", "tier": "front"}),
        ("api-staging", {"app": "api", "env": "staging", "tier": "front"}),
        ("db-prod", {"app": "db", "env": "prod", "legacy": "yes"}),
    ):
        core.create_namespaced_pod(ns, _pod(name, "sh", "-c", "sleep 10000", labels=labels))
    core.create_namespaced_pod(
        ns, _pod("job-done", "sh", "-c", "exit 0", labels={"app": "job"}, restart_policy="Never")
    )
    for name in ("api-prod", "api-staging", "db-prod"):
        _wait(core.list_namespaced_pod, _running_and_ready(name), namespace=ns)
    _wait(
        core.list_namespaced_pod,
        lambda p: p.metadata.name == "job-done" and p.status.phase == "Succeeded",
        namespace=ns,
    )
    yield ns


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("env in (prod, staging)", ["api-prod", "api-staging", "db-prod"]),
        ("env notin (prod)", ["api-staging", "job-done"]),  # notin also matches pods without the key
        ("app=api,env!=prod", ["api-staging"]),
        ("legacy", ["db-prod"]),
        ("!legacy,app", ["api-prod", "api-staging", "job-done"]),
        ("tier in (front),env in (prod)", ["api-prod"]),
        ("app in (nothing)", []),
    ],
)
def test_set_based_label_selectors(
    sandbox: RunningSandbox, labelled_pods: str, selector: str, expected: list[str]
) -> None:
    pods = client.CoreV1Api(sandbox.api).list_namespaced_pod(labelled_pods, label_selector=selector)
    assert [p.metadata.name for p in pods.items] == expected


@pytest.mark.parametrize(
    ("field_selector", "label_selector", "expected"),
    [
        ("status.phase=Running", None, ["api-prod", "api-staging", "db-prod"]),
        ("status.phase!=Running", None, ["job-done"]),
        ("status.phase=Succeeded", None, ["job-done"]),
        ("metadata.name=db-prod", None, ["db-prod"]),
        ("metadata.name=nope", None, []),
        ("status.phase=Running,metadata.name!=db-prod", None, ["api-prod", "api-staging"]),
        ("spec.nodeName=sandbox,status.phase=Running", "env=prod", ["api-prod", "db-prod"]),
        ("spec.restartPolicy=Never", None, ["job-done"]),
    ],
)
def test_field_selectors_on_pods(
    sandbox: RunningSandbox, labelled_pods: str, field_selector: str, label_selector: str | None, expected: list[str]
) -> None:
    core = client.CoreV1Api(sandbox.api)
    pods = core.list_namespaced_pod(labelled_pods, field_selector=field_selector, label_selector=label_selector)
    assert [p.metadata.name for p in pods.items] == expected
    everywhere = core.list_pod_for_all_namespaces(
        field_selector=f"metadata.namespace={labelled_pods},{field_selector}", label_selector=label_selector
    )
    assert [p.metadata.name for p in everywhere.items if p.metadata.namespace == labelled_pods] == expected
    assert {p.metadata.namespace for p in everywhere.items} <= {labelled_pods}


def test_unsupported_field_selector_is_400(sandbox: RunningSandbox, labelled_pods: str) -> None:
    core = client.CoreV1Api(sandbox.api)
    for call in (
        lambda: core.list_namespaced_pod(labelled_pods, field_selector="spec.containers=main"),
        lambda: core.list_namespaced_config_map(labelled_pods, field_selector="data.k=v"),
        lambda: core.list_namespaced_pod(labelled_pods, field_selector="spec.containers=main", watch=True),
    ):
        with pytest.raises(ApiException) as caught:
            call()
        assert caught.value.status == 400
        status = _status_of(caught.value)
        assert (status["kind"], status["status"], status["reason"]) == ("Status", "Failure", "BadRequest")
        assert "field label not supported: " in status["message"]
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_pod(labelled_pods, label_selector="env in (prod")
    assert caught.value.status == 400


def test_watch_with_a_field_selector_sees_a_pod_enter_the_selection(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    start = core.list_namespaced_pod(ns).metadata.resource_version
    core.create_namespaced_pod(ns, _pod("late", "sh", "-c", "sleep 10000"))
    (event,) = _events_after(core.list_namespaced_pod, start, 1, namespace=ns, field_selector="status.phase=Running")
    # The pod was created Pending; it enters the selection when it starts running: ADDED, not MODIFIED.
    assert (event["type"], event["object"].metadata.name, event["object"].status.phase) == ("ADDED", "late", "Running")


def test_pagination_returns_every_item_exactly_once(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    _wait(core.list_namespaced_config_map, lambda c: c.metadata.name == "kube-root-ca.crt", namespace=ns)
    names = {f"cm-{i:02d}" for i in range(11)} | {"kube-root-ca.crt"}
    for name in sorted(names - {"kube-root-ca.crt"}):
        core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=M(name=name, labels={"page": "yes"})))
    seen: list[str] = []
    pages: list[int] = []
    token: str | None = None
    while True:
        page = core.list_namespaced_config_map(ns, limit=5, _continue=token)
        pages.append(len(page.items))
        seen.extend(c.metadata.name for c in page.items)
        token = page.metadata._continue
        if not token:
            assert page.metadata.remaining_item_count is None
            break
        assert page.metadata.remaining_item_count == len(names) - len(seen)
    assert pages == [5, 5, 2]
    assert sorted(seen) == sorted(names) and len(seen) == len(names)
    labelled = core.list_namespaced_config_map(ns, limit=10, label_selector="page=yes")
    assert len(labelled.items) == 10 and labelled.metadata._continue
    rest = core.list_namespaced_config_map(
        ns, limit=10, label_selector="page=yes", _continue=labelled.metadata._continue
    )
    assert [c.metadata.name for c in rest.items] == ["cm-10"] and not rest.metadata._continue


def test_pagination_is_a_consistent_snapshot_when_objects_change_between_pages(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    _wait(core.list_namespaced_config_map, lambda c: c.metadata.name == "kube-root-ca.crt", namespace=ns)
    for name in ("b-1", "b-2", "b-3", "b-4"):
        core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=M(name=name)))
    first = core.list_namespaced_config_map(ns, limit=2)
    assert [c.metadata.name for c in first.items] == ["b-1", "b-2"]
    # An object appears before the cursor: the rest of the list must neither shift nor grow.
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=M(name="a-0")))
    second = core.list_namespaced_config_map(ns, limit=2, _continue=first.metadata._continue)
    third = core.list_namespaced_config_map(ns, limit=2, _continue=second.metadata._continue)
    seen = [c.metadata.name for page in (first, second, third) for c in page.items]
    assert seen == ["b-1", "b-2", "b-3", "b-4", "kube-root-ca.crt"]


def test_delete_collection_with_a_label_selector(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    for name, team in (("a", "red"), ("b", "red"), ("c", "blue")):
        core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=M(name=name, labels={"team": team})))
    status = core.delete_collection_namespaced_config_map(ns, label_selector="team=red")
    assert isinstance(status, client.V1Status)
    left = core.list_namespaced_config_map(ns, label_selector="team")
    assert [c.metadata.name for c in left.items] == ["c"]
    everything = {c.metadata.name for c in core.list_namespaced_config_map(ns).items}
    assert {"a", "b"}.isdisjoint(everything) and "c" in everything


# -- deletion: namespaces and garbage collection -------------------------------------------------


def test_namespace_deletion_terminates_then_removes_its_contents(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    apps = client.AppsV1Api(sandbox.api)
    ns = _ns(sandbox)
    apps.create_namespaced_deployment(ns, _workload("Deployment", "web", replicas=2))
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=M(name="settings"), data={"a": "1"}))
    # A finalizer nobody removes but this test keeps the namespace Terminating until the test releases it.
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=M(name="held", finalizers=["example.com/hold"])))
    core.create_namespaced_pod(ns, _pod("solo", "sh", "-c", "sleep 10000"))
    _wait(
        apps.list_namespaced_deployment,
        lambda d: d.metadata.name == "web" and (d.status.available_replicas or 0) == 2,
        namespace=ns,
    )
    _wait(core.list_namespaced_pod, _running_and_ready("solo"), namespace=ns)
    pods = [p.metadata.name for p in core.list_namespaced_pod(ns).items]
    assert len(pods) == 3
    start = core.list_namespace(field_selector=f"metadata.name={ns}").metadata.resource_version
    core.delete_namespace(ns)
    terminating = core.read_namespace(ns)
    assert terminating.status.phase == "Terminating"
    assert terminating.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=M(name="late")))
    assert caught.value.status == 403 and _status_of(caught.value)["reason"] == "Forbidden"
    for pod in pods:
        _wait_gone(core.list_namespaced_pod, pod, namespace=ns)
    _wait_gone(apps.list_namespaced_deployment, "web", namespace=ns)
    _wait_gone(core.list_namespaced_config_map, "settings", namespace=ns)
    assert apps.list_namespaced_replica_set(ns).items == []
    held = core.read_namespaced_config_map("held", ns)
    assert held.metadata.deletion_timestamp is not None
    assert core.read_namespace(ns).status.phase == "Terminating"

    core.patch_namespaced_config_map(
        "held", ns, {"metadata": {"finalizers": None}}, _content_type="application/merge-patch+json"
    )
    phases: list[tuple[str, str]] = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespace, field_selector=f"metadata.name={ns}", resource_version=start, timeout_seconds=TIMEOUT
    ):
        phases.append((event["type"], event["object"].status.phase))
        if event["type"] == "DELETED":
            w.stop()
    assert phases[0] == ("MODIFIED", "Terminating") and phases[-1][0] == "DELETED"
    assert {phase for _, phase in phases} == {"Terminating"}
    with pytest.raises(ApiException) as caught:
        core.read_namespace(ns)
    assert caught.value.status == 404
    assert core.list_namespaced_pod(ns).items == []
    assert core.list_namespaced_config_map(ns).items == []
    assert core.list_namespaced_service_account(ns).items == []
    assert apps.list_namespaced_deployment(ns).items == []
    assert core.list_namespaced_event(ns).items == []


def test_namespace_delete_answers_200_with_the_terminating_namespace(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    data, code, _ = core.delete_namespace_with_http_info(ns)
    assert data["kind"] == "Namespace" and data["status"]["phase"] == "Terminating"
    assert code == 200


def _deployment_with_pods(sandbox: RunningSandbox, ns: str, name: str, replicas: int) -> tuple[Any, list[Any]]:
    apps = client.AppsV1Api(sandbox.api)
    core = client.CoreV1Api(sandbox.api)
    apps.create_namespaced_deployment(ns, _workload("Deployment", name, replicas=replicas))
    _wait(
        apps.list_namespaced_deployment,
        lambda d: d.metadata.name == name and (d.status.available_replicas or 0) == replicas,
        namespace=ns,
    )
    (rs,) = apps.list_namespaced_replica_set(ns, label_selector=f"app={name}").items
    pods = core.list_namespaced_pod(ns, label_selector=f"app={name}").items
    assert len(pods) == replicas
    assert rs.metadata.owner_references[0].kind == "Deployment"
    assert all(p.metadata.owner_references[0].uid == rs.metadata.uid for p in pods)
    return rs, pods


def test_background_deletion_removes_replicasets_and_pods(sandbox: RunningSandbox) -> None:
    apps = client.AppsV1Api(sandbox.api)
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    rs, pods = _deployment_with_pods(sandbox, ns, "bg", 2)
    apps.delete_namespaced_deployment("bg", ns, body=client.V1DeleteOptions(propagation_policy="Background"))
    _wait_gone(apps.list_namespaced_replica_set, rs.metadata.name, namespace=ns)
    for pod in pods:
        _wait_gone(core.list_namespaced_pod, pod.metadata.name, namespace=ns)
    assert apps.list_namespaced_deployment(ns).items == []
    assert apps.list_namespaced_replica_set(ns).items == []
    assert core.list_namespaced_pod(ns).items == []


def test_orphan_deletion_keeps_the_replicaset_without_owner(sandbox: RunningSandbox) -> None:
    apps = client.AppsV1Api(sandbox.api)
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    rs, pods = _deployment_with_pods(sandbox, ns, "orphan", 2)
    apps.delete_namespaced_deployment("orphan", ns, propagation_policy="Orphan")
    _wait_gone(apps.list_namespaced_deployment, "orphan", namespace=ns)
    orphaned = _wait(
        apps.list_namespaced_replica_set,
        lambda r: r.metadata.name == rs.metadata.name and not r.metadata.owner_references,
        namespace=ns,
    )
    assert orphaned.metadata.uid == rs.metadata.uid
    assert orphaned.spec.replicas == 2
    left = core.list_namespaced_pod(ns, label_selector="app=orphan").items
    assert sorted(p.metadata.uid for p in left) == sorted(p.metadata.uid for p in pods)
    assert all(p.metadata.deletion_timestamp is None for p in left)
    assert all(p.metadata.owner_references[0].uid == rs.metadata.uid for p in left)


def test_foreground_deletion_keeps_the_owner_until_its_dependents_are_gone(sandbox: RunningSandbox) -> None:
    apps = client.AppsV1Api(sandbox.api)
    ns = _ns(sandbox)
    _deployment_with_pods(sandbox, ns, "fg", 1)
    start = apps.list_namespaced_deployment(ns).metadata.resource_version
    apps.delete_namespaced_deployment("fg", ns, propagation_policy="Foreground")
    # At instant speed the whole cascade may finish before a read: the watch shows each step.
    seen: list[tuple[str, list[str] | None, bool]] = []
    w = watch.Watch()
    for event in w.stream(apps.list_namespaced_deployment, ns, resource_version=start, timeout_seconds=TIMEOUT):
        meta = event["object"].metadata
        seen.append((event["type"], meta.finalizers, meta.deletion_timestamp is not None))
        if event["type"] == "DELETED":
            w.stop()
    assert ("MODIFIED", ["foregroundDeletion"], True) in seen
    assert seen[-1][0] == "DELETED"
    assert apps.list_namespaced_replica_set(ns).items == []


# -- workload controllers ------------------------------------------------------------------------


def test_statefulset_creates_ordinal_pods_in_order_and_replaces_one_by_name(sandbox: RunningSandbox) -> None:
    apps = client.AppsV1Api(sandbox.api)
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    start = core.list_namespaced_pod(ns).metadata.resource_version
    # Raw answers for the StatefulSet itself: its status does not parse yet (see the typed test above).
    apps.create_namespaced_stateful_set(
        ns, _workload("StatefulSet", "web", replicas=3, serviceName="web"), _preload_content=False
    )
    added: list[str] = []
    ready_before_added: dict[str, set[str]] = {}
    ready: set[str] = set()
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_pod, ns, resource_version=start, timeout_seconds=TIMEOUT):
        pod = event["object"]
        if event["type"] == "ADDED":
            added.append(pod.metadata.name)
            ready_before_added[pod.metadata.name] = set(ready)
        if _running_and_ready(pod.metadata.name)(pod):
            ready.add(pod.metadata.name)
        if ready == {"web-0", "web-1", "web-2"}:
            w.stop()
    assert added == ["web-0", "web-1", "web-2"]
    # OrderedReady: each pod is created only once its predecessors are Running and Ready.
    assert ready_before_added == {"web-0": set(), "web-1": {"web-0"}, "web-2": {"web-0", "web-1"}}
    pods = {p.metadata.name: p for p in core.list_namespaced_pod(ns).items}
    assert sorted(pods) == ["web-0", "web-1", "web-2"]
    for index, name in enumerate(["web-0", "web-1", "web-2"]):
        labels = pods[name].metadata.labels
        assert labels["statefulset.kubernetes.io/pod-name"] == name
        assert labels["apps.kubernetes.io/pod-index"] == str(index)
        assert pods[name].metadata.owner_references[0].kind == "StatefulSet"
    sts = _wait_raw(
        apps.list_namespaced_stateful_set,
        lambda s: s["metadata"]["name"] == "web" and (s.get("status") or {}).get("readyReplicas") == 3,
        namespace=ns,
    )
    assert (sts["status"]["replicas"], sts["status"]["availableReplicas"]) == (3, 3)
    assert all(p.metadata.owner_references[0].uid == sts["metadata"]["uid"] for p in pods.values())

    old_uid = pods["web-1"].metadata.uid
    core.delete_namespaced_pod("web-1", ns)
    replacement = _wait(
        core.list_namespaced_pod,
        lambda p: _running_and_ready("web-1")(p) and p.metadata.uid != old_uid,
        namespace=ns,
    )
    assert replacement.metadata.labels["apps.kubernetes.io/pod-index"] == "1"
    assert sorted(p.metadata.name for p in core.list_namespaced_pod(ns).items) == ["web-0", "web-1", "web-2"]


def test_daemonset_runs_one_pod_on_the_sandbox_node(sandbox: RunningSandbox) -> None:
    apps = client.AppsV1Api(sandbox.api)
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    # Raw answers for the DaemonSet itself: its status does not parse yet (see the typed tests).
    apps.create_namespaced_daemon_set(ns, _workload("DaemonSet", "agent", replicas=None), _preload_content=False)
    ds = _wait_raw(
        apps.list_namespaced_daemon_set,
        lambda d: d["metadata"]["name"] == "agent" and (d.get("status") or {}).get("numberReady") == 1,
        namespace=ns,
    )
    status = ds["status"]
    assert (status["desiredNumberScheduled"], status["currentNumberScheduled"], status["numberAvailable"]) == (1, 1, 1)
    (pod,) = core.list_namespaced_pod(ns, label_selector="app=agent").items
    assert pod.spec.node_name == "sandbox"
    assert pod.status.phase == "Running"
    assert pod.metadata.owner_references[0].kind == "DaemonSet"
    assert pod.metadata.owner_references[0].uid == ds["metadata"]["uid"]


def test_daemonset_status_parses_after_rollout(sandbox: RunningSandbox) -> None:
    apps = client.AppsV1Api(sandbox.api)
    ns = _ns(sandbox)
    apps.create_namespaced_daemon_set(ns, _workload("DaemonSet", "agent", replicas=None), _preload_content=False)
    _wait_raw(
        apps.list_namespaced_daemon_set,
        lambda d: d["metadata"]["name"] == "agent" and (d.get("status") or {}).get("numberReady") == 1,
        namespace=ns,
    )
    status = apps.read_namespaced_daemon_set_status("agent", ns).status
    assert (status.desired_number_scheduled, status.number_ready, status.number_misscheduled) == (1, 1, 0)


def test_service_endpoints_follow_ready_pods_and_named_ports(sandbox: RunningSandbox) -> None:
    apps = client.AppsV1Api(sandbox.api)
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    labels = {"app": "echo"}
    deployment = _workload("Deployment", "echo", replicas=2)
    deployment["spec"]["template"] = _template(
        labels, "sh", "-c", "sleep 10000", ports=[{"name": "http", "containerPort": 8080}]
    )
    apps.create_namespaced_deployment(ns, deployment)
    core.create_namespaced_service(
        ns,
        client.V1Service(
            metadata=M(name="echo"),
            spec=client.V1ServiceSpec(
                selector=labels, ports=[client.V1ServicePort(name="web", port=80, target_port="http")]
            ),
        ),
    )
    endpoints = _wait(
        core.list_namespaced_endpoints,
        lambda e: e.metadata.name == "echo" and len(e.subsets[0].addresses or []) == 2 if e.subsets else False,
        namespace=ns,
    )
    pods = core.list_namespaced_pod(ns, label_selector="app=echo").items
    (subset,) = endpoints.subsets
    assert sorted(a.ip for a in subset.addresses) == sorted(p.status.pod_ip for p in pods)
    assert {a.target_ref.name for a in subset.addresses} == {p.metadata.name for p in pods}
    assert all(a.node_name == "sandbox" for a in subset.addresses)
    assert [(p.name, p.port, p.protocol) for p in subset.ports] == [("web", 8080, "TCP")]
    assert subset.not_ready_addresses is None


# -- service-account tokens and reviews ----------------------------------------------------------


def test_service_account_token_is_a_jwt_reviewed_until_the_account_is_deleted(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    auth = client.AuthenticationV1Api(sandbox.api)
    ns = _ns(sandbox)
    core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=M(name="robot")))
    request = core.create_namespaced_service_account_token(
        "robot",
        ns,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)),
    )
    assert isinstance(request, client.AuthenticationV1TokenRequest)
    token = request.status.token
    claims = _jwt_claims(token)
    assert claims["sub"] == f"system:serviceaccount:{ns}:robot"
    assert isinstance(claims["iat"], int) and claims["nbf"] == claims["iat"]
    assert claims["exp"] - claims["iat"] == 3600
    assert int(request.status.expiration_timestamp.timestamp()) == claims["exp"]

    review = auth.create_token_review(client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token)))
    assert isinstance(review, client.V1TokenReview)
    assert review.status.authenticated is True
    assert review.status.user.username == f"system:serviceaccount:{ns}:robot"
    assert f"system:serviceaccounts:{ns}" in review.status.user.groups

    header, _, signature = token.split(".")
    other_claims = json.dumps({**claims, "sub": f"system:serviceaccount:{ns}:admin"}).encode()
    forged = f"{header}.{base64.urlsafe_b64encode(other_claims).decode().rstrip('=')}.{signature}"
    bad = auth.create_token_review(client.V1TokenReview(spec=client.V1TokenReviewSpec(token=forged)))
    assert not bad.status.authenticated and bad.status.error

    core.delete_namespaced_service_account("robot", ns)
    after = auth.create_token_review(client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token)))
    assert not after.status.authenticated
    assert not (after.status.user and after.status.user.username)
    assert after.status.error


def test_self_subject_access_review_is_allowed(sandbox: RunningSandbox) -> None:
    review = client.AuthorizationV1Api(sandbox.api).create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(verb="create", resource="pods", namespace="default")
            )
        )
    )
    assert isinstance(review, client.V1SelfSubjectAccessReview)
    assert review.status.allowed is True
    assert review.spec.resource_attributes.verb == "create"


# -- watches -------------------------------------------------------------------------------------


def test_watch_with_bookmarks_and_a_short_timeout_ends_cleanly(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    events = list(
        watch.Watch().stream(
            core.list_namespaced_config_map,
            ns,
            resource_version=start,
            allow_watch_bookmarks=True,
            timeout_seconds=1,
        )
    )
    # Nothing changed: the stream ends at the timeout with at most bookmarks in it.
    assert {e["type"] for e in events} <= {"BOOKMARK"}
    for event in events:
        assert event["raw_object"]["kind"] == "ConfigMap"
        assert int(event["raw_object"]["metadata"]["resourceVersion"]) >= int(start)


def test_watch_from_a_list_resource_version_gets_only_later_events(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=M(name="before"), data={"v": "0"}))
    listed = core.list_namespaced_config_map(ns)
    assert "before" in {c.metadata.name for c in listed.items}
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=M(name="after")))
    core.patch_namespaced_config_map("before", ns, {"data": {"v": "1"}})
    events = _events_after(core.list_namespaced_config_map, listed.metadata.resource_version, 2, namespace=ns)
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "after"), ("MODIFIED", "before")]
    assert events[1]["object"].data == {"v": "1"}
    rvs = [int(e["object"].metadata.resource_version) for e in events]
    assert int(listed.metadata.resource_version) < rvs[0] < rvs[1]


# -- subresources --------------------------------------------------------------------------------


def test_deployment_scale_subresource(sandbox: RunningSandbox) -> None:
    apps = client.AppsV1Api(sandbox.api)
    ns = _ns(sandbox)
    _deployment_with_pods(sandbox, ns, "scaled", 1)
    scale = apps.read_namespaced_deployment_scale("scaled", ns)
    assert isinstance(scale, client.V1Scale)
    assert (scale.kind, scale.api_version) == ("Scale", "autoscaling/v1")
    assert (scale.spec.replicas, scale.status.replicas, scale.status.selector) == (1, 1, "app=scaled")
    patched = apps.patch_namespaced_deployment_scale("scaled", ns, {"spec": {"replicas": 3}})
    assert isinstance(patched, client.V1Scale) and patched.spec.replicas == 3
    assert apps.read_namespaced_deployment("scaled", ns).spec.replicas == 3
    _wait(
        apps.list_namespaced_deployment,
        lambda d: d.metadata.name == "scaled" and (d.status.available_replicas or 0) == 3,
        namespace=ns,
    )
    assert apps.read_namespaced_deployment_scale("scaled", ns).status.replicas == 3
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment_scale("scaled", ns, {"spec": {"replicas": -1}})
    assert caught.value.status == 422


def test_patch_pod_status(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    core.create_namespaced_pod(ns, _pod("gated", "sh", "-c", "sleep 10000"))
    running = _wait(core.list_namespaced_pod, _running_and_ready("gated"), namespace=ns)
    patched = core.patch_namespaced_pod_status(
        "gated",
        ns,
        {"status": {"conditions": [{"type": "example.com/Checked", "status": "True", "reason": "Test"}]}},
    )
    assert isinstance(patched, client.V1Pod)
    conditions = {c.type: (c.status, c.reason) for c in patched.status.conditions}
    assert conditions["example.com/Checked"] == ("True", "Test")
    assert conditions["Ready"] == ("True", None)  # strategic merge by type keeps the kubelet's conditions
    assert patched.spec == running.spec
    assert patched.metadata.generation == running.metadata.generation
    assert int(patched.metadata.resource_version) > int(running.metadata.resource_version)
    read = core.read_namespaced_pod_status("gated", ns)
    assert {c.type for c in read.status.conditions} >= {"example.com/Checked", "Ready"}
    # The status subresource leaves the spec alone.
    core.patch_namespaced_pod_status("gated", ns, {"spec": {"activeDeadlineSeconds": 5}})
    assert core.read_namespaced_pod("gated", ns).spec.active_deadline_seconds is None


def test_kubelet_keeps_conditions_it_does_not_own(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    core.create_namespaced_pod(ns, _pod("flappy", "sh", "-c", "sleep 30; exit 1"))  # restarts every 0.3s or so
    _wait(core.list_namespaced_pod, _running_and_ready("flappy"), namespace=ns)
    patched = core.patch_namespaced_pod_status(
        "flappy", ns, {"status": {"conditions": [{"type": "example.com/Checked", "status": "True"}]}}
    )
    restarts = patched.status.container_statuses[0].restart_count
    later = _wait(
        core.list_namespaced_pod,
        lambda p: p.metadata.name == "flappy" and p.status.container_statuses[0].restart_count > restarts,
        namespace=ns,
    )
    assert "example.com/Checked" in {c.type for c in later.status.conditions}


# -- the kubelet stand-in ------------------------------------------------------------------------


def test_failing_init_container_with_restart_policy_never_fails_the_pod(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    core.create_namespaced_pod(
        ns,
        client.V1Pod(
            metadata=M(name="broken-init"),
            spec=client.V1PodSpec(
                restart_policy="Never",
                init_containers=[_container("init", "sh", "-c", "echo checking; exit 1")],
                containers=[_container("main", "sh", "-c", "echo never; sleep 10000")],
            ),
        ),
    )
    pod = _wait(
        core.list_namespaced_pod,
        lambda p: p.metadata.name == "broken-init" and p.status.phase == "Failed",
        namespace=ns,
    )
    status = pod.status
    (init,) = status.init_container_statuses
    assert init.state.terminated.exit_code == 1 and init.state.terminated.reason == "Error"
    assert init.restart_count == 0
    (main,) = status.container_statuses
    assert main.state.waiting.reason == "PodInitializing" and main.restart_count == 0
    conditions = {c.type: c.status for c in status.conditions}
    assert (conditions["Initialized"], conditions["Ready"]) == ("False", "False")
    assert core.read_namespaced_pod_log("broken-init", ns, container="init") == "checking\n"


def test_env_from_a_secret_key_reaches_the_container(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    core.create_namespaced_secret(ns, client.V1Secret(metadata=M(name="db"), string_data={"password": "correct horse"}))
    env = [
        client.V1EnvVar(
            name="DB_PASSWORD",
            value_from=client.V1EnvVarSource(secret_key_ref=client.V1SecretKeySelector(name="db", key="password")),
        )
    ]
    core.create_namespaced_pod(
        ns,
        client.V1Pod(
            metadata=M(name="reader"),
            spec=client.V1PodSpec(
                restart_policy="Never",
                containers=[_container("main", "sh", "-c", 'echo "password=$DB_PASSWORD"', env=env)],
            ),
        ),
    )
    _wait(
        core.list_namespaced_pod,
        lambda p: p.metadata.name == "reader" and p.status.phase == "Succeeded",
        namespace=ns,
    )
    assert core.read_namespaced_pod_log("reader", ns) == "password=correct horse\n"


def test_a_container_running_an_unknown_program_keeps_running(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    core.create_namespaced_pod(ns, _pod("server", "/bin/server", "--port=8080"))
    pod = _wait(core.list_namespaced_pod, _running_and_ready("server"), namespace=ns)
    (status,) = pod.status.container_statuses
    assert status.state.running is not None and status.restart_count == 0 and status.started is True
    # Nothing more happens to it: a watch from its current version sees no change before it times out.
    later = list(
        watch.Watch().stream(
            core.list_namespaced_pod,
            ns,
            resource_version=pod.metadata.resource_version,
            timeout_seconds=2,
        )
    )
    assert [e["type"] for e in later if e["type"] != "BOOKMARK"] == []
    assert core.read_namespaced_pod_log("server", ns) == ""


def test_port_forward_to_a_port_nothing_listens_on_reports_connection_refused(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    core.create_namespaced_pod(ns, _pod("quiet", "/bin/server"))
    _wait(core.list_namespaced_pod, _running_and_ready("quiet"), namespace=ns)
    pf = portforward(core.connect_get_namespaced_pod_portforward, "quiet", ns, ports="8080")
    try:
        sock = pf.socket(8080)
        sock.settimeout(TIMEOUT)
        assert sock.recv(1) == b""  # the client closes the port's socket on an error
        error = pf.error(8080)
        assert isinstance(error, str)
        assert error.startswith("error forwarding port 8080 to pod ")
        assert "connection refused" in error
    finally:
        pf.close()


def test_log_follow_streams_a_line_printed_later(sandbox: RunningSandbox) -> None:
    core = client.CoreV1Api(sandbox.api)
    ns = _ns(sandbox)
    core.create_namespaced_pod(
        ns, _pod("talker", "sh", "-c", "echo a; sleep 5; echo b; sleep 30; echo c", restart_policy="Never")
    )
    _wait(
        core.list_namespaced_pod,
        lambda p: p.metadata.name == "talker" and p.status.phase in ("Running", "Succeeded"),
        namespace=ns,
    )
    resp: Any = core.read_namespaced_pod_log(
        "talker", ns, follow=True, _preload_content=False, _request_timeout=TIMEOUT
    )
    try:
        text = b"".join(resp.stream(amt=None)).decode()  # ends only when the container does
    finally:
        resp.release_conn()
    assert text == "a\nb\nc\n"
    pod = core.read_namespaced_pod("talker", ns)
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
