"""Server-side tables of Jobs, ReplicationControllers, Ingresses, IngressClasses and APIServices."""

from __future__ import annotations

from typing import Any

import pytest

from meshbook.sandbox.http.tables.render import to_table
from tests.sandbox.test_tables import NOW, header, meta, ts

TEMPLATE = {"spec": {"containers": [{"name": "main", "image": "busybox"}]}}


def rows(kind: str, *objects: dict[str, Any]) -> tuple[str, list[list[Any]]]:
    table = to_table(kind, list(objects), now=NOW)
    return header(table), [row["cells"] for row in table["rows"]]


def condition(kind: str, status: str = "True") -> dict[str, str]:
    return {"type": kind, "status": status}


@pytest.mark.parametrize(
    ("spec", "status", "deleting", "expected"),
    [
        ({"completions": 1}, {}, False, ["Running", "0/1", ""]),
        ({"completions": 3, "parallelism": 2}, {"succeeded": 1, "startTime": ts(minutes=5)}, False,
         ["Running", "1/3", "5m"]),
        ({"parallelism": 3}, {"startTime": ts(seconds=30)}, False, ["Running", "0/1 of 3", "30s"]),
        ({"parallelism": 1}, {}, False, ["Running", "0/1", ""]),
        ({"completions": 1}, {"succeeded": 1, "startTime": ts(minutes=3), "completionTime": ts(minutes=1),
                              "conditions": [condition("SuccessCriteriaMet"), condition("Complete")]}, False,
         ["Complete", "1/1", "2m"]),
        ({"completions": 1}, {"failed": 7, "conditions": [condition("FailureTarget"), condition("Failed")]}, False,
         ["Failed", "0/1", ""]),
        ({"completions": 1}, {"conditions": [condition("FailureTarget")]}, False, ["FailureTarget", "0/1", ""]),
        ({"completions": 1}, {"conditions": [condition("Suspended")]}, True, ["Terminating", "0/1", ""]),
        ({"completions": 1}, {"conditions": [condition("Suspended")]}, False, ["Suspended", "0/1", ""]),
        ({"completions": 1}, {"conditions": [condition("Complete", "False")]}, False, ["Running", "0/1", ""]),
    ],
)  # fmt: skip
def test_job(spec: dict[str, Any], status: dict[str, Any], deleting: bool, expected: list[str]) -> None:
    metadata = meta("pi") | ({"deletionTimestamp": ts(seconds=1)} if deleting else {})
    selector = {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}
    obj = {"metadata": metadata, "spec": spec | {"template": TEMPLATE, "selector": selector}, "status": status}
    columns, found = rows("Job", obj)
    assert columns == "Name|Status|Completions|Duration|Age|(Containers)|(Images)|(Selector)"
    assert found == [["pi", *expected, "60m", "main", "busybox", "batch.kubernetes.io/controller-uid=u1"]]


def test_job_before_1_30_has_no_status_column() -> None:
    obj = {"metadata": meta("pi"), "spec": {"completions": 2, "template": TEMPLATE}, "status": {"succeeded": 1}}
    table = to_table("Job", [obj], now=NOW, minor=29)
    assert header(table) == "Name|Completions|Duration|Age|(Containers)|(Images)|(Selector)"
    assert table["rows"][0]["cells"][:4] == ["pi", "1/2", "", "60m"]
    assert header(to_table("Job", [obj], now=NOW, minor=30)).startswith("Name|Status|")


def test_replication_controller() -> None:
    obj = {
        "metadata": meta("web"),
        "spec": {"replicas": 2, "selector": {"app": "web", "tier": "a"}, "template": TEMPLATE},
        "status": {"replicas": 2, "readyReplicas": 1},
    }
    columns, found = rows("ReplicationController", obj)
    assert columns == "Name|Desired:integer|Current:integer|Ready:integer|Age|(Containers)|(Images)|(Selector)"
    assert found == [["web", 2, 2, 1, "60m", "main", "busybox", "app=web,tier=a"]]


def test_ingress() -> None:
    rules = [{"host": h} for h in ("a.example", "", "b.example", "c.example", "d.example")]
    busy = {
        "metadata": meta("busy"),
        "spec": {"ingressClassName": "nginx", "rules": rules, "tls": [{"hosts": ["a.example"]}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}, {"hostname": "lb.example"}, {"ip": "10.0.0.1"}]}},
    }
    plain = {"metadata": meta("plain"), "spec": {"defaultBackend": {}}, "status": {"loadBalancer": {}}}
    columns, found = rows("Ingress", busy, plain)
    assert columns == "Name|Class|Hosts|Address|Ports|Age"
    assert found == [
        ["busy", "nginx", "a.example,b.example,c.example + 2 more...", "10.0.0.1,10.0.0.9,lb.example", "80, 443",
         "60m"],
        ["plain", "<none>", "*", "", "80", "60m"],
    ]  # fmt: skip


def test_ingress_class() -> None:
    parameters = {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}
    with_parameters = {"metadata": meta("external"), "spec": {"controller": "example.com/lb", "parameters": parameters}}
    plain = {"metadata": meta("nginx"), "spec": {"controller": "k8s.io/ingress-nginx"}}
    columns, found = rows("IngressClass", with_parameters, plain)
    assert columns == "Name|Controller|Parameters|Age"
    assert found == [
        ["external", "example.com/lb", "IngressParameters.k8s.example.com/external-lb", "60m"],
        ["nginx", "k8s.io/ingress-nginx", "<none>", "60m"],
    ]


def test_apiservice() -> None:
    local = {"metadata": meta("v1.apps"), "spec": {}, "status": {"conditions": [condition("Available")]}}
    remote = {
        "metadata": meta("v1beta1.metrics.k8s.io"),
        "spec": {"service": {"namespace": "kube-system", "name": "metrics-server"}},
        "status": {"conditions": [condition("Available", "False") | {"reason": "MissingEndpoints"}]},
    }
    unknown = {"metadata": meta("v1.x"), "spec": {}}
    columns, found = rows("APIService", local, remote, unknown)
    assert columns == "Name|Service|Available|Age"
    assert found == [
        ["v1.apps", "Local", "True", "60m"],
        ["v1beta1.metrics.k8s.io", "kube-system/metrics-server", "False (MissingEndpoints)", "60m"],
        ["v1.x", "Local", "Unknown", "60m"],
    ]
