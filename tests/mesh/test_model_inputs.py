"""The connectivity model's inputs read from objects: one reading for explain, the sandbox and the widgets."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from meshbook.mesh.connectivity import Destination, PodContainer
from meshbook.mesh.model_inputs import (
    destination_of_service,
    has_sidecar,
    pod_source,
    proxy_ready,
    service_port,
    target_port,
)
from meshbook.params import SidecarMode
from tests.conftest import ROOT

SERVICE: dict[str, Any] = {
    "metadata": {"namespace": "vault", "name": "vault"},
    "spec": {
        "selector": {"app": "vault"},
        "ports": [
            {"name": "https-api-port", "port": 8200, "targetPort": 8200},
            {"name": "tcp-cluster", "port": 8201, "targetPort": "cluster", "appProtocol": "tcp"},
        ],
    },
}


def vault_pod(*, proxy: str | None = "containers", ready: bool | None = True) -> dict[str, Any]:
    """vault-0, with istio-proxy among `proxy` ("containers", "initContainers" or None) and its readiness."""
    containers: list[dict[str, Any]] = [{"name": "vault", "ports": [{"name": "cluster", "containerPort": 8201}]}]
    inits: list[dict[str, Any]] = [{"name": "istio-init"}]
    statuses: list[dict[str, Any]] = [{"name": "vault", "ready": True}]
    init_statuses: list[dict[str, Any]] = []
    if proxy == "containers":
        containers.append({"name": "istio-proxy"})
        statuses.append({"name": "istio-proxy", "ready": ready})
    elif proxy == "initContainers":
        inits.append({"name": "istio-proxy", "restartPolicy": "Always"})
        init_statuses.append({"name": "istio-proxy", "ready": ready})
    return {
        "metadata": {"namespace": "vault", "name": "vault-0", "labels": {"app": "vault"}},
        "spec": {"initContainers": inits, "containers": containers},
        "status": {"containerStatuses": statuses, "initContainerStatuses": init_statuses},
    }


@pytest.mark.parametrize(("proxy", "expected"), [("containers", True), ("initContainers", True), (None, False)])
def test_has_sidecar(proxy: str | None, expected: bool) -> None:
    assert has_sidecar(vault_pod(proxy=proxy)) is expected


@pytest.mark.parametrize(
    ("proxy", "ready", "expected"),
    [
        ("containers", True, True),
        ("containers", False, False),
        ("initContainers", True, True),
        ("initContainers", None, False),
        (None, None, False),
    ],
)
def test_proxy_ready(proxy: str | None, ready: bool | None, expected: bool) -> None:
    assert proxy_ready(vault_pod(proxy=proxy, ready=ready)) is expected
    assert proxy_ready({"metadata": {}}) is False  # not yet scheduled: no status at all


def test_pod_source_takes_the_proxys_readiness_now() -> None:
    assert pod_source(vault_pod(ready=False), "vault") == PodContainer(
        "vault", "vault-0", "vault", sidecar_mode=SidecarMode.CLASSIC, proxy_ready=False
    )
    assert pod_source(vault_pod(ready=True), "vault").proxy_ready is True
    with pytest.raises(ValueError, match="pod vault/vault-0 has no container app"):
        pod_source(vault_pod(), "app")


def test_service_port() -> None:
    assert service_port(SERVICE, 8201) == SERVICE["spec"]["ports"][1]
    assert service_port(SERVICE, 443) is None
    assert service_port({"metadata": {}}, 443) is None


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"port": 443, "targetPort": 8443}, 8443),
        ({"port": 443, "targetPort": "8443"}, 8443),
        ({"port": 8201, "targetPort": "cluster"}, 8201),  # named: the pod's containerPort
        ({"port": 9000, "targetPort": "cluster"}, 8201),
        ({"port": 9000, "targetPort": "metrics"}, 9000),  # unknown name: the Service port
        ({"port": 9000}, 9000),  # no targetPort: the Service port
    ],
)
def test_target_port(entry: dict[str, Any], expected: int) -> None:
    assert target_port(entry, vault_pod()) == expected


def test_destination_of_a_service_port_and_a_live_pod() -> None:
    entry = service_port(SERVICE, 8201)
    assert entry is not None
    assert destination_of_service(SERVICE, entry, vault_pod(), host="vault.vault") == Destination(
        "vault", "vault", 8201, port_name="tcp-cluster", app_protocol="tcp", target_port=8201, pod="vault-0",
        pod_labels={"app": "vault"}, sidecar=True, host="vault.vault",
    )  # fmt: skip
    without_proxy = destination_of_service(SERVICE, SERVICE["spec"]["ports"][0], vault_pod(proxy=None), host="v")
    assert (without_proxy.sidecar, without_proxy.app_protocol, without_proxy.workload_port) == (False, None, 8200)


def test_destination_of_a_pod_template_with_a_predicted_sidecar() -> None:
    """The widgets predict from the chart's pod template: no pod name yet, and injection decided elsewhere."""
    template = {"metadata": {"labels": {"app": "vault"}}, "spec": {"containers": [{"name": "vault"}]}}
    destination = destination_of_service(SERVICE, SERVICE["spec"]["ports"][0], template, host="h", sidecar=True)
    assert (destination.pod, destination.workload, destination.sidecar) == (None, "vault/vault", True)
    assert (
        destination_of_service(SERVICE, SERVICE["spec"]["ports"][0], vault_pod(), host="h", sidecar=False).sidecar
        is False
    )


def test_model_inputs_import_only_the_pure_model() -> None:
    """The sandbox uses this module, so it may import nothing of kube, runbook, widgets or report."""
    code = "import sys, meshbook.mesh.model_inputs; print(sorted(m for m in sys.modules if m.startswith('meshbook')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(
        [
            "meshbook", "meshbook.mesh", "meshbook.mesh.capture", "meshbook.mesh.connectivity",
            "meshbook.mesh.model_inputs", "meshbook.mesh.peer_authentication", "meshbook.mesh.protocols",
            "meshbook.param_enums", "meshbook.podstatus",
        ]
    )  # fmt: skip
