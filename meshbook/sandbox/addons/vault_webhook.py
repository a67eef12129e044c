"""The Bank-Vaults `vault-secrets-webhook` pod mutation (FACTS 4, webhook v1.23).

A container whose env holds a `vault:` reference is rewritten to start `/vault/vault-env` with its
original command as arguments; `copy-vault-env` is prepended to the init containers to provide the
binary; the Vault CA comes from the pod's own namespace (`vault-tls-secret` annotation). The webhook's
defaults (VAULT_ADDR, the address allowlist) are read from the webhook Deployment's env, as the real
webhook reads its own environment, and its release from the Deployment's image tag: what differs
between releases is the data of `RELEASES`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from meshbook.bankvaults.webhook_releases import RELEASES, WebhookRelease, release_of
from meshbook.sandbox.addons.images import RegistryUnreachable, image_config
from meshbook.sandbox.addons.vault_addr import object_addr_problem
from meshbook.sandbox.addons.vault_injector import is_reference
from meshbook.sandbox.addons.webhook_pod_parts import add_vault_agent, base_security_context, setting
from meshbook.sandbox.addons.webhooks import WebhookFailed
from meshbook.sandbox.apiserver.admission import AdmissionRequest, default_container
from meshbook.sandbox.apiserver.verbs import ApiCore
from meshbook.sandbox.storage.store import Object

PREFIX = "vault.security.banzaicloud.io/"
VAULT_ENV_IMAGE = "ghcr.io/bank-vaults/vault-env:v1.23.1"
SKIP_LABEL = "security.banzaicloud.io/mutate"


_ROLE_FIELD = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")


def template_role(role: str, obj: Mapping[str, Any], namespace: str, annotations: Mapping[str, str]) -> str:
    """The role as a Go template over the object (`{{.namespace}}`, `{{.name}}`, `{{.serviceaccount}}`,
    `{{.path}}`, `{{.authmethod}}`; missingkey=error), as the webhook renders it for every object."""
    fields = {
        "authmethod": annotations.get(PREFIX + "vault-auth-method", "jwt"),
        "name": str((obj.get("metadata") or {}).get("name", "")),
        "namespace": namespace,
        "path": annotations.get(PREFIX + "vault-path", "kubernetes"),
        "serviceaccount": annotations.get(PREFIX + "vault-serviceaccount", ""),
    }

    def field(match: re.Match[str]) -> str:
        if match[1] not in fields:
            column = match.start() + 3
            message = f'template: vaultRole:1:{column}: executing "vaultRole" at <.{match[1]}>: '
            raise WebhookFailed(
                admission_review_error(
                    f"could not mutate object: error templating vault_role: {message}map has "
                    f'no entry for key "{match[1]}"'
                )
            )
        return fields[match[1]]

    rendered = _ROLE_FIELD.sub(field, role)
    if "{{" in rendered:
        raise WebhookFailed(
            admission_review_error(
                "could not mutate object: error parsing vault_role: the sandbox renders only {{.FIELD}} in a role "
                f"(fields: {', '.join(sorted(fields))})"
            )
        )
    return rendered


def references_vault(container: Mapping[str, Any]) -> bool:
    return any(is_reference(str(env.get("value") or "")) for env in container.get("env") or [])


def _vault_env_args(container: Mapping[str, Any]) -> list[str]:
    """What vault-env must run: the command and args, or, with no command, the image's ENTRYPOINT
    (and CMD when there are no args) from its registry, as the webhook looks them up."""
    command, args = list(container.get("command") or []), list(container.get("args") or [])
    if command:
        return command + args
    try:
        config = image_config(str(container.get("image", "")))
    except RegistryUnreachable as exc:
        raise WebhookFailed(admission_review_error(f"could not mutate object: {exc}")) from None
    return [*config.entrypoint, *(() if args else config.cmd), *args]


def webhook_settings(core: ApiCore, namespace: str, service: str) -> tuple[dict[str, str], str]:
    """The env of the webhook's Deployment (its defaults: VAULT_ADDR, VAULT_ADDR_ALLOWLIST, ...) and
    its image (which release runs)."""
    rt = core.registry.lookup("apps", "v1", "deployments")
    assert rt is not None
    for deploy in core.store.list(rt, namespace):
        labels = deploy.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}
        if labels.get("app.kubernetes.io/name") == service:
            env: dict[str, str] = {}
            containers = deploy["spec"]["template"]["spec"].get("containers", [])
            for container in containers:
                env.update({e["name"]: str(e.get("value", "")) for e in container.get("env") or [] if "value" in e})
            return env, str(containers[0].get("image", "")) if containers else ""
    return {}, ""


class VaultSecretsWebhookBackend:
    """The `vault-secrets-webhook` Service's `/pods` webhook."""

    def __init__(self, core: ApiCore) -> None:
        self.core = core

    def __call__(self, hook: Mapping[str, Any], request: AdmissionRequest, obj: Object) -> Object:
        if request.rt.kind != "Pod":
            return obj
        service = (hook.get("clientConfig") or {}).get("service") or {}
        defaults, image = webhook_settings(self.core, service.get("namespace", ""), service.get("name", ""))
        return mutate_pod(obj, defaults, release_of(image))


def refused_address(address: str, defaults: Mapping[str, str]) -> WebhookFailed | None:
    """The webhook's error for an annotation's address its allowlist refuses (kubewebhook answers 500)."""
    allowlist = [a.strip() for a in defaults.get("VAULT_ADDR_ALLOWLIST", "").split(",") if a.strip()]
    if defaults.get("VAULT_ADDR"):
        allowlist.append(defaults["VAULT_ADDR"])  # the operator's own default is trusted
    allow_private = defaults.get("VAULT_ALLOW_PRIVATE_ADDR", "").lower() in ("true", "1")
    problem = object_addr_problem(address, allowlist, allow_private)
    if problem is None:
        return None
    message = f"could not mutate object: rejected Vault address from object annotation: {problem}"
    return WebhookFailed(admission_review_error(message))


def admission_review_error(message: str) -> str:
    """The body kubewebhook writes with its HTTP 500 when the mutator fails (Go's json.Marshal)."""
    status = f'{{"metadata":{{}},"status":"Failure","message":{_go_json(message)}}}'
    response = f'{{"uid":"{uuid.uuid4()}","allowed":false,"status":{status}}}'
    return f'{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","response":{response}}}'


def _go_json(text: str) -> str:
    """A JSON string as Go's encoding/json writes it (<, > and & escaped; other text kept)."""
    quoted = json.dumps(text, ensure_ascii=False)
    return quoted.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def mutate_pod(pod: Object, defaults: Mapping[str, str], release: WebhookRelease = RELEASES[0][1]) -> Object:
    meta = pod.setdefault("metadata", {})
    annotations: dict[str, str] = meta.get("annotations") or {}
    if annotations.get(PREFIX + "mutate") == "skip" or (meta.get("labels") or {}).get(SKIP_LABEL) == "skip":
        return pod
    spec = pod.setdefault("spec", {})
    inits = list(spec.get("initContainers") or [])
    containers = list(spec.get("containers") or [])
    from_path = annotations.get(PREFIX + "vault-env-from-path", "")
    targets = [c for c in inits + containers if from_path or references_vault(c)]
    agent_configmap = setting("vault-agent-configmap", annotations, defaults)
    if not targets and not agent_configmap:
        return pod
    address = annotations.get(PREFIX + "vault-addr") or defaults.get("VAULT_ADDR", "https://vault:8200")
    if release.checks_pod_vault_addr and PREFIX + "vault-addr" in annotations:
        refused = refused_address(annotations[PREFIX + "vault-addr"], defaults)
        if refused is not None:
            raise refused
    tls_secret = annotations.get(PREFIX + "vault-tls-secret") or defaults.get("VAULT_TLS_SECRET", "")
    role = annotations.get(PREFIX + "vault-role") or defaults.get("VAULT_ROLE") or spec.get("serviceAccountName")
    role = template_role(role or "default", pod, str(meta.get("namespace", "")), annotations)
    env = [
        {"name": "VAULT_ADDR", "value": address},
        {"name": "VAULT_SKIP_VERIFY", "value": annotations.get(PREFIX + "vault-skip-verify", "false")},
        {"name": "VAULT_AUTH_METHOD", "value": annotations.get(PREFIX + "vault-auth-method", "jwt")},
        {"name": "VAULT_PATH", "value": annotations.get(PREFIX + "vault-path", "kubernetes")},
        {"name": "VAULT_ROLE", "value": role},
        {"name": "VAULT_IGNORE_MISSING_SECRETS", "value": "false"},
        {"name": "VAULT_ENV_PASSTHROUGH", "value": ""},
        {"name": "VAULT_JSON_LOG", "value": "false"},
        {"name": "VAULT_CLIENT_TIMEOUT", "value": annotations.get(PREFIX + "vault-client-timeout", "10s")},
        {"name": "VAULT_LOG_LEVEL", "value": "info"},
    ]
    if tls_secret:
        env.append({"name": "VAULT_CACERT", "value": "/vault/tls/ca.crt"})
    if from_path:
        env.append({"name": "VAULT_ENV_FROM_PATH", "value": from_path})
    if annotations.get(PREFIX + "vault-env-daemon") == "true":
        env.append({"name": "VAULT_ENV_DAEMON", "value": "true"})
    tls_mounts: list[dict[str, Any]] = [{"name": "vault-tls", "mountPath": "/vault/tls"}] if tls_secret else []
    commands = [_vault_env_args(container) for container in targets]  # registry errors before any change
    for container, original in zip(targets, commands, strict=True):
        container["command"] = ["/vault/vault-env"]
        container["args"] = original
        names = {e["name"] for e in container.get("env") or []}
        container["env"] = [*(container.get("env") or []), *[e for e in env if e["name"] not in names]]
        container["volumeMounts"] = [
            *(container.get("volumeMounts") or []),
            {"name": "vault-env", "mountPath": "/vault/"},
            *tls_mounts,
        ]
    if agent_configmap:
        add_vault_agent(pod, annotations, defaults, env, tls_mounts)
    volumes = list(spec.get("volumes") or [])
    if targets:
        copy_env: dict[str, Any] = {
            "name": "copy-vault-env",
            "image": VAULT_ENV_IMAGE,
            "command": ["sh", "-c", "cp /usr/local/bin/vault-env /vault/"],
            "volumeMounts": [{"name": "vault-env", "mountPath": "/vault/"}],
            "securityContext": base_security_context(pod, annotations, defaults),
        }
        default_container(copy_env)
        spec["initContainers"] = [copy_env, *(spec.get("initContainers") or [])]
        volumes.append({"name": "vault-env", "emptyDir": {"medium": "Memory"}})
    if tls_secret:
        volumes.append(
            {
                "name": "vault-tls",
                "projected": {
                    "sources": [{"secret": {"name": tls_secret, "items": [{"key": "ca.crt", "path": "ca.crt"}]}}],
                    "defaultMode": 420,
                },
            }
        )
    spec["volumes"] = volumes
    return pod
