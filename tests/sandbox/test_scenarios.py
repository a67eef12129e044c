"""The guide's three scenarios on the sandbox, typed as a user would: kubectl, `meshbook sandbox install`
and `meshbook manifests` (the sandbox runs a real OpenBao; vault-env really logs in and reads)."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sandbox.conftest import RunningSandbox

pytestmark = pytest.mark.slow

SECRET = "s3cr3t"  # the demo Vault CR's startup secret (the guide's own value)
WAIT = "--timeout=120s"


def meshbook(sandbox: RunningSandbox, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "meshbook", *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, f"meshbook {' '.join(args)}: {proc.stderr}"
    return proc.stdout


@functools.cache
def rendered(name: str, *sets: str) -> str:
    """`meshbook manifests NAME [--set k=v]...`: the same text for every sandbox, so rendered once."""
    args = ["manifests", name]
    for item in sets:
        args += ["--set", item]
    proc = subprocess.run(
        [sys.executable, "-m", "meshbook", *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, f"meshbook {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def apply_manifest(sandbox: RunningSandbox, name: str, *sets: str) -> None:
    sandbox.kubectl("apply", "-f", "-", input=rendered(name, *sets))


def ready_counts(sandbox: RunningSandbox, namespace: str) -> dict[str, str]:
    """Pod name prefix (before the hash) -> READY column, from `kubectl get pods`."""
    rows = sandbox.kubectl("get", "pods", "-n", namespace, "--no-headers").stdout.splitlines()
    out = {}
    for row in rows:
        name, ready, status = row.split()[:3]
        if status == "Terminating":
            continue
        key = name if name.startswith("vault-0") else name.rsplit("-", 2)[0]
        out[key] = ready
    return out


def prerequisites(
    sandbox: RunningSandbox,
    state: Path,
    *,
    sidecar_mode: str = "classic",
    webhook_permissive: bool = True,
    policy: str = "Ignore",
) -> None:
    meshbook(sandbox, "sandbox", "install", "istio", "--state", str(state), "--sidecar-mode", sidecar_mode)
    sandbox.kubectl("rollout", "status", "deployment/istiod", "-n", "istio-system", WAIT)
    apply_manifest(sandbox, "mesh-mtls")
    sandbox.kubectl("create", "namespace", "vault-system")
    sandbox.kubectl("label", "namespace", "vault-system", "name=vault-system", "istio-injection=enabled")
    if webhook_permissive:
        apply_manifest(sandbox, "webhook-permissive")
    meshbook(sandbox, "sandbox", "install", "bank-vaults", "--state", str(state), "--pods-failure-policy", policy)
    sandbox.kubectl("rollout", "status", "deployment/vault-secrets-webhook", "-n", "vault-system", WAIT)
    sandbox.kubectl("rollout", "status", "deployment/vault-operator", "-n", "vault-system", WAIT)


def install_vault(
    sandbox: RunningSandbox, *, permissive: bool = True, inject: bool = False, sets: tuple[str, ...] = ()
) -> None:
    sandbox.kubectl("create", "namespace", "vault")
    if inject:
        sandbox.kubectl("label", "namespace", "vault", "istio-injection=enabled")
    apply_manifest(sandbox, "rbac")
    apply_manifest(sandbox, "vault-cr", *sets)
    sandbox.kubectl("wait", "--for=create", "pod/vault-0", "-n", "vault", WAIT)  # the operator makes it
    sandbox.kubectl("wait", "--for=condition=Ready", "pod/vault-0", "-n", "vault", WAIT)
    sandbox.kubectl("rollout", "status", "deployment/vault-configurer", "-n", "vault", WAIT)
    if permissive:
        apply_manifest(sandbox, "vault-permissive")


def install_app(sandbox: RunningSandbox, *, inject: bool = True, wait: bool = True) -> None:
    sandbox.kubectl("create", "namespace", "app")
    if inject:
        sandbox.kubectl("label", "namespace", "app", "istio-injection=enabled")
    apply_manifest(sandbox, "app")
    if wait:
        sandbox.kubectl("rollout", "status", "deployment/app", "-n", "app", WAIT)


def test_guide_scenarios_one_two_three(cluster: tuple[RunningSandbox, Path]) -> None:
    sandbox, state = cluster
    prerequisites(sandbox, state)
    system = ready_counts(sandbox, "vault-system")
    assert system == {"vault-operator": "2/2", "vault-secrets-webhook": "2/2"}  # all with istio-proxy
    webhook_pods = sandbox.kubectl(
        "get", "pods", "-n", "vault-system", "-l", "app.kubernetes.io/name=vault-secrets-webhook", "-o", "name"
    )
    assert len(webhook_pods.stdout.split()) == 2

    # Scenario 1: Vault outside the mesh, app inside.
    install_vault(sandbox)
    install_app(sandbox)
    assert ready_counts(sandbox, "vault") == {"vault-0": "3/3", "vault-configurer": "1/1"}
    assert ready_counts(sandbox, "app") == {"app": "2/2"}
    logs = sandbox.kubectl("logs", "-n", "app", "deployment/app", "app").stdout
    assert 'msg="received new Vault token"' in logs and 'msg="initial Vault token arrived"' in logs
    assert logs.splitlines()[-2:] == [SECRET, "going to sleep..."]
    init_logs = sandbox.kubectl("logs", "-n", "app", "deployment/app", "-c", "init-ubuntu").stdout
    assert init_logs.splitlines()[-2:] == [SECRET, "initContainers ready"]

    # Scenario 2: Vault inside the mesh, app outside.
    sandbox.kubectl("label", "namespace", "app", "istio-injection-")
    sandbox.kubectl("label", "namespace", "vault", "istio-injection=enabled")
    sandbox.kubectl("delete", "pods", "--all", "-n", "vault", WAIT)
    sandbox.kubectl("wait", "--for=condition=Ready", "pod/vault-0", "-n", "vault", WAIT)
    sandbox.kubectl("rollout", "status", "deployment/vault-configurer", "-n", "vault", WAIT)
    assert ready_counts(sandbox, "vault") == {"vault-0": "4/4", "vault-configurer": "2/2"}
    sandbox.kubectl("delete", "pods", "--all", "-n", "app", WAIT)
    sandbox.kubectl("rollout", "status", "deployment/app", "-n", "app", WAIT)
    assert ready_counts(sandbox, "app") == {"app": "1/1"}
    logs = sandbox.kubectl("logs", "-n", "app", "deployment/app").stdout
    assert logs.splitlines()[-2:] == [SECRET, "going to sleep..."]

    # Scenario 3: both inside the mesh.
    sandbox.kubectl("label", "namespace", "app", "istio-injection=enabled")
    sandbox.kubectl("delete", "pods", "--all", "-n", "app", WAIT)
    sandbox.kubectl("delete", "pods", "--all", "-n", "vault", WAIT)
    sandbox.kubectl("wait", "--for=condition=Ready", "pod/vault-0", "-n", "vault", WAIT)
    sandbox.kubectl("rollout", "status", "deployment/app", "-n", "app", WAIT)
    assert ready_counts(sandbox, "vault") == {"vault-0": "4/4", "vault-configurer": "2/2"}
    assert ready_counts(sandbox, "app") == {"app": "2/2"}
    logs = sandbox.kubectl("logs", "-n", "app", "deployment/app").stdout
    assert logs.splitlines()[-2:] == [SECRET, "going to sleep..."]
    init_logs = sandbox.kubectl("logs", "-n", "app", "deployment/app", "-c", "init-ubuntu").stdout
    assert init_logs.splitlines()[-2:] == [SECRET, "initContainers ready"]
