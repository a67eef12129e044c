"""Parts the Bank-Vaults webhook (v1.23) adds to a pod besides the vault-env rewrite.

The security context of the containers it adds (`copy-vault-env`, `vault-agent`): capabilities
dropped, privilege escalation and a read-only root file system per chart env, and the run-as
annotations (`run-as-user`, `run-as-group`, `run-as-non-root`, `readonly-root-fs`); and vault-agent
injection from a ConfigMap (`vault-agent-configmap`, `vault-agent-once`, `vault-configfile-path`): a
`vault-agent` container first in the pod, rendering into an in-memory `agent-secrets` volume that every
container mounts. A setting is the object's annotation, else the webhook's env, else the chart default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PREFIX = "vault.security.banzaicloud.io/"
AGENT_CONFIG = "/vault/config/config.hcl"

# annotation (after the prefix) -> (the webhook's env variable, its default): settings as data
SETTINGS: dict[str, tuple[str, str]] = {
    "run-as-user": ("RUN_AS_USER", "0"),
    "run-as-group": ("RUN_AS_GROUP", "0"),
    "run-as-non-root": ("RUN_AS_NON_ROOT", "false"),
    "readonly-root-fs": ("READONLY_ROOT_FS", "false"),
    "psp-allow-privilege-escalation": ("PSP_ALLOW_PRIVILEGE_ESCALATION", "false"),
    "vault-image": ("VAULT_IMAGE", "hashicorp/vault:latest"),
    "vault-configfile-path": ("VAULT_CONFIGFILE_PATH", "/vault/secrets"),
    "vault-agent-once": ("VAULT_AGENT_ONCE", "false"),
    "vault-agent-configmap": ("VAULT_AGENT_CONFIGMAP", ""),
}
AGENT_CAPABILITIES = ["CHOWN", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "IPC_LOCK", "SYS_PTRACE"]


def setting(name: str, annotations: Mapping[str, str], defaults: Mapping[str, str]) -> str:
    """An annotation's value, else the webhook's env variable, else the chart default."""
    if PREFIX + name in annotations:
        return str(annotations[PREFIX + name])
    env, default = SETTINGS[name]
    return defaults.get(env, default)


def _flag(text: str) -> bool:
    return text.strip().lower() in ("1", "t", "true")


def _int(text: str) -> int:
    try:
        return int(text.strip(), 0)
    except ValueError:
        return 0  # Go's strconv error is ignored upstream: the setting stays unset


def base_security_context(
    pod: Mapping[str, Any], annotations: Mapping[str, str], defaults: Mapping[str, str]
) -> dict[str, Any]:
    """getBaseSecurityContext: the security context of every container the webhook adds."""
    context: dict[str, Any] = {
        "allowPrivilegeEscalation": _flag(setting("psp-allow-privilege-escalation", annotations, defaults)),
        "readOnlyRootFilesystem": _flag(setting("readonly-root-fs", annotations, defaults)),
        "capabilities": {"drop": ["ALL"]},
    }
    pod_context = (pod.get("spec") or {}).get("securityContext") or {}
    if pod_context.get("runAsUser") is not None:
        context["runAsUser"] = pod_context["runAsUser"]
    if _flag(setting("run-as-non-root", annotations, defaults)):
        context["runAsNonRoot"] = True
    for name, field in (("run-as-user", "runAsUser"), ("run-as-group", "runAsGroup")):
        value = _int(setting(name, annotations, defaults))
        if value > 0:
            context[field] = value
    return context


def add_vault_agent(
    pod: dict[str, Any],
    annotations: Mapping[str, str],
    defaults: Mapping[str, str],
    env: list[dict[str, str]],
    mounts: list[dict[str, Any]],
) -> None:
    """The `vault-agent` container, its volumes and the secrets mount, for `vault-agent-configmap`."""
    spec = pod.setdefault("spec", {})
    configmap = setting("vault-agent-configmap", annotations, defaults)
    secrets_path = setting("vault-configfile-path", annotations, defaults)
    once = _flag(setting("vault-agent-once", annotations, defaults))
    for container in spec.get("containers") or []:
        container["volumeMounts"] = [
            *(container.get("volumeMounts") or []),
            {"name": "agent-secrets", "mountPath": secrets_path},
        ]
    security = base_security_context(pod, annotations, defaults)
    security["capabilities"] = {"add": list(AGENT_CAPABILITIES), "drop": ["ALL"]}
    agent: dict[str, Any] = {
        "name": "vault-agent",
        "image": setting("vault-image", annotations, defaults),
        "args": ["agent", "-config", AGENT_CONFIG, *(["-exit-after-auth"] if once else [])],
        "securityContext": security,
        "env": [dict(e) for e in env],
        "volumeMounts": [
            *mounts,
            {"name": "agent-secrets", "mountPath": secrets_path},
            {"name": "agent-configmap", "mountPath": AGENT_CONFIG, "readOnly": True, "subPath": "config.hcl"},
        ],
    }
    spec["shareProcessNamespace"] = True
    spec["containers"] = [agent, *(spec.get("containers") or [])]
    spec["volumes"] = [
        *(spec.get("volumes") or []),
        {"name": "agent-secrets", "emptyDir": {"medium": "Memory"}},
        {
            "name": "agent-configmap",
            "configMap": {
                "name": configmap,
                "defaultMode": 420,
                "items": [{"key": "config.hcl", "path": "config.hcl"}],
            },
        },
    ]
