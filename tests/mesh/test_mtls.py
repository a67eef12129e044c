"""The Backyards verbs over PeerAuthentication and the injection label: argument checks without a cluster,
then each verb against a sandbox with Istio's objects installed (idempotence, exact mTLS tables)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import pandas as pd
import pytest
from kubernetes import client

from meshbook.errors import MeshbookError, ParameterError
from meshbook.kube.apply import AppliedObject, Applier
from meshbook.mesh.injection import auto_inject
from meshbook.mesh.mtls import (
    ANY_WORKLOAD,
    COLUMNS,
    GUIDE_COMMANDS,
    NO_POLICY,
    Workload,
    allow,
    find_workload,
    mtls_table,
    mtls_table_from,
    require_mtls,
)
from meshbook.params import RunbookParams
from meshbook.sandbox import control
from meshbook.sandbox_install import install_istio
from tests.sandbox.conftest import RunningSandbox, start_sandbox

WEBHOOK = "vault-secrets-webhook"
WEBHOOK_LABELS = {"app.kubernetes.io/name": WEBHOOK, "app.kubernetes.io/instance": WEBHOOK}
MESH = "PeerAuthentication istio-system/default"


def deployment(namespace: str, name: str, labels: dict[str, str], ports: list[dict[str, Any]]) -> dict[str, Any]:
    """A Deployment whose template carries one more label than its selector (as charts do)."""
    template_labels = {**labels, "helm.sh/chart": f"{name}-1.0.0"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": template_labels},
                "spec": {"containers": [{"name": name, "image": "busybox", "ports": ports}]},
            },
        },
    }


def unreachable_api() -> client.ApiClient:
    """A client for a port nothing listens on: argument errors must come before any request."""
    return client.ApiClient(client.Configuration(host="http://127.0.0.1:9"))


# --- without a cluster ---------------------------------------------------------------------------------


def test_guide_commands_pair_each_verb_with_the_guides_commands() -> None:
    table = pd.DataFrame(GUIDE_COMMANDS)
    assert list(table.columns) == ["verb", "step", "backyards", "kubectl", "meshbook"]
    assert list(table.verb) == ["require_mtls", "mtls_table", "allow", "allow", "auto_inject", "auto_inject"]
    assert list(table.backyards) == [
        "backyards mtls require mesh",
        "backyards mtls get mesh",
        "backyards mtls allow vault-system/vault-secrets-webhook",
        "backyards mtls allow vault",
        "backyards sidecar-proxy auto-inject on app",
        "backyards sidecar-proxy auto-inject off app",
    ]
    assert table.kubectl[5] == "kubectl label namespace app istio-injection-"
    assert table.kubectl[3] == (
        "kubectl apply -f - <<EOF\n"
        "apiVersion: authentication.istio.io/v1alpha1\n"
        "kind: Policy\n"
        "metadata:\n"
        "  name: default\n"
        "  namespace: vault\n"
        "  labels:\n"
        "    app: security\n"
        "spec:\n"
        "  peers:\n"
        "  - mtls:\n"
        "      mode: PERMISSIVE\n"
        "EOF"
    )
    assert "spec:\n  targets:\n  - name: vault-secrets-webhook\n  peers:" in table.kubectl[2]
    assert all(call.startswith(f"{verb}(api") for verb, call in zip(table.verb, table.meshbook, strict=True))


def test_an_unknown_mode_is_refused_before_any_request() -> None:
    with pytest.raises(ParameterError) as err:
        require_mtls(unreachable_api(), "strict")
    assert str(err.value) == "mTLS mode 'strict' is not one of STRICT, PERMISSIVE, DISABLE"


@pytest.mark.parametrize(
    ("workload", "kwargs", "message"),
    [
        (None, {"port": 8443}, "allow: `port` needs a workload (Istio ignores portLevelMtls without a selector)"),
        (None, {"labels": {"a": "b"}}, "allow: `labels` select a workload's pods; name the workload too"),
        ("web", {"labels": {}}, "allow: `labels` is empty, which would select every pod of the namespace"),
        ("default", {}, "allow: a workload policy named 'default' would replace the namespace policy"),
        ("web", {"port": 0}, "allow: port 0 is not a port number (1-65535)"),
    ],
)
def test_allow_refuses_arguments_that_would_select_the_wrong_pods(
    workload: str | None, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ParameterError) as err:
        allow(unreachable_api(), "ns", workload, **kwargs)
    assert str(err.value) == message


def test_a_workload_is_its_selector_pod_labels_and_tcp_ports() -> None:
    ports: list[dict[str, Any]] = [
        {"containerPort": 9443},
        {"containerPort": 8443, "protocol": "TCP"},
        {"containerPort": 53, "protocol": "UDP"},
    ]
    obj = deployment("ns", "web", {"app": "web"}, ports)
    assert Workload.from_object(obj) == Workload(
        "Deployment", "ns", "web", {"app": "web", "helm.sh/chart": "web-1.0.0"}, {"app": "web"}, (8443, 9443)
    )


def test_mtls_table_from_objects_already_read() -> None:
    web = Workload("Deployment", "a", "web", {"app": "web"}, {"app": "web"}, ())
    workload_policy = {
        "metadata": {"namespace": "a", "name": "web", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "mtls": {"mode": "DISABLE"}},
    }
    table = mtls_table_from({"a": {"istio-injection": "enabled"}, "b": {}}, [web], [workload_policy])
    assert list(table.columns) == list(COLUMNS)
    assert table.to_dict("records") == [
        row("a", ANY_WORKLOAD, None, "PERMISSIVE", NO_POLICY, "default", "on"),
        row("a", "web", None, "DISABLE", "PeerAuthentication a/web", "workload", "on"),
        row("b", ANY_WORKLOAD, None, "PERMISSIVE", NO_POLICY, "default", "off"),
    ]
    assert mtls_table_from({}, [], []).to_dict("records") == []


def row(*values: object) -> dict[str, object]:
    return dict(zip(COLUMNS, values, strict=True))


# --- against a sandbox with Istio ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    running = start_sandbox(tmp_path_factory.mktemp("mtls"))
    try:
        install_istio(RunbookParams.model_validate({}), Applier(running.api))
        yield running
    finally:
        running.api.close()  # type: ignore[no-untyped-call]
        control.down(running.info.state_dir)


def spec_of(sandbox: RunningSandbox, namespace: str, name: str) -> dict[str, Any]:
    out = sandbox.kubectl("get", "peerauthentication", name, "-n", namespace, "-o", "json").stdout
    spec: dict[str, Any] = json.loads(out)["spec"]
    return spec


def labels_of(sandbox: RunningSandbox, namespace: str) -> dict[str, str]:
    labels: dict[str, str] = json.loads(sandbox.kubectl("get", "namespace", namespace, "-o", "json").stdout)[
        "metadata"
    ].get("labels", {})
    return labels


def assert_unchanged(again: AppliedObject, first: AppliedObject) -> None:
    assert again.resource_version_before == again.resource_version_after == first.resource_version_after
    assert not again.changed


def create_namespace(sandbox: RunningSandbox, name: str, *labels: str) -> None:
    sandbox.kubectl("create", "namespace", name)
    if labels:
        sandbox.kubectl("label", "namespace", name, *labels)


@pytest.mark.slow
def test_require_mtls_writes_the_mesh_policy_once(cluster: RunningSandbox) -> None:
    cluster.kubectl("delete", "peerauthentication", "default", "-n", "istio-system", "--ignore-not-found")
    first = require_mtls(cluster.api)
    assert (first.ref, first.api_version, first.resource_version_before) == (MESH, "security.istio.io/v1", None)
    assert spec_of(cluster, "istio-system", "default") == {"mtls": {"mode": "STRICT"}}
    assert_unchanged(require_mtls(cluster.api, "STRICT"), first)

    relaxed = require_mtls(cluster.api, "PERMISSIVE")
    assert relaxed.resource_version_before == first.resource_version_after
    assert relaxed.changed
    assert spec_of(cluster, "istio-system", "default") == {"mtls": {"mode": "PERMISSIVE"}}
    assert require_mtls(cluster.api).changed
    assert spec_of(cluster, "istio-system", "default") == {"mtls": {"mode": "STRICT"}}


@pytest.mark.slow
def test_allow_a_namespace_a_workload_and_one_port(cluster: RunningSandbox) -> None:
    create_namespace(cluster, "shop")
    Applier(cluster.api).apply(deployment("shop", "web", {"app": "web"}, [{"containerPort": 8443}]))

    namespace = allow(cluster.api, "shop")
    assert (namespace.ref, namespace.resource_version_before) == ("PeerAuthentication shop/default", None)
    assert spec_of(cluster, "shop", "default") == {"mtls": {"mode": "PERMISSIVE"}}
    assert_unchanged(allow(cluster.api, "shop"), namespace)

    workload = allow(cluster.api, "shop", "web")
    assert (workload.ref, workload.resource_version_before) == ("PeerAuthentication shop/web", None)
    # the Deployment's selector, not its template labels: a chart upgrade changes helm.sh/chart
    assert spec_of(cluster, "shop", "web") == {
        "selector": {"matchLabels": {"app": "web"}},
        "mtls": {"mode": "PERMISSIVE"},
    }
    assert_unchanged(allow(cluster.api, "shop", "web"), workload)

    port = allow(cluster.api, "shop", "web", port=8443)
    assert port.resource_version_before == workload.resource_version_after
    assert port.changed
    assert spec_of(cluster, "shop", "web") == {
        "selector": {"matchLabels": {"app": "web"}},
        "portLevelMtls": {"8443": {"mode": "PERMISSIVE"}},
    }
    assert_unchanged(allow(cluster.api, "shop", "web", port=8443), port)


@pytest.mark.slow
def test_allow_by_labels_needs_no_workload_yet(cluster: RunningSandbox) -> None:
    create_namespace(cluster, "early")
    applied = allow(cluster.api, "early", WEBHOOK, labels={"app.kubernetes.io/name": WEBHOOK})
    assert (applied.ref, applied.resource_version_before) == (f"PeerAuthentication early/{WEBHOOK}", None)
    assert spec_of(cluster, "early", WEBHOOK) == {
        "selector": {"matchLabels": {"app.kubernetes.io/name": WEBHOOK}},
        "mtls": {"mode": "PERMISSIVE"},
    }


@pytest.mark.slow
def test_allow_names_the_missing_workload_and_lists_the_namespaces_workloads(cluster: RunningSandbox) -> None:
    create_namespace(cluster, "store")
    applier = Applier(cluster.api)
    applier.apply(deployment("store", "api", {"app": "api"}, []))
    applier.apply(deployment("store", "ui", {"app": "ui"}, []))
    with pytest.raises(MeshbookError) as err:
        allow(cluster.api, "store", "webhook")
    assert str(err.value) == (
        "no Deployment, StatefulSet or DaemonSet named 'webhook' in namespace 'store'; "
        "its workloads: deployment/api, deployment/ui (pass labels= to select pods that have no workload yet)"
    )
    assert find_workload(cluster.api, "store", "ui").selector == {"app": "ui"}
    create_namespace(cluster, "empty")
    with pytest.raises(MeshbookError, match=r"in namespace 'empty'; its workloads: none \(pass labels="):
        allow(cluster.api, "empty", "webhook")
    listed = cluster.kubectl("get", "peerauthentication", "-n", "store", "-o", "name").stdout
    assert listed == ""


@pytest.mark.slow
def test_mtls_table_follows_the_guides_policies(cluster: RunningSandbox) -> None:
    create_namespace(cluster, "vault-system", "istio-injection=enabled")
    create_namespace(cluster, "vault")
    webhook = deployment("vault-system", WEBHOOK, WEBHOOK_LABELS, [{"name": "https", "containerPort": 8443}])
    Applier(cluster.api).apply(webhook)
    require_mtls(cluster.api)
    namespaces = ["vault-system", "vault"]

    def rows() -> list[dict[str, object]]:
        table = mtls_table(cluster.api, namespaces=namespaces)
        assert list(table.columns) == list(COLUMNS)
        return cast(list[dict[str, object]], table.to_dict("records"))

    # mesh-wide STRICT only
    strict = ("STRICT", MESH, "mesh")
    assert rows() == [
        row("vault-system", ANY_WORKLOAD, None, *strict, "on"),
        row("vault-system", WEBHOOK, None, *strict, "on"),
        row("vault-system", WEBHOOK, 8443, *strict, "on"),
        row("vault", ANY_WORKLOAD, None, *strict, "off"),
    ]

    # plus PERMISSIVE for the vault namespace
    allow(cluster.api, "vault")
    vault_row = row("vault", ANY_WORKLOAD, None, "PERMISSIVE", "PeerAuthentication vault/default", "namespace", "off")
    assert rows() == [
        row("vault-system", ANY_WORKLOAD, None, *strict, "on"),
        row("vault-system", WEBHOOK, None, *strict, "on"),
        row("vault-system", WEBHOOK, 8443, *strict, "on"),
        vault_row,
    ]

    # plus PERMISSIVE for the webhook's port 8443 only: its other ports stay STRICT
    allow(cluster.api, "vault-system", WEBHOOK, port=8443, labels={"app.kubernetes.io/name": WEBHOOK})
    policy = f"PeerAuthentication vault-system/{WEBHOOK}"
    assert rows() == [
        row("vault-system", ANY_WORKLOAD, None, *strict, "on"),
        row("vault-system", WEBHOOK, None, *strict, "on"),
        row("vault-system", WEBHOOK, 8443, "PERMISSIVE", policy, "port", "on"),
        vault_row,
    ]

    # the default scope: every namespace but kube-*
    every = json.loads(cluster.kubectl("get", "namespaces", "-o", "json").stdout)["items"]
    expected = sorted(ns["metadata"]["name"] for ns in every if not ns["metadata"]["name"].startswith("kube-"))
    table = mtls_table(cluster.api)
    assert list(dict.fromkeys(table.namespace)) == expected
    assert {"default", "istio-system", "vault", "vault-system"} <= set(expected)
    with pytest.raises(MeshbookError, match=r"^namespace\(s\) nowhere do not exist$"):
        mtls_table(cluster.api, namespaces=["vault", "nowhere"])


@pytest.mark.slow
def test_auto_inject_on_off_on(cluster: RunningSandbox) -> None:
    assert auto_inject(cluster.api, "mesh-app", on=False) is None  # nothing to take out of the mesh
    assert cluster.kubectl("get", "namespace", "mesh-app", check=False).returncode == 1

    created = auto_inject(cluster.api, "mesh-app", on=True)
    assert created is not None
    assert (created.ref, created.resource_version_before) == ("Namespace mesh-app", None)
    assert labels_of(cluster, "mesh-app")["istio-injection"] == "enabled"
    again = auto_inject(cluster.api, "mesh-app", on=True)
    assert again is not None
    assert_unchanged(again, created)

    off = auto_inject(cluster.api, "mesh-app", on=False)
    assert off is not None
    assert (off.resource_version_before, off.changed) == (created.resource_version_after, True)
    assert "istio-injection" not in labels_of(cluster, "mesh-app")
    off_again = auto_inject(cluster.api, "mesh-app", on=False)
    assert off_again is not None
    assert_unchanged(off_again, off)

    on = auto_inject(cluster.api, "mesh-app", on=True)
    assert on is not None
    assert (on.resource_version_before, on.changed) == (off.resource_version_after, True)
    assert labels_of(cluster, "mesh-app")["istio-injection"] == "enabled"
    table = mtls_table(cluster.api, namespaces=["mesh-app"])
    assert list(table.sidecar_injection) == ["on"]


@pytest.mark.slow
def test_auto_inject_off_removes_any_value_as_kubectl_label_does(cluster: RunningSandbox) -> None:
    create_namespace(cluster, "opted-out", "istio-injection=disabled", "team=x")
    off = auto_inject(cluster.api, "opted-out", on=False)
    assert off is not None
    assert off.changed
    assert labels_of(cluster, "opted-out") == {"kubernetes.io/metadata.name": "opted-out", "team": "x"}
