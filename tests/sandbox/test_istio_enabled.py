"""FACTS 5 in the sandbox: with Istio before 1.8 and both sides in the mesh, `istioEnabled: false`
(port `api-port`) breaks vault-env's TLS ("server gave HTTP response to HTTPS client"); `true`
(`https-api-port`) works."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.sandbox.conftest import wait_for
from tests.sandbox.test_scenarios import WAIT, apply_manifest, meshbook

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("istio_enabled", [False, True])
def test_istio_enabled_decides_tls_through_the_mesh_with_old_istio(cluster: tuple, istio_enabled: bool) -> None:
    sandbox, state = cluster
    old = ("--set", "istio.version=1.7.8")
    meshbook(sandbox, "sandbox", "install", "istio", "--state", str(state), *old)
    sandbox.kubectl("rollout", "status", "deployment/istiod", "-n", "istio-system", WAIT)
    apply_manifest(sandbox, "mesh-mtls")
    sandbox.kubectl("create", "namespace", "vault-system")
    sandbox.kubectl("label", "namespace", "vault-system", "name=vault-system", "istio-injection=enabled")
    apply_manifest(sandbox, "webhook-permissive")
    meshbook(sandbox, "sandbox", "install", "bank-vaults", "--state", str(state))
    sandbox.kubectl("rollout", "status", "deployment/vault-secrets-webhook", "-n", "vault-system", WAIT)
    sandbox.kubectl("rollout", "status", "deployment/vault-operator", "-n", "vault-system", WAIT)
    for ns in ("vault", "app"):
        sandbox.kubectl("create", "namespace", ns)
        sandbox.kubectl("label", "namespace", ns, "istio-injection=enabled")
    apply_manifest(sandbox, "rbac")
    apply_manifest(sandbox, "vault-cr", f"vault.istio_enabled={str(istio_enabled).lower()}")
    sandbox.kubectl("wait", "--for=condition=Ready", "pod/vault-0", "-n", "vault", WAIT)
    apply_manifest(sandbox, "vault-permissive")
    port_name = sandbox.kubectl("get", "svc", "vault", "-n", "vault", "-o", "jsonpath={.spec.ports[0].name}").stdout
    assert port_name == ("https-api-port" if istio_enabled else "api-port")
    apply_manifest(sandbox, "app", "app.init_container=false")
    if istio_enabled:
        sandbox.kubectl("rollout", "status", "deployment/app", "-n", "app", WAIT)
        assert sandbox.kubectl("logs", "-n", "app", "deployment/app").stdout.splitlines()[-2:] == [
            "s3cr3t",
            "going to sleep...",
        ]
        return
    # At least one restart (kubectl's `--for=jsonpath=...=1` misses it when a busy machine starts kubectl
    # after the second restart): a watch on the pods, judged by the official client, with a generous bound.
    wait_for(
        client.CoreV1Api(sandbox.api).list_namespaced_pod,
        lambda pod: any(s.name == "app" and s.restart_count >= 1 for s in (pod.status.container_statuses or [])),
        timeout=240,
        namespace="app",
        label_selector="app.kubernetes.io/name=app",
    )
    logs = sandbox.kubectl("logs", "-n", "app", "deployment/app", "-c", "app", "--previous").stdout
    assert "server gave HTTP response to HTTPS client" in logs
    assert "s3cr3t" not in logs
