"""The guide's scenario 1 with `rbac.yaml` binding `system:auth-delegator` to the wrong service account:
OpenBao's TokenReview call (made with the configurer's `vault` service-account token, as Bank-Vaults
configures it) is forbidden, so every Kubernetes-auth login answers `permission denied` and the app's
init container crash-loops; with the binding fixed, a new app pod gets its secret."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.sandbox.conftest import KUBECTL, RunningSandbox, wait_for
from tests.sandbox.test_scenario_failures import (
    app_logs,
    crash_looping_init,
    replace_app_pod,
    untimed,
    watch_pod_rows,
)
from tests.sandbox.test_scenarios import (
    SECRET,
    WAIT,
    apply_manifest,
    install_app,
    meshbook,
    prerequisites,
    rendered,
)

pytestmark = pytest.mark.slow

# The API server's refusal as OpenBao logs it (inside its quoted err; backslashes removed before matching).
FORBIDDEN_REVIEW = (
    'login unauthorized: err="{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
    '"message":"tokenreviews.authentication.k8s.io is forbidden: User "system:serviceaccount:vault:vault" cannot '
    'create resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope","reason":"Forbidden"'
)


def rbac_bound_to(service_account: str) -> str:
    """The rbac manifest with the auth-delegator binding's subject replaced (a typo a user could make)."""
    objects = list(yaml.safe_load_all(rendered("rbac")))
    for obj in objects:
        if obj["kind"] == "ClusterRoleBinding":
            obj["subjects"][0]["name"] = service_account
    return yaml.safe_dump_all(objects)


def vault_cr_logging_debug() -> str:
    """The Vault CR with `config.log_level: debug`: OpenBao logs why a login was refused only at debug."""
    objects = list(yaml.safe_load_all(rendered("vault-cr")))
    for obj in objects:
        if obj["kind"] == "Vault":
            obj["spec"]["config"]["log_level"] = "debug"
    return yaml.safe_dump_all(objects)


def test_auth_delegator_bound_to_the_wrong_service_account_fails_every_login(
    cluster: tuple[RunningSandbox, Path],
) -> None:
    sandbox, state = cluster
    prerequisites(sandbox, state)
    sandbox.kubectl("create", "namespace", "vault")
    sandbox.kubectl("apply", "-f", "-", input=rbac_bound_to("default"))
    sandbox.kubectl("apply", "-f", "-", input=vault_cr_logging_debug())
    sandbox.kubectl("wait", "--for=create", "pod/vault-0", "-n", "vault", WAIT)
    sandbox.kubectl("wait", "--for=condition=Ready", "pod/vault-0", "-n", "vault", WAIT)
    sandbox.kubectl("rollout", "status", "deployment/vault-configurer", "-n", "vault", WAIT)
    apply_manifest(sandbox, "vault-permissive")
    denied = sandbox.kubectl(
        "auth", "can-i", "create", "tokenreviews.authentication.k8s.io", "--as", "system:serviceaccount:vault:vault",
        check=False,
    )  # fmt: skip
    assert (denied.returncode, denied.stdout.strip()) == (1, "no")

    install_app(sandbox, wait=False)
    watch_pod_rows(sandbox, "app", crash_looping_init)
    run = untimed(sandbox.kubectl("logs", "-n", "app", "deploy/app", "-c", "init-ubuntu", "-p").stdout)
    refusal = (
        'level=ERROR msg="failed to request new Vault token" app=vault-env err="Error making API request.'
        "\\n\\nURL: POST https://vault.vault:8200/v1/auth/kubernetes/login\\nCode: 403. Errors:\\n\\n"
        '\\t* permission denied"'
    )
    assert refusal in run, run
    bao_log = (state / "openbao" / "vault" / "vault-0" / "bao.log").read_text()
    assert FORBIDDEN_REVIEW in bao_log.replace("\\", ""), bao_log[-3000:]

    # Fixed binding (the manifest as meshbook renders it): the next app pod logs in and gets its secret.
    apply_manifest(sandbox, "rbac")
    allowed = sandbox.kubectl(
        "auth", "can-i", "create", "tokenreviews.authentication.k8s.io", "--as", "system:serviceaccount:vault:vault"
    )
    assert allowed.stdout.strip() == "yes"
    pod = replace_app_pod(sandbox)
    assert app_logs(sandbox, pod) == ([SECRET, "initContainers ready"], [SECRET, "going to sleep..."])


def test_the_operator_without_its_cluster_role_binding_is_refused_until_it_is_back(
    cluster: tuple[RunningSandbox, Path],
) -> None:
    """The operator acts as its service account: without the chart's ClusterRoleBinding every call is
    forbidden (logged by the operator, a Warning Event on the Vault CR); with it back, vault-0 appears."""
    sandbox, state = cluster
    sandbox.kubectl("create", "namespace", "vault-system")
    meshbook(sandbox, "sandbox", "install", "bank-vaults", "--state", str(state))
    sandbox.kubectl("rollout", "status", "deployment/vault-operator", "-n", "vault-system", WAIT)
    sandbox.kubectl("delete", "clusterrolebinding", "vault-operator")
    sandbox.kubectl("create", "namespace", "vault")
    apply_manifest(sandbox, "rbac")
    apply_manifest(sandbox, "vault-cr")

    message = (
        'secrets "vault-tls" is forbidden: User "system:serviceaccount:vault-system:vault-operator" cannot get '
        'resource "secrets" in API group "" in the namespace "vault"'
    )
    event = wait_for(
        client.CoreV1Api(sandbox.api).list_namespaced_event,
        lambda e: e.reason == "ReconcileError",  # type: ignore[union-attr]
        namespace="vault",
    )
    assert (event.type, event.message, event.involved_object.kind) == ("Warning", message, "Vault")  # type: ignore[union-attr]
    logged = sandbox.kubectl("logs", "-n", "vault-system", "deployment/vault-operator").stdout.splitlines()
    errors = [json.loads(line) for line in logged if line.startswith("{")]
    assert {"msg": "Reconciler error", "name": "vault", "namespace": "vault", "error": message}.items() <= errors[
        0
    ].items()
    assert sandbox.kubectl("get", "statefulsets", "-n", "vault", "-o", "name").stdout == ""

    sandbox.kubectl(
        "create", "clusterrolebinding", "vault-operator", "--clusterrole=vault-operator",
        "--serviceaccount=vault-system:vault-operator",
    )  # fmt: skip
    sandbox.kubectl("wait", "--for=create", "pod/vault-0", "-n", "vault", WAIT)


def first_log_line_with(sandbox: RunningSandbox, text: str, *target: str, timeout: float = 120) -> str:
    """`kubectl logs -f TARGET` until a line holds `text` (the stream is the wait, no polling)."""
    env = {**os.environ, "KUBECONFIG": str(sandbox.kubeconfig)}
    with subprocess.Popen([KUBECTL, "logs", "-f", *target], stdout=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if text in line:
                    return line.rstrip("\n")
        finally:
            proc.kill()
    raise AssertionError(f"the log of {target} ended without {text!r}")


def test_bank_vaults_unseal_without_the_secrets_role_cannot_keep_its_keys(cluster: tuple[RunningSandbox, Path]) -> None:
    """`bank-vaults unseal` reads and writes the unseal keys as the vault pod's service account: without
    rbac.yaml's Role on Secrets it is refused (and initialises nothing); with it, vault-0 gets Ready."""
    sandbox, state = cluster
    sandbox.kubectl("create", "namespace", "vault-system")
    meshbook(sandbox, "sandbox", "install", "bank-vaults", "--state", str(state))
    sandbox.kubectl("rollout", "status", "deployment/vault-operator", "-n", "vault-system", WAIT)
    sandbox.kubectl("create", "namespace", "vault")
    objects = [o for o in yaml.safe_load_all(rendered("rbac")) if o["kind"] not in ("Role", "RoleBinding")]
    sandbox.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))
    apply_manifest(sandbox, "vault-cr")
    sandbox.kubectl("wait", "--for=create", "pod/vault-0", "-n", "vault", WAIT)
    line = first_log_line_with(sandbox, "error unsealing vault", "-n", "vault", "vault-0", "-c", "bank-vaults")
    assert line == (
        'level=error msg="error unsealing vault" err="secrets \\"vault-unseal-keys\\" is forbidden: User '
        '\\"system:serviceaccount:vault:vault\\" cannot get resource \\"secrets\\" in API group \\"\\" '
        'in the namespace \\"vault\\""'
    )
    ready = sandbox.kubectl(
        "get", "pod", "vault-0", "-n", "vault", "-o", "jsonpath={.status.containerStatuses[?(@.name=='vault')].ready}"
    )
    assert ready.stdout == "false"

    apply_manifest(sandbox, "rbac")
    sandbox.kubectl("wait", "--for=condition=Ready", "pod/vault-0", "-n", "vault", WAIT)
