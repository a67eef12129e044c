"""Server-side tables of the built-in kinds other than Pod: kubectl's columns and a representative row."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from meshbook.sandbox.http.tables.render import to_table
from tests.sandbox.test_tables import NOW, cells, header, meta, ts

TEMPLATE = {"spec": {"containers": [{"name": "vault", "image": "vault:1.16"}, {"name": "agent", "image": "a:1"}]}}
WIDE_TEMPLATE = ["vault,agent", "vault:1.16,a:1"]


def rows(kind: str, *objects: dict[str, Any]) -> tuple[str, list[list[Any]]]:
    table = to_table(kind, list(objects), now=NOW)
    return header(table), [row["cells"] for row in table["rows"]]


def test_deployment() -> None:
    labels = {"app.kubernetes.io/name": "webhook", "app.kubernetes.io/instance": "vsw"}
    obj = {
        "metadata": meta("vault-secrets-webhook", hours=3, minutes=5),
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": TEMPLATE},
        "status": {"readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1},
    }
    columns, found = rows("Deployment", obj, {"metadata": meta("d"), "spec": {}})
    assert columns == "Name|Ready|Up-to-date|Available|Age|(Containers)|(Images)|(Selector)"
    selector = "app.kubernetes.io/instance=vsw,app.kubernetes.io/name=webhook"
    assert found == [
        ["vault-secrets-webhook", "1/2", 2, 1, "3h5m", *WIDE_TEMPLATE, selector],
        ["d", "0/1", 0, 0, "60m", "", "", ""],
    ]


def test_replicaset() -> None:
    expression = {"key": "tier", "operator": "In", "values": ["b", "a"]}
    selector = {"matchLabels": {"app": "x"}, "matchExpressions": [expression]}
    obj = {"metadata": meta("x-5d4f"), "spec": {"replicas": 3, "selector": selector, "template": TEMPLATE}}
    columns, found = rows("ReplicaSet", obj | {"status": {"replicas": 3}})
    assert columns == "Name|Desired:integer|Current:integer|Ready:integer|Age|(Containers)|(Images)|(Selector)"
    assert found == [["x-5d4f", 3, 3, 0, "60m", *WIDE_TEMPLATE, "app=x,tier in (a,b)"]]


def test_statefulset() -> None:
    obj = {"metadata": meta("vault", days=2, hours=3), "spec": {"replicas": 1, "template": TEMPLATE}}
    columns, found = rows("StatefulSet", obj | {"status": {"readyReplicas": 1}})
    assert columns == "Name|Ready|Age|(Containers)|(Images)"
    assert found == [["vault", "1/1", "2d3h", *WIDE_TEMPLATE]]


def test_daemonset() -> None:
    template = {"spec": TEMPLATE["spec"] | {"nodeSelector": {"kubernetes.io/os": "linux"}}}
    spec = {"selector": {"matchLabels": {"app": "ds"}}, "template": template}
    status = {
        "desiredNumberScheduled": 1,
        "currentNumberScheduled": 1,
        "numberReady": 1,
        "updatedNumberScheduled": 1,
    }
    columns, found = rows("DaemonSet", {"metadata": meta("ds"), "spec": spec, "status": status})
    assert columns == (
        "Name|Desired:integer|Current:integer|Ready:integer|Up-to-date:integer|Available:integer"
        "|Node Selector|Age|(Containers)|(Images)|(Selector)"
    )
    assert found == [["ds", 1, 1, 1, 1, 0, "kubernetes.io/os=linux", "60m", *WIDE_TEMPLATE, "app=ds"]]


def service(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": meta("svc", minutes=10), "spec": spec, "status": status or {}}


def test_service() -> None:
    ports = [
        {"name": "api", "port": 8200, "protocol": "TCP"},
        {"name": "cluster", "port": 8201, "protocol": "TCP"},
    ]
    vault = service({"type": "ClusterIP", "clusterIPs": ["10.96.12.4"], "selector": {"app": "vault"}, "ports": ports})
    columns, found = rows("Service", vault)
    assert columns == "Name|Type|Cluster-IP|External-IP|Port(s)|Age|(Selector)"
    assert found == [["svc", "ClusterIP", "10.96.12.4", "<none>", "8200/TCP,8201/TCP", "10m", "app=vault"]]


@pytest.mark.parametrize(
    ("spec", "status", "expected"),
    [
        (
            {"clusterIP": "10.96.0.9", "ports": [{"port": 443}]},
            {},
            ["ClusterIP", "10.96.0.9", "<none>", "443/TCP"],
        ),
        (
            {"type": "NodePort", "clusterIPs": ["10.96.1.1"], "ports": [{"port": 443, "nodePort": 30443}]},
            {},
            ["NodePort", "10.96.1.1", "<none>", "443:30443/TCP"],
        ),
        (
            {"type": "LoadBalancer", "clusterIPs": ["10.96.1.2"]},
            {},
            ["LoadBalancer", "10.96.1.2", "<pending>", "<none>"],
        ),
        (
            {"type": "LoadBalancer", "externalIPs": ["1.2.3.4"], "ports": [{"port": 53, "protocol": "UDP"}]},
            {"loadBalancer": {"ingress": [{"hostname": "lb.example"}, {"ip": "5.6.7.8"}]}},
            ["LoadBalancer", "<none>", "5.6.7.8,lb.example,1.2.3.4", "53/UDP"],
        ),
        ({"clusterIP": "None", "clusterIPs": ["None"]}, {}, ["ClusterIP", "None", "<none>", "<none>"]),
        (
            {"type": "ExternalName", "externalName": "db.example"},
            {},
            ["ExternalName", "<none>", "db.example", "<none>"],
        ),
    ],
)
def test_service_types(spec: dict[str, Any], status: dict[str, Any], expected: list[str]) -> None:
    assert cells("Service", service(spec, status))[1:5] == expected


@pytest.mark.parametrize(
    ("subsets", "expected"),
    [
        (
            [
                {
                    "addresses": [{"ip": "10.244.0.5"}, {"ip": "10.244.0.6"}],
                    "ports": [{"port": 8200}, {"port": 8201}],
                }
            ],
            "10.244.0.5:8200,10.244.0.6:8200,10.244.0.5:8201 + 1 more...",
        ),
        ([{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}], "[fd00::1]:80"),
        ([{"addresses": [{"ip": "10.0.0.1"}]}], "10.0.0.1"),
        ([], "<none>"),
    ],
)
def test_endpoints(subsets: list[Any], expected: str) -> None:
    columns, found = rows("Endpoints", {"metadata": meta("vault"), "subsets": subsets})
    assert columns == "Name|Endpoints|Age"
    assert found == [["vault", expected, "60m"]]


def test_namespace_and_serviceaccount() -> None:
    assert rows("Namespace", {"metadata": meta("vault", days=8, hours=5), "status": {"phase": "Active"}}) == (
        "Name|Status|Age",
        [["vault", "Active", "8d"]],
    )
    secrets = [{"name": "vault-token"}]
    assert rows(
        "ServiceAccount", {"metadata": meta("vault", seconds=59)}, {"metadata": meta("b"), "secrets": secrets}
    ) == (
        "Name|Secrets|Age",
        [["vault", 0, "59s"], ["b", 1, "60m"]],
    )


def test_secret_and_configmap() -> None:
    tls = {
        "metadata": meta("tls", hours=22),
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "eA==", "tls.key": "eQ=="},
    }
    assert rows("Secret", tls, {"metadata": meta("plain")}) == (
        "Name|Type|Data|Age",
        [["tls", "kubernetes.io/tls", 2, "22h"], ["plain", "Opaque", 0, "60m"]],
    )
    config = {"metadata": meta("cm"), "data": {"a": "1"}, "binaryData": {"b": "AA=="}}
    assert rows("ConfigMap", config) == ("Name|Data|Age", [["cm", 2, "60m"]])


def test_events() -> None:
    core = {
        "metadata": meta("vault-0.17c3"),
        "involvedObject": {"kind": "Pod", "name": "vault-0", "fieldPath": "spec.containers{vault}"},
        "reason": "Pulled",
        "message": "Successfully pulled image\n",
        "type": "Normal",
        "count": 3,
        "source": {"component": "kubelet", "host": "sandbox"},
        "firstTimestamp": ts(minutes=5),
        "lastTimestamp": ts(seconds=30),
    }
    series = {
        "metadata": meta("webhook.17c4"),
        "involvedObject": {"kind": "MutatingWebhookConfiguration"},
        "reason": "Mutated",
        "message": "ok",
        "type": "Normal",
        "reportingComponent": "vault-secrets-webhook",
        "eventTime": (NOW - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "series": {"count": 5, "lastObservedTime": ts(seconds=10)},
    }
    columns, found = rows("Event", core, series)
    assert columns == "Last Seen|Type|Reason|Object|(Subobject)|(Source)|Message|(First Seen)|(Count)|(Name)"
    pulled = ["30s", "Normal", "Pulled", "pod/vault-0", "spec.containers{vault}", "kubelet, sandbox"]
    mutated = ["10s", "Normal", "Mutated", "mutatingwebhookconfiguration", "", "vault-secrets-webhook"]
    assert found == [
        [*pulled, "Successfully pulled image", "5m", 3, "vault-0.17c3"],
        [*mutated, "ok", "2m", 5, "webhook.17c4"],
    ]


def test_persistent_volume_claim() -> None:
    bound = {
        "metadata": meta("data-vault-0"),
        "spec": {"volumeName": "pvc-123", "storageClassName": "standard", "volumeMode": "Filesystem"},
        "status": {
            "phase": "Bound",
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
        },
    }
    annotations = {"volume.beta.kubernetes.io/storage-class": "beta"}
    pending = {
        "metadata": meta("new") | {"annotations": annotations},
        "spec": {},
        "status": {"phase": "Pending"},
    }
    columns, found = rows("PersistentVolumeClaim", bound, pending)
    assert columns == "Name|Status|Volume|Capacity|Access Modes|StorageClass|VolumeAttributesClass|Age|(VolumeMode)"
    assert found == [
        ["data-vault-0", "Bound", "pvc-123", "10Gi", "RWO,RWX", "standard", "<unset>", "60m", "Filesystem"],
        ["new", "Pending", "", "", "", "beta", "<unset>", "60m", "<unset>"],
    ]


@pytest.mark.parametrize(
    ("kind", "scope"), [("RoleBinding", "roleBinding"), ("ClusterRoleBinding", "clusterRoleBinding")]
)
def test_bindings(kind: str, scope: str) -> None:
    subjects = [
        {"kind": "ServiceAccount", "name": "vault", "namespace": "vault"},
        {"kind": "User", "name": "alice"},
        {"kind": "Group", "name": "devs"},
        {"kind": "ServiceAccount", "name": "sa2", "namespace": "default"},
    ]
    role_ref = {"kind": "ClusterRole", "name": "system:auth-delegator"}
    table = to_table(kind, [{"metadata": meta("vault-auth"), "roleRef": role_ref, "subjects": subjects}], now=NOW)
    assert header(table) == "Name|Role|Age|(Users)|(Groups)|(ServiceAccounts)"
    assert table["columnDefinitions"][3]["description"] == f"Users in the {scope}"
    role = "ClusterRole/system:auth-delegator"
    assert table["rows"][0]["cells"] == [
        "vault-auth",
        role,
        "60m",
        "alice",
        "devs",
        "vault/vault, default/sa2",
    ]


@pytest.mark.parametrize("kind", ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"])
def test_webhook_configurations(kind: str) -> None:
    webhooks = [{"name": "pods.vault"}, {"name": "secrets.vault"}]
    assert rows(kind, {"metadata": meta("vault-secrets-webhook", minutes=3), "webhooks": webhooks}) == (
        "Name|Webhooks:integer|Age",
        [["vault-secrets-webhook", 2, "3m"]],
    )


@pytest.mark.parametrize("kind", ["Role", "ClusterRole", "CustomResourceDefinition"])
def test_default_convertor_kinds(kind: str) -> None:
    assert rows(kind, {"metadata": {"name": "vault", "creationTimestamp": "2024-05-01T11:00:00+02:00"}}) == (
        "Name|Created At:date",
        [["vault", "2024-05-01T09:00:00Z"]],
    )


def test_node() -> None:
    node = {
        "metadata": meta("sandbox", days=2) | {"labels": {"node-role.kubernetes.io/control-plane": ""}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}],
            "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "meshbook"},
        },
    }
    columns, found = rows("Node", node)
    assert columns == (
        "Name|Status|Roles|Age|Version|(Internal-IP)|(External-IP)|(OS-Image)|(Kernel-Version)|(Container-Runtime)"
    )
    assert found == [
        ["sandbox", "Ready", "control-plane", "2d", "v1.33.0", "172.18.0.2", "<none>", "meshbook"] + ["<unknown>"] * 2
    ]
