"""The Bank-Vaults webhook's pieces without a sandbox: the injector syntax, the image table, the
security context, vault-agent injection and Secret mutation over a fake Vault reader."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from typing import Any

import pytest

from meshbook.sandbox.addons.images import RegistryUnreachable, image_config
from meshbook.sandbox.addons.vault_agent import AgentError, parse_config, render
from meshbook.sandbox.addons.vault_injector import InjectionError, inject, inject_from_paths, is_reference
from meshbook.sandbox.addons.vault_webhook import mutate_pod
from meshbook.sandbox.addons.webhook_secrets import (
    MutationError,
    mutate_configmap,
    mutate_secret,
    secret_needs_mutation,
)
from meshbook.sandbox.addons.webhooks import WebhookFailed

PREFIX = "vault.security.banzaicloud.io/"
VALUE = secrets.token_hex(8)
USER = secrets.token_hex(4)
DATA = {"AWS_SECRET_ACCESS_KEY": VALUE, "user": USER}


def read(path: str, version: str = "-1") -> Mapping[str, Any] | None:
    return DATA if path == "secret/data/accounts/aws" else None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_unknown_key_path_and_function_are_the_injectors_errors() -> None:
    with pytest.raises(InjectionError, match=r"^key 'missing' not found under path: secret/data/accounts/aws$"):
        inject({"X": "vault:secret/data/accounts/aws#missing"}, read)
    with pytest.raises(InjectionError, match=r"^path not found: secret/data/nothing$"):
        inject({"X": "vault:secret/data/nothing#k"}, read)
    with pytest.raises(InjectionError, match=r"^secret data key or template not defined$"):
        inject({"X": "vault:secret/data/accounts/aws"}, read)
    with pytest.raises(InjectionError, match='function "sha256sum" not defined'):
        inject({"X": "vault:secret/data/accounts/aws#${.user | sha256sum}"}, read)


def test_plain_inline_and_template_references() -> None:
    values = {
        "PLAIN": "vault:secret/data/accounts/aws#AWS_SECRET_ACCESS_KEY",
        "INLINE": "pre-${vault:secret/data/accounts/aws#user}-post",
        "TEMPLATE": "vault:secret/data/accounts/aws#${.user}:${.AWS_SECRET_ACCESS_KEY | upper}",
        "INLINE_TEMPLATE": "x=${vault:secret/data/accounts/aws#${.user}}",
        "OTHER": "unchanged",
    }
    assert all(is_reference(v) for k, v in values.items() if k != "OTHER")
    assert inject(values, read) == {
        "PLAIN": VALUE,
        "INLINE": f"pre-{USER}-post",
        "TEMPLATE": f"{USER}:{VALUE.upper()}",
        "INLINE_TEMPLATE": f"x={USER}",
        "OTHER": "unchanged",
    }


def test_unknown_image_is_a_registry_error_and_known_images_have_their_entrypoint() -> None:
    with pytest.raises(RegistryUnreachable, match=r'cannot fetch image descriptor: Get "https://index.docker.io/v2/"'):
        image_config("example/unknown:1.0")
    with pytest.raises(RegistryUnreachable, match=r"lookup registry.example.com"):
        image_config("registry.example.com/team/app:2")
    assert image_config("busybox:1.36").cmd == ("sh",)
    assert image_config("docker.io/library/nginx").entrypoint == ("/docker-entrypoint.sh",)
    assert image_config("ghcr.io/bank-vaults/bank-vaults:v1.31.0").entrypoint == ("bank-vaults",)


def _pod(annotations: dict[str, str], container: dict[str, Any]) -> dict[str, Any]:
    meta = {"name": "p", "namespace": "app", "annotations": annotations}
    return {"metadata": meta, "spec": {"containers": [container]}}


def test_pod_without_command_unknown_image_fails_and_known_image_gets_entrypoint() -> None:
    env = [{"name": "S", "value": "vault:secret/data/accounts/aws#user"}]
    with pytest.raises(WebhookFailed, match="could not mutate object: cannot fetch image descriptor"):
        mutate_pod(_pod({}, {"name": "c", "image": "example/unknown", "env": env}), {})
    pod = mutate_pod(_pod({}, {"name": "c", "image": "nginx:1.27", "args": ["-T"], "env": env}), {})
    assert pod["spec"]["containers"][0]["args"] == ["/docker-entrypoint.sh", "-T"]
    pod = mutate_pod(_pod({}, {"name": "c", "image": "nginx:1.27", "env": env}), {})
    assert pod["spec"]["containers"][0]["args"] == ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]


def test_security_context_annotations_on_copy_vault_env() -> None:
    env = [{"name": "S", "value": "vault:secret/data/accounts/aws#user"}]
    plain = mutate_pod(_pod({}, {"name": "c", "image": "busybox", "command": ["sh"], "env": env}), {})
    assert plain["spec"]["initContainers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": False,
        "capabilities": {"drop": ["ALL"]},
    }
    annotations = {PREFIX + "run-as-user": "1000", PREFIX + "run-as-group": "2000", PREFIX + "readonly-root-fs": "true"}
    pod = mutate_pod(_pod(annotations, {"name": "c", "image": "busybox", "command": ["sh"], "env": env}), {})
    context = pod["spec"]["initContainers"][0]["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"], context["readOnlyRootFilesystem"]) == (1000, 2000, True)


def test_vault_agent_injection() -> None:
    annotations = {PREFIX + "vault-agent-configmap": "agent-config", PREFIX + "vault-tls-secret": "vault-tls"}
    pod = mutate_pod(_pod(annotations, {"name": "app", "image": "busybox", "command": ["sh"]}), {})
    agent, app = pod["spec"]["containers"]
    assert agent["name"] == "vault-agent" and agent["args"] == ["agent", "-config", "/vault/config/config.hcl"]
    assert {"name": "agent-secrets", "mountPath": "/vault/secrets"} in app["volumeMounts"]
    assert {v["name"] for v in pod["spec"]["volumes"]} == {"agent-secrets", "agent-configmap", "vault-tls"}
    assert "initContainers" not in pod["spec"]  # no vault: env, no vault-env
    once = mutate_pod(_pod(annotations | {PREFIX + "vault-agent-once": "true"}, {"name": "a", "image": "x"}), {})
    assert once["spec"]["containers"][0]["args"][-1] == "-exit-after-auth"


AGENT_CONFIG = """
vault {
  ca_cert = "/vault/tls/ca.crt"
}
auto_auth {
  method "kubernetes" {
    mount_path = "auth/kubernetes"
    config = {
      role = "default"
    }
  }
}
template {
  destination = "/vault/secrets/config.txt"
  contents = <<EOH
{{- with secret "secret/data/accounts/aws" }}
key={{ .Data.data.AWS_SECRET_ACCESS_KEY }}
{{- end }}
EOH
}
"""


def test_agent_config_and_template() -> None:
    config = parse_config(AGENT_CONFIG, {"VAULT_ADDR": "https://vault.vault:8200"})
    assert (config.address, config.mount_path, config.role) == ("https://vault.vault:8200", "kubernetes", "default")
    (template,) = config.templates
    assert template.destination == "/vault/secrets/config.txt"
    rendered = render(template.contents, lambda path: {"data": read(path)})
    assert rendered == f"\nkey={VALUE}\n"  # text/template trims only on the marked side
    with pytest.raises(AgentError, match="does not know the action"):
        render('{{ range secrets "secret/" }}{{ end }}', lambda path: None)


def test_secret_mutation_plain_inline_dockerconfig() -> None:
    auth = _b64("vault:secret/data/accounts/aws#user:vault:secret/data/accounts/aws#AWS_SECRET_ACCESS_KEY")
    docker = json.dumps({"auths": {"registry.example.com": {"username": "u", "password": "p", "auth": auth}}})
    secret = {
        "metadata": {"name": "s"},
        "data": {
            "plain": _b64("vault:secret/data/accounts/aws#AWS_SECRET_ACCESS_KEY"),
            "inline": _b64("user=${vault:secret/data/accounts/aws#user}"),
            ".dockerconfigjson": _b64(docker),
        },
    }
    assert secret_needs_mutation(secret)
    assert not secret_needs_mutation({"data": {"k": _b64("nothing")}})
    data = {k: base64.b64decode(v).decode() for k, v in mutate_secret(secret, read)["data"].items()}
    assert data["plain"] == VALUE and data["inline"] == f"user={USER}"
    entry = json.loads(data[".dockerconfigjson"])["auths"]["registry.example.com"]
    assert (entry["username"], entry["password"]) == (USER, VALUE)
    assert base64.b64decode(entry["auth"]).decode() == f"{USER}:{VALUE}"
    missing = {"metadata": {"name": "m"}, "data": {"k": _b64("vault:secret/data/accounts/aws#nope")}}
    with pytest.raises(MutationError, match=r"^mutate generic secret failed: key 'nope' not found under path"):
        mutate_secret(missing, read)


def test_configmap_mutation_and_env_from_path() -> None:
    with pytest.raises(InjectionError, match=r"^path not found: secret/data/nothing$"):
        inject_from_paths("secret/data/nothing", read)
    assert inject_from_paths("secret/data/accounts/aws", read) == DATA
    configmap = {
        "metadata": {"name": "c"},
        "data": {"url": "https://${vault:secret/data/accounts/aws#user}@host", "plain": "text"},
        "binaryData": {"blob": _b64("vault:secret/data/accounts/aws#encoded")},
    }
    binary = secrets.token_bytes(12)

    def reader(path: str, version: str = "-1") -> Mapping[str, Any] | None:
        return {**DATA, "encoded": base64.b64encode(binary).decode()} if path == "secret/data/accounts/aws" else None

    mutated = mutate_configmap(configmap, reader)
    assert mutated["data"] == {"url": f"https://{USER}@host", "plain": "text"}
    assert base64.b64decode(mutated["binaryData"]["blob"]) == binary


def test_vault_role_is_a_template_over_the_object() -> None:
    env = [{"name": "S", "value": "vault:secret/data/accounts/aws#user"}]
    container = {"name": "c", "image": "busybox", "command": ["sh"], "env": env}
    with pytest.raises(WebhookFailed, match=r'error templating vault_role: .*map has no entry for key \\"nope\\"'):
        mutate_pod(_pod({PREFIX + "vault-role": "{{.nope}}"}, dict(container)), {})
    with pytest.raises(WebhookFailed, match="error parsing vault_role"):
        mutate_pod(_pod({PREFIX + "vault-role": "{{ printf .name }}"}, dict(container)), {})
    pod = mutate_pod(_pod({PREFIX + "vault-role": "{{.namespace}}-{{ .name }}"}, dict(container)), {})
    role = next(e["value"] for e in pod["spec"]["containers"][0]["env"] if e["name"] == "VAULT_ROLE")
    assert role == "app-p"
    pod = mutate_pod(_pod({}, dict(container)), {"VAULT_ROLE": "from-env"})
    assert {"name": "VAULT_ROLE", "value": "from-env"} in pod["spec"]["containers"][0]["env"]
