"""The discovered objects read as Istio and Bank-Vaults read them: mesh, webhooks, containers that ask for secrets.

Pure helpers over a `Discovery` that the rules (`findings.py`) and the notebook's posture table share:
Istio's version from istiod's image, the Bank-Vaults pods webhooks with the defaults their Deployment's
env gives them (VAULT_ADDR, VAULT_ADDR_ALLOWLIST), and the webhook's own test of a container (FACTS 4).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from meshbook.audit.discover import Discovery, Obj
from meshbook.mesh.connectivity import Mesh
from meshbook.podstatus import is_ready

ROOT_NAMESPACE = "istio-system"
ANNOTATION = "vault.security.banzaicloud.io/"
VAULT_ENV = "/vault/vault-env"
COPY_VAULT_ENV = "copy-vault-env"
DEFAULT_VAULT_ADDR = "https://vault:8200"  # the webhook's own default
WEBHOOK_NAME = "vault-secrets-webhook"


def _istio_version(found: Discovery) -> tuple[int, int]:
    """istiod's minor version from its image tag (current Istio when unknown)."""
    for deploy in found.deployments:
        if deploy["metadata"].get("namespace") == ROOT_NAMESPACE and deploy["metadata"]["name"] == "istiod":
            for container in deploy["spec"]["template"]["spec"].get("containers") or []:
                parts = str(container.get("image", "")).rsplit(":", 1)[-1].split(".")
                if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
                    return int(parts[0]), int(parts[1])
    return Mesh().istio_version


def mesh_of(found: Discovery) -> Mesh:
    return Mesh(found.peer_authentications, ROOT_NAMESPACE, _istio_version(found))


def name_of(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name"))


def asks_for_secret(container: Mapping[str, Any]) -> bool:
    """The webhook's test: an env value that is a `vault:` reference (FACTS 4)."""
    return any(
        str(e.get("value") or "").startswith("vault:") or "${vault:" in str(e.get("value") or "")
        for e in container.get("env") or []
    )


def env_of(container: Mapping[str, Any]) -> dict[str, str]:
    return {str(e["name"]): str(e.get("value") or "") for e in container.get("env") or [] if "name" in e}


def mutated(pod: Mapping[str, Any], container: Mapping[str, Any]) -> bool:
    inits = [c.get("name") for c in pod["spec"].get("initContainers") or []]
    return COPY_VAULT_ENV in inits and (container.get("command") or [""])[0] == VAULT_ENV


def secret_containers(pod: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], bool]]:
    spec = pod.get("spec") or {}
    for container in spec.get("initContainers") or []:
        if asks_for_secret(container):
            yield container, True
    for container in spec.get("containers") or []:
        if asks_for_secret(container):
            yield container, False


def last_error(pod: Mapping[str, Any], name: str) -> str:
    status = pod.get("status") or {}
    for entry in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        terminated = ((entry.get("lastState") or {}).get("terminated") or {}) if entry.get("name") == name else {}
        if terminated.get("exitCode"):
            return f"last run exited {terminated['exitCode']} ({terminated.get('reason') or 'Error'})"
    return ""


@dataclass(frozen=True)
class BankVaultsWebhook:
    """A pods webhook of Bank-Vaults and the Deployment behind its Service (whose env holds its defaults)."""

    configuration: str
    name: str
    failure_policy: str
    service: Obj | None
    namespace: str
    env: Mapping[str, str]
    namespace_selector: Mapping[str, Any]
    object_selector: Mapping[str, Any]
    image: str = ""  # the webhook container's image: which release runs (`bankvaults.webhook_releases`)

    @property
    def own_namespace_exempted(self) -> bool:
        """The chart's `ignoreReleaseNamespace`: the webhook's namespace is excluded by name."""
        return any(
            e.get("key") == "kubernetes.io/metadata.name"
            and e.get("operator") == "NotIn"
            and self.namespace in (e.get("values") or [])
            for e in self.namespace_selector.get("matchExpressions") or []
        )


def bank_vaults_webhooks(found: Discovery) -> list[BankVaultsWebhook]:
    hooks = []
    for config in found.webhook_configurations:
        for hook in config.get("webhooks") or []:
            service_ref = (hook.get("clientConfig") or {}).get("service") or {}
            resources = {r for rule in hook.get("rules") or [] for r in rule.get("resources") or []}
            bank_vaults = WEBHOOK_NAME in str(service_ref.get("name", "")) or "banzaicloud" in str(hook.get("name"))
            if not bank_vaults or not resources & {"pods", "*"}:
                continue
            namespace = str(service_ref.get("namespace", ""))
            service = found.service(namespace, str(service_ref.get("name", "")))
            selector = ((service or {}).get("spec") or {}).get("selector") or {}
            env: dict[str, str] = {}
            image = ""
            for deploy in found.deployments:
                labels = deploy["spec"]["template"]["metadata"].get("labels") or {}
                if deploy["metadata"].get("namespace") == namespace and selector and selector.items() <= labels.items():
                    for container in deploy["spec"]["template"]["spec"].get("containers") or []:
                        env.update(env_of(container))
                        if WEBHOOK_NAME in str(container.get("image", "")) or not image:
                            image = str(container.get("image", ""))
            policy = str(hook.get("failurePolicy") or "Fail")
            hooks.append(
                BankVaultsWebhook(
                    name_of(config),
                    str(hook.get("name")),
                    policy,
                    service,
                    namespace,
                    env,
                    hook.get("namespaceSelector") or {},
                    hook.get("objectSelector") or {},
                    image,
                )
            )
    return hooks


def ready_behind(found: Discovery, service: Mapping[str, Any]) -> list[Obj]:
    selector = (service.get("spec") or {}).get("selector") or {}
    return [p for p in found.pods_of(str(service["metadata"].get("namespace")), selector) if is_ready(p)]
