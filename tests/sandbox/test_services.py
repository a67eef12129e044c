"""ClusterIP allocation from the service CIDR (10.96.0.0/12), through the client and kubectl 1.28 / 1.33."""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.sandbox.conftest import (
    KUBECTL,
    KUBECTL_IDS,
    KUBECTL_VERSIONS,
    RunningSandbox,
    running_sandbox,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl not installed"),
]
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")


@pytest.fixture(scope="module", params=KUBECTL_VERSIONS, ids=KUBECTL_IDS)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("services"), request.param) as running:
        yield running


@pytest.fixture
def ns(cluster: RunningSandbox) -> str:
    name = f"s-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    return name


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}], **spec}}


def refusal(call: Any) -> tuple[int, str]:
    with pytest.raises(ApiException) as caught:
        call()
    return caught.value.status, json.loads(caught.value.body)["message"]


# -- refusals first ----------------------------------------------------------------------------------


def test_requested_ip_outside_the_range_is_refused(cluster: RunningSandbox, ns: str) -> None:
    core = client.CoreV1Api(cluster.api)
    status, message = refusal(lambda: core.create_namespaced_service(ns, service("out", cluster_ip="10.0.0.5")))
    assert status == 422
    assert message == (
        'Service "out" is invalid: spec.clusterIPs: Invalid value: []string{"10.0.0.5"}: failed to allocate IP '
        "10.0.0.5: the provided IP (10.0.0.5) is not in the valid range. The range of valid IPs is 10.96.0.0/12"
    )
    out = cluster.kubectl(
        "create", "service", "clusterip", "out", "-n", ns, "--clusterip=10.0.0.5", "--tcp=80:80", check=False
    )
    assert out.returncode == 1
    assert "the provided IP (10.0.0.5) is not in the valid range. The range of valid IPs is 10.96.0.0/12" in out.stderr


def test_duplicate_ip_is_refused(cluster: RunningSandbox, ns: str) -> None:
    core = client.CoreV1Api(cluster.api)
    core.create_namespaced_service(ns, service("first", cluster_ip="10.96.7.7"))
    status, message = refusal(lambda: core.create_namespaced_service(ns, service("second", cluster_ip="10.96.7.7")))
    assert status == 422
    assert message == (
        'Service "second" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.7.7"}: failed to allocate IP '
        "10.96.7.7: provided IP is already allocated"
    )
    taken = refusal(lambda: core.create_namespaced_service(ns, service("api", cluster_ip="10.96.0.1")))
    assert taken[0] == 422 and "provided IP is already allocated" in taken[1]  # the `kubernetes` Service's


def test_cluster_ip_is_immutable(cluster: RunningSandbox, ns: str) -> None:
    core = client.CoreV1Api(cluster.api)
    core.create_namespaced_service(ns, service("fixed", cluster_ip="10.96.8.8"))
    status, message = refusal(
        lambda: core.patch_namespaced_service("fixed", ns, {"spec": {"clusterIP": "10.96.8.9", "clusterIPs": None}})
    )
    assert status == 422
    assert message == 'Service "fixed" is invalid: spec.clusterIP: Invalid value: "10.96.8.9": field is immutable'


def test_node_port_outside_the_range_or_taken_is_refused(cluster: RunningSandbox, ns: str) -> None:
    core = client.CoreV1Api(cluster.api)
    body = {"metadata": {"name": "np"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 40000}]}}
    status, message = refusal(lambda: core.create_namespaced_service(ns, body))
    assert status == 422
    assert message == (
        'Service "np" is invalid: spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid '
        "range. The range of valid ports is 30000-32767"
    )
    body["spec"]["ports"][0]["nodePort"] = 30123
    core.create_namespaced_service(ns, body)
    body["metadata"]["name"] = "np2"
    status, message = refusal(lambda: core.create_namespaced_service(ns, body))
    assert status == 422
    assert message == (
        'Service "np2" is invalid: spec.ports[0].nodePort: Invalid value: 30123: provided port is already allocated'
    )


# -- allocation --------------------------------------------------------------------------------------


def test_kubernetes_service_has_the_first_address(cluster: RunningSandbox) -> None:
    svc = client.CoreV1Api(cluster.api).read_namespaced_service("kubernetes", "default")
    assert svc.spec.cluster_ip == "10.96.0.1" and svc.spec.cluster_ips == ["10.96.0.1"]
    assert svc.spec.ip_families == ["IPv4"] and svc.spec.ip_family_policy == "SingleStack"


def test_allocated_requested_and_headless(cluster: RunningSandbox, ns: str) -> None:
    core = client.CoreV1Api(cluster.api)
    auto = core.create_namespaced_service(ns, service("auto"))
    assert ipaddress.ip_address(auto.spec.cluster_ip) in SERVICE_CIDR
    assert auto.spec.cluster_ips == [auto.spec.cluster_ip]
    assert (auto.spec.ip_families, auto.spec.ip_family_policy) == (["IPv4"], "SingleStack")
    asked = core.create_namespaced_service(ns, service("asked", cluster_ip="10.96.9.9"))
    assert asked.spec.cluster_ips == ["10.96.9.9"]
    headless = core.create_namespaced_service(ns, service("headless", cluster_ip="None"))
    assert headless.spec.cluster_ip == "None" and headless.spec.cluster_ips == ["None"]
    external = core.create_namespaced_service(ns, service("ext", type="ExternalName", external_name="example.org"))
    assert external.spec.cluster_ip is None and external.spec.cluster_ips is None
    # An update that leaves the address out keeps it.
    replaced = core.replace_namespaced_service(
        "auto", ns, {"metadata": {"name": "auto", "labels": {"x": "y"}}, "spec": {"ports": [{"port": 81}]}}
    )
    assert replaced.spec.cluster_ip == auto.spec.cluster_ip
    table = cluster.kubectl("get", "svc", "-n", ns, "--no-headers").stdout
    rows = {line.split()[0]: line.split()[2] for line in table.splitlines()}
    assert rows == {"asked": "10.96.9.9", "auto": auto.spec.cluster_ip, "ext": "<none>", "headless": "None"}


def test_address_is_released_on_delete(cluster: RunningSandbox, ns: str) -> None:
    core = client.CoreV1Api(cluster.api)
    core.create_namespaced_service(ns, service("old", cluster_ip="10.96.10.10"))
    core.delete_namespaced_service("old", ns)
    again = core.create_namespaced_service(ns, service("new", cluster_ip="10.96.10.10"))
    assert again.spec.cluster_ip == "10.96.10.10"


def test_kubectl_create_service(cluster: RunningSandbox, ns: str) -> None:
    # kubectl 1.32+ sends this body as protobuf.
    out = cluster.kubectl("create", "service", "clusterip", "web", "-n", ns, "--tcp=80:8080")
    assert out.stdout.strip() == "service/web created"
    spec = json.loads(cluster.kubectl("get", "svc", "web", "-n", ns, "-o", "json").stdout)["spec"]
    assert ipaddress.ip_address(spec["clusterIP"]) in SERVICE_CIDR
    assert spec["ports"] == [{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}]
    assert spec["selector"] == {"app": "web"}
    headless = cluster.kubectl("create", "service", "clusterip", "hl", "-n", ns, "--clusterip=None")
    assert headless.stdout.strip() == "service/hl created"
    row = cluster.kubectl("get", "svc", "hl", "-n", ns, "--no-headers").stdout.split()
    assert row[:3] == ["hl", "ClusterIP", "None"]


def test_node_ports_allocated_kept_and_released(cluster: RunningSandbox, ns: str) -> None:
    out = cluster.kubectl("create", "service", "nodeport", "np", "-n", ns, "--tcp=80:8080")
    assert out.stdout.strip() == "service/np created"
    core = client.CoreV1Api(cluster.api)
    svc = core.read_namespaced_service("np", ns)
    (port,) = svc.spec.ports
    assert 30000 <= port.node_port <= 32767 and svc.spec.external_traffic_policy == "Cluster"
    row = cluster.kubectl("get", "svc", "np", "-n", ns, "--no-headers").stdout.split()
    assert row[1] == "NodePort" and row[4] == f"80:{port.node_port}/TCP"
    patched = core.patch_namespaced_service("np", ns, {"metadata": {"labels": {"x": "y"}}})
    assert patched.spec.ports[0].node_port == port.node_port
    as_cluster_ip = core.patch_namespaced_service("np", ns, {"spec": {"type": "ClusterIP"}})
    assert as_cluster_ip.spec.ports[0].node_port is None
    lb = core.create_namespaced_service(ns, service("lb", type="LoadBalancer"))
    assert 30000 <= lb.spec.ports[0].node_port <= 32767 and lb.spec.allocate_load_balancer_node_ports is True
    row = cluster.kubectl("get", "svc", "lb", "-n", ns, "--no-headers").stdout.split()
    assert row[1:4] == ["LoadBalancer", lb.spec.cluster_ip, "<pending>"]
