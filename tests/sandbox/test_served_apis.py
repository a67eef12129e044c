"""ReplicationControllers, APIServices, Ingress and IngressClass, and PartialObjectMetadata answers,
through the official client (which parses strictly) and kubectl 1.28 / 1.33."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.sandbox.conftest import (
    KUBECTL,
    KUBECTL_IDS,
    KUBECTL_VERSIONS,
    RunningSandbox,
    running_sandbox,
    wait_for,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl not installed"),
]
PARTIAL = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
PARTIAL_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.example.meshbook.dev"},
    "spec": {
        "group": "example.meshbook.dev",
        "scope": "Namespaced",
        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
        "versions": [
            {"name": "v1alpha1", "served": True, "storage": True,
             "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
        ],
    },
}  # fmt: skip


@pytest.fixture(scope="module", params=KUBECTL_VERSIONS, ids=KUBECTL_IDS)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("apis"), request.param) as running:
        yield running


@pytest.fixture
def ns(cluster: RunningSandbox) -> str:
    name = f"a-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    return name


def request(cluster: RunningSandbox, path: str, accept: str = "application/json", body: Any = None) -> tuple[int, Any]:
    """A raw HTTPS request with the kubeconfig's token: (status, parsed body); POST when `body` is given."""
    kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
    token = kubeconfig["users"][0]["user"]["token"]
    headers = {"Authorization": f"Bearer {token}", "Accept": accept, "Content-Type": "application/json"}
    data = json.dumps(body).encode() if body is not None else None
    sent = urllib.request.Request(f"{cluster.info.server}{path}", data=data, headers=headers)
    context = ssl.create_default_context(cafile=str(cluster.info.state_dir / "ca.crt"))
    try:
        with urllib.request.urlopen(sent, context=context, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def raw(cluster: RunningSandbox, path: str, accept: str) -> Any:
    status, body = request(cluster, path, accept)
    assert status == 200, body
    return body


def ingress(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name}, "spec": spec}


def rule(host: str, path_type: str | None = "Prefix") -> dict[str, Any]:
    path: dict[str, Any] = {"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
    if path_type:
        path["pathType"] = path_type
    return {"host": host, "http": {"paths": [path]}}


# -- refusals first ----------------------------------------------------------------------------------


def test_ingress_without_path_type_or_backend_is_refused(cluster: RunningSandbox, ns: str) -> None:
    networking = client.NetworkingV1Api(cluster.api)
    path = f"/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses"
    status, body = request(cluster, path, body=ingress("bad", rules=[rule("a.example", None)]))
    assert status == 422
    assert body["message"] == (
        'Ingress.networking.k8s.io "bad" is invalid: spec.rules[0].http.paths[0].pathType: '
        "Required value: pathType must be specified"
    )
    status, body = request(cluster, path, body=ingress("empty"))
    assert status == 422 and "either `defaultBackend` or `rules` must be specified" in body["message"]
    with pytest.raises(ApiException) as caught:
        networking.create_ingress_class({"metadata": {"name": "nocontroller"}, "spec": {}})
    assert json.loads(caught.value.body)["message"] == (
        'IngressClass.networking.k8s.io "nocontroller" is invalid: spec.controller: Required value'
    )


def test_replication_controller_selector_must_match(cluster: RunningSandbox, ns: str) -> None:
    core = client.CoreV1Api(cluster.api)
    body = {
        "metadata": {"name": "mismatch"},
        "spec": {
            "selector": {"app": "a"},
            "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        },
    }
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_replication_controller(ns, body)
    assert caught.value.status == 422
    assert "`selector` does not match template `labels`" in json.loads(caught.value.body)["message"]


def test_partial_metadata_that_does_not_fit_is_not_acceptable(cluster: RunningSandbox, ns: str) -> None:
    status, body = request(cluster, f"/api/v1/namespaces/{ns}/configmaps", PARTIAL)
    assert status == 406 and body["reason"] == "NotAcceptable"
    assert body["message"].startswith("you requested PartialObjectMetadata, but the requested object is a list")
    client.CoreV1Api(cluster.api).create_namespaced_config_map(ns, {"metadata": {"name": "one"}})
    status, body = request(cluster, f"/api/v1/namespaces/{ns}/configmaps/one", PARTIAL_LIST)
    assert status == 406
    assert "you requested PartialObjectMetadataList, but the requested object is not a list" in body["message"]


# -- ReplicationControllers --------------------------------------------------------------------------


def test_replication_controller_keeps_its_pods(cluster: RunningSandbox, ns: str) -> None:
    manifest = f"""\
apiVersion: v1
kind: ReplicationController
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 2
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: nginx, command: [sh, -c, "sleep 100000"]}}]
"""
    assert cluster.kubectl("apply", "-f", "-", input=manifest).stdout.strip() == "replicationcontroller/web created"
    core = client.CoreV1Api(cluster.api)
    rc = core.read_namespaced_replication_controller("web", ns)
    assert rc.spec.selector == {"app": "web"} and rc.metadata.labels == {"app": "web"}
    wait_for(
        core.list_namespaced_replication_controller,
        lambda r: (r.status.ready_replicas or 0) == 2,  # type: ignore[attr-defined]
        namespace=ns,
    )
    pods = core.list_namespaced_pod(ns, label_selector="app=web").items
    assert len(pods) == 2
    assert all(p.metadata.owner_references[0].kind == "ReplicationController" for p in pods)
    table = cluster.kubectl("get", "rc", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert table[1].split()[:4] == ["web", "2", "2", "2"]
    assert cluster.kubectl("scale", "rc/web", "-n", ns, "--replicas=1").stdout.strip() == (
        "replicationcontroller/web scaled"
    )
    wait_for(
        core.list_namespaced_replication_controller,
        lambda r: r.status.replicas == 1,  # type: ignore[attr-defined]
        namespace=ns,
    )
    scale = core.read_namespaced_replication_controller_scale("web", ns)
    assert (scale.spec.replicas, scale.status.replicas, scale.status.selector) == (1, 1, "app=web")


# -- APIServices -------------------------------------------------------------------------------------


def test_apiservices_list_every_served_group(cluster: RunningSandbox) -> None:
    registration = client.ApiregistrationV1Api(cluster.api)
    services = {s.metadata.name: s for s in registration.list_api_service().items}
    for name in ("v1.", "v1.apps", "v1.batch", "v1.networking.k8s.io", "v1.apiregistration.k8s.io"):
        assert name in services, sorted(services)
    apps = services["v1.apps"]
    assert (apps.spec.group, apps.spec.version, apps.spec.service) == ("apps", "v1", None)
    assert apps.spec.group_priority_minimum == 17800
    (available,) = apps.status.conditions
    assert (available.type, available.status, available.reason) == ("Available", "True", "Local")
    table = cluster.kubectl("get", "apiservices").stdout.splitlines()
    assert table[0].split() == ["NAME", "SERVICE", "AVAILABLE", "AGE"]
    assert any(line.split()[:3] == ["v1.apps", "Local", "True"] for line in table[1:])


def test_crd_groups_come_and_go_as_apiservices(cluster: RunningSandbox) -> None:
    extensions = client.ApiextensionsV1Api(cluster.api)
    registration = client.ApiregistrationV1Api(cluster.api)
    name = "v1alpha1.example.meshbook.dev"
    extensions.create_custom_resource_definition(CRD)
    found = wait_for(
        registration.list_api_service,
        lambda s: s.metadata.name == name,  # type: ignore[attr-defined]
    )
    assert found.spec.group_priority_minimum == 1000 and found.spec.version_priority == 100  # type: ignore[attr-defined]
    extensions.delete_custom_resource_definition(CRD["metadata"]["name"])
    listing = registration.list_api_service()
    if any(s.metadata.name == name for s in listing.items):
        w = watch.Watch()
        for event in w.stream(
            registration.list_api_service, resource_version=listing.metadata.resource_version, timeout_seconds=60
        ):
            if event["type"] == "DELETED" and event["object"].metadata.name == name:
                w.stop()
    assert all(s.metadata.name != name for s in registration.list_api_service().items)


# -- Ingress and IngressClass ------------------------------------------------------------------------


def test_ingress_and_class(cluster: RunningSandbox, ns: str) -> None:
    networking = client.NetworkingV1Api(cluster.api)
    networking.create_ingress_class({"metadata": {"name": f"nginx-{ns}"}, "spec": {"controller": "k8s.io/ingress"}})
    body = ingress(
        "web",
        ingressClassName=f"nginx-{ns}",
        rules=[rule("a.example"), rule("b.example")],
        tls=[{"hosts": ["a.example"], "secretName": "cert"}],
    )
    created = networking.create_namespaced_ingress(ns, body)
    assert created.spec.rules[0].http.paths[0].backend.service.port.number == 80
    assert [i.metadata.name for i in networking.list_namespaced_ingress(ns).items] == ["web"]
    table = cluster.kubectl("get", "ingress", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    assert table[1].split()[:5] == ["web", f"nginx-{ns}", "a.example,b.example", "80,", "443"]
    classes = cluster.kubectl("get", "ingressclass", f"nginx-{ns}").stdout.splitlines()
    assert classes[0].split() == ["NAME", "CONTROLLER", "PARAMETERS", "AGE"]
    assert classes[1].split()[:3] == [f"nginx-{ns}", "k8s.io/ingress", "<none>"]


def test_kubectl_create_ingress(cluster: RunningSandbox, ns: str) -> None:
    # kubectl 1.32+ sends this body as protobuf (the rule's value is an embedded struct there).
    out = cluster.kubectl("create", "ingress", "simple", "-n", ns, "--rule=foo.example/bar=svc1:8080,tls=my-cert")
    assert out.stdout.strip() == "ingress.networking.k8s.io/simple created"
    spec = json.loads(cluster.kubectl("get", "ing", "simple", "-n", ns, "-o", "json").stdout)["spec"]
    assert spec["rules"] == [
        {
            "host": "foo.example",
            "http": {
                "paths": [
                    {"backend": {"service": {"name": "svc1", "port": {"number": 8080}}}, "path": "/bar",
                     "pathType": "Exact"}
                ]
            },
        }
    ]  # fmt: skip
    assert spec["tls"] == [{"hosts": ["foo.example"], "secretName": "my-cert"}]
    assert "FIELD: ingressClassName" in cluster.kubectl("explain", "ingress.spec.ingressClassName").stdout


# -- PartialObjectMetadata ---------------------------------------------------------------------------


def test_partial_object_metadata_get_list_and_watch(cluster: RunningSandbox, ns: str) -> None:
    core = client.CoreV1Api(cluster.api)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cfg", "labels": {"a": "b"}}, "data": {"k": "v"}})
    one = raw(cluster, f"/api/v1/namespaces/{ns}/configmaps/cfg", f"{PARTIAL},application/json")
    assert set(one) == {"kind", "apiVersion", "metadata"}
    assert (one["kind"], one["apiVersion"], one["metadata"]["labels"]) == (
        "PartialObjectMetadata",
        "meta.k8s.io/v1",
        {"a": "b"},
    )
    listed = raw(cluster, f"/api/v1/namespaces/{ns}/configmaps", f"{PARTIAL_LIST},application/json")
    assert (listed["kind"], listed["apiVersion"]) == ("PartialObjectMetadataList", "meta.k8s.io/v1")
    assert listed["metadata"]["resourceVersion"]
    assert "cfg" in [i["metadata"]["name"] for i in listed["items"]]
    assert all(set(i) == {"kind", "apiVersion", "metadata"} for i in listed["items"])
    # A clause without `as` comes first: the full object, as kube-apiserver negotiates.
    assert "data" in raw(cluster, f"/api/v1/namespaces/{ns}/configmaps/cfg", f"application/json,{PARTIAL}")
    # Watch: each event's object is PartialObjectMetadata.
    kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
    headers = {"Authorization": f"Bearer {kubeconfig['users'][0]['user']['token']}", "Accept": PARTIAL}
    since = listed["metadata"]["resourceVersion"]
    url = (
        f"{cluster.info.server}/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={since}&timeoutSeconds=30"
    )
    context = ssl.create_default_context(cafile=str(cluster.info.state_dir / "ca.crt"))
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), context=context, timeout=60) as stream:
        core.patch_namespaced_config_map("cfg", ns, {"data": {"k": "w"}})
        event = json.loads(stream.readline())
    assert event["type"] == "MODIFIED"
    assert set(event["object"]) == {"kind", "apiVersion", "metadata"}
    assert event["object"]["kind"] == "PartialObjectMetadata" and event["object"]["metadata"]["name"] == "cfg"
