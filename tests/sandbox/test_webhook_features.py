"""The Bank-Vaults webhook's documented features on a sandbox with a real OpenBao, checked with kubectl:
the image-entrypoint lookup (and the registry error for an image it cannot look up), Secret mutation
(plain, inline, dockerconfigjson, template keys) with values read from OpenBao at admission, vault-agent
rendering into the pod, and the security-context annotations. Every value is the test's own random one
and must not show in events or the server's log."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
from collections.abc import Iterator

import pytest

from tests.sandbox.conftest import KUBECTL, RunningSandbox, start_sandbox
from tests.sandbox.test_scenarios import install_vault, meshbook

pytestmark = pytest.mark.slow

WAIT = "--timeout=180s"
PATH = "secret/data/meshbook/features"
USER = "u" + secrets.token_hex(6)
PASSWORD = "p" + secrets.token_hex(10)
PREFIX = "vault.security.banzaicloud.io/"
HOOKS = {"pods": 0, "secrets": 1}  # index of each webhook in the chart's MutatingWebhookConfiguration


def _root_token(sandbox: RunningSandbox) -> str:
    encoded = sandbox.kubectl(
        "get", "secret", "vault-unseal-keys", "-n", "vault", "-o", "jsonpath={.data.vault-root}"
    ).stdout
    return base64.b64decode(encoded).decode()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    from meshbook.sandbox import control

    sandbox = start_sandbox(tmp_path_factory.mktemp("features") / "state")
    try:
        sandbox.kubectl("create", "namespace", "vault-system")
        state = str(sandbox.info.state_dir)
        meshbook(sandbox, "sandbox", "install", "bank-vaults", "--state", state, "--pods-failure-policy", "Ignore")
        for name in ("vault-operator", "vault-secrets-webhook"):
            sandbox.kubectl("rollout", "status", f"deployment/{name}", "-n", "vault-system", WAIT)
        install_vault(sandbox, permissive=False)
        sandbox.kubectl("create", "namespace", "app")
        script = f"VAULT_TOKEN={_root_token(sandbox)} vault kv put {PATH.replace('/data/', '/', 1)} user={USER}"
        sandbox.kubectl(
            "exec", "-n", "vault", "vault-0", "-c", "vault", "--", "sh", "-c", f"{script} password={PASSWORD}"
        )
        yield sandbox
    finally:
        sandbox.api.close()
        control.down(sandbox.info.state_dir)


def _policy(sandbox: RunningSandbox, hook: str, policy: str) -> None:
    patch = [{"op": "replace", "path": f"/webhooks/{HOOKS[hook]}/failurePolicy", "value": policy}]
    sandbox.kubectl(
        "patch", "mutatingwebhookconfiguration", "vault-secrets-webhook", "--type=json", "-p", json.dumps(patch)
    )


def _pod(name: str, container: dict[str, object], annotations: dict[str, str] | None = None) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "app", "annotations": annotations or {}},
            "spec": {"containers": [container]},
        }
    )


def _secret(name: str, data: dict[str, str], type_: str = "Opaque") -> str:
    annotations = {PREFIX + "vault-tls-secret": "vault-tls"}
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": "app", "annotations": annotations},
            "type": type_,
            "stringData": data,
        }
    )


def _secret_value(sandbox: RunningSandbox, name: str, key: str) -> str:
    escaped = key.replace(".", "\\.")
    encoded = sandbox.kubectl("get", "secret", name, "-n", "app", "-o", f"jsonpath={{.data.{escaped}}}").stdout
    return base64.b64decode(encoded).decode()


REFERENCE = [{"name": "PASSWORD", "value": f"vault:{PATH}#password"}]


def test_unknown_image_without_command_is_the_registry_error_under_fail_and_unmutated_under_ignore(
    cluster: RunningSandbox,
) -> None:
    container = {"name": "app", "image": "registry.example.com/team/unknown:1.0", "env": REFERENCE}
    _policy(cluster, "pods", "Fail")
    try:
        refused = cluster.kubectl("create", "-f", "-", input=_pod("unknown-fail", container), check=False)
    finally:
        _policy(cluster, "pods", "Ignore")
    assert refused.returncode == 1
    assert 'failed calling webhook "pods.vault-secrets-webhook.admission.banzaicloud.com"' in refused.stderr
    assert "could not mutate object: cannot fetch image descriptor" in refused.stderr
    assert "lookup registry.example.com" in refused.stderr
    cluster.kubectl("create", "-f", "-", input=_pod("unknown-ignore", container))
    spec = json.loads(cluster.kubectl("get", "pod", "unknown-ignore", "-n", "app", "-o", "json").stdout)["spec"]
    assert "command" not in spec["containers"][0] and not spec.get("initContainers")  # admitted unmutated


def test_secret_with_a_missing_key_is_refused_with_the_webhooks_message(cluster: RunningSandbox) -> None:
    _policy(cluster, "secrets", "Fail")  # the chart's secretsFailurePolicy=Fail; kept for the tests below
    refused = cluster.kubectl("create", "-f", "-", input=_secret("missing", {"k": f"vault:{PATH}#nope"}), check=False)
    assert refused.returncode == 1
    assert f"mutate generic secret failed: key 'nope' not found under path: {PATH}" in refused.stderr
    assert cluster.kubectl("get", "secret", "missing", "-n", "app", check=False).returncode == 1


def test_secret_values_come_from_openbao(cluster: RunningSandbox) -> None:
    auth = base64.b64encode(f"vault:{PATH}#user:vault:{PATH}#password".encode()).decode()
    docker = {"auths": {"registry.example.com": {"username": "x", "password": "y", "auth": auth}}}
    data = {
        "plain": f"vault:{PATH}#password",
        "inline": f"postgres://${{vault:{PATH}#user}}@db:5432",
        "template": f"vault:{PATH}#${{.user}}:${{.password | upper}}",
        "untouched": "no reference",
    }
    cluster.kubectl("apply", "-f", "-", input=_secret("generic", data))
    assert _secret_value(cluster, "generic", "plain") == PASSWORD
    assert _secret_value(cluster, "generic", "inline") == f"postgres://{USER}@db:5432"
    assert _secret_value(cluster, "generic", "template") == f"{USER}:{PASSWORD.upper()}"
    assert _secret_value(cluster, "generic", "untouched") == "no reference"
    pull = _secret("pull", {".dockerconfigjson": json.dumps(docker)}, "kubernetes.io/dockerconfigjson")
    cluster.kubectl("apply", "-f", "-", input=pull)
    entry = json.loads(_secret_value(cluster, "pull", ".dockerconfigjson"))["auths"]["registry.example.com"]
    assert (entry["username"], entry["password"]) == (USER, PASSWORD)
    assert base64.b64decode(entry["auth"]).decode() == f"{USER}:{PASSWORD}"


def test_container_without_command_gets_the_images_entrypoint(cluster: RunningSandbox) -> None:
    cluster.kubectl("create", "-f", "-", input=_pod("nginx", {"name": "app", "image": "nginx:1.27", "env": REFERENCE}))
    args = cluster.kubectl("get", "pod", "nginx", "-n", "app", "-o", "jsonpath={.spec.containers[0].args}").stdout
    command = cluster.kubectl("get", "pod", "nginx", "-n", "app", "-o", "jsonpath={.spec.containers[0].command}")
    assert json.loads(command.stdout) == ["/vault/vault-env"]
    assert json.loads(args) == ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]


def test_security_context_annotations_on_copy_vault_env(cluster: RunningSandbox) -> None:
    annotations = {PREFIX + "run-as-user": "1000", PREFIX + "run-as-group": "3000", PREFIX + "readonly-root-fs": "true"}
    container = {"name": "app", "image": "busybox", "command": ["sh", "-c", "sleep 3600"], "env": REFERENCE}
    cluster.kubectl("create", "-f", "-", input=_pod("secured", container, annotations))
    init = json.loads(cluster.kubectl("get", "pod", "secured", "-n", "app", "-o", "json").stdout)["spec"][
        "initContainers"
    ]
    assert init[0]["name"] == "copy-vault-env"
    assert init[0]["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsUser": 1000,
        "runAsGroup": 3000,
        "capabilities": {"drop": ["ALL"]},
    }


AGENT_CONFIG = f"""
vault {{
  ca_cert = "/vault/tls/ca.crt"
}}
auto_auth {{
  method "kubernetes" {{
    mount_path = "auth/kubernetes"
    config = {{
      role = "default"
    }}
  }}
  sink "file" {{
    config = {{
      path = "/vault/.vault-token"
    }}
  }}
}}
template {{
  destination = "/vault/secrets/db.txt"
  contents = <<EOH
{{{{ with secret "{PATH}" }}}}user={{{{ .Data.data.user }}}} password={{{{ .Data.data.password }}}}{{{{ end }}}}
EOH
}}
"""


def _follow_until(sandbox: RunningSandbox, pod: str, container: str, needle: str) -> str:
    """`kubectl logs -f` until a line holds `needle` (the log stream is the event; no polling)."""
    cache = str(sandbox.info.state_dir / "kubectl-cache")
    env = {"KUBECONFIG": str(sandbox.kubeconfig), "KUBECACHEDIR": cache, "PATH": "/usr/bin:/bin"}
    sandbox.kubectl("wait", "--for=condition=Ready", f"pod/{pod}", "-n", "app", WAIT)
    with subprocess.Popen(
        [KUBECTL, "logs", "-f", "-n", "app", pod, "-c", container, "--request-timeout=180s"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as follow:
        assert follow.stdout is not None
        try:
            for line in follow.stdout:
                if needle in line:
                    return line
        finally:
            follow.kill()
    raise AssertionError(f"{pod}/{container} never logged {needle!r}")


CHECK = (
    'if [ "$T" = "$EXPECTED_T" ]; then t=same; else t=differ; fi; '
    'if [ "postgres://$user@db:5432" = "$EXPECTED_INLINE" ]; then p=same; else p=differ; fi; '
    'echo "template=$t frompath=$p"; sleep 3600'
)


def test_vault_env_resolves_template_keys_and_env_from_path(cluster: RunningSandbox) -> None:
    """vault-env's values checked against the webhook's Secret mutation, inside the pod (none printed)."""
    expected = {
        "template": f"vault:{PATH}#${{.user}}:${{.password | upper}}",
        "inline": f"postgres://${{vault:{PATH}#user}}@db:5432",
    }
    cluster.kubectl("apply", "-f", "-", input=_secret("expected", expected))

    def ref(key: str) -> dict[str, object]:
        return {"secretKeyRef": {"name": "expected", "key": key}}

    env = [
        {"name": "T", "value": f"vault:{PATH}#${{.user}}:${{.password | upper}}"},
        {"name": "EXPECTED_T", "valueFrom": ref("template")},
        {"name": "EXPECTED_INLINE", "valueFrom": ref("inline")},
    ]
    annotations = {PREFIX + "vault-env-from-path": PATH, PREFIX + "vault-tls-secret": "vault-tls"}
    container = {"name": "app", "image": "busybox", "command": ["sh", "-c", CHECK], "env": env}
    cluster.kubectl("create", "-f", "-", input=_pod("templated", container, annotations))
    line = _follow_until(cluster, "templated", "app", "frompath=")
    assert line.strip() == "template=same frompath=same"


def test_vault_agent_renders_its_template_into_the_pod(cluster: RunningSandbox) -> None:
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "agent-config", "namespace": "app"},
        "data": {"config.hcl": AGENT_CONFIG},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(configmap))
    annotations = {PREFIX + "vault-agent-configmap": "agent-config", PREFIX + "vault-tls-secret": "vault-tls"}
    container = {"name": "app", "image": "busybox", "command": ["sh", "-c", "sleep 3600"]}
    cluster.kubectl("create", "-f", "-", input=_pod("agent", container, annotations))
    names = cluster.kubectl("get", "pod", "agent", "-n", "app", "-o", "jsonpath={.spec.containers[*].name}").stdout
    assert names.split() == ["vault-agent", "app"]
    _follow_until(cluster, "agent", "vault-agent", 'rendered "(dynamic)" => "/vault/secrets/db.txt"')
    shown = cluster.kubectl("exec", "-n", "app", "agent", "-c", "app", "--", "cat", "/vault/secrets/db.txt").stdout
    assert shown == f"user={USER} password={PASSWORD}\n"


def test_no_value_in_events_or_the_servers_log(cluster: RunningSandbox) -> None:
    events = cluster.kubectl("get", "events", "-A", "-o", "json").stdout
    server_log = (cluster.info.state_dir / "server.log").read_text(errors="replace")
    agent_log = cluster.kubectl("logs", "-n", "app", "agent", "-c", "vault-agent").stdout
    for text in (events, server_log, agent_log):
        assert PASSWORD not in text and PASSWORD.upper() not in text and USER not in text
