"""A Vault custom resource read into the settings the sandbox's operator builds objects from.

Which object gets which labels, annotations and env follows the upstream operator (FACTS 2, 5):
`annotations` go on every Vault-side object (Service, StatefulSet and its pods, Secret `<name>-tls`);
`vaultLabels`/`vaultAnnotations` on the same objects; `vaultConfigurerLabels`/`...Annotations` on the
configurer Deployment and its pods only. `secretInitsConfig` (and the deprecated `vaultEnvsConfig`,
renamed as upstream renames it) is env of the `vault` container and the `config-templating` init
container; `envsConfig` of the `bank-vaults` sidecar and the configurer; `sidecarEnvsConfig` of the
sidecars (`bank-vaults`, `prometheus-exporter`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshbook.sandbox.vault.server_config import ServerSettings, server_settings

# vaultEnvsConfig names and the secretInitsConfig names upstream rewrites them to.
DEPRECATED_ENV_NAMES: Mapping[str, str] = {
    "VAULT_JSON_LOG": "SECRET_INIT_JSON_LOG",
    "VAULT_ENV_LOG_SERVER": "SECRET_INIT_LOG_SERVER",
    "VAULT_ENV_DAEMON": "SECRET_INIT_DAEMON",
    "VAULT_ENV_DELAY": "SECRET_INIT_DELAY",
    "VAULT_ENV_FROM_PATH": "VAULT_FROM_PATH",
    "VAULT_ENV_PASSTHROUGH": "VAULT_PASSTHROUGH",
}
# Annotations upstream adds to an Ingress when Vault serves TLS, for the common ingress controllers.
INGRESS_TLS_ANNOTATIONS: Mapping[str, str] = {
    "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS",
    "ingress.kubernetes.io/protocol": "https",
    "ingress.kubernetes.io/secure-backends": "true",
}


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def _env(value: Any) -> list[dict[str, Any]]:
    return [dict(e) for e in value if isinstance(e, Mapping) and e.get("name")] if isinstance(value, list) else []


@dataclass(frozen=True)
class VaultCR:
    """The fields of a Vault CR that change the objects the operator creates."""

    name: str
    namespace: str
    spec: Mapping[str, Any]

    @classmethod
    def read(cls, vault: Mapping[str, Any]) -> VaultCR:
        return cls(vault["metadata"]["name"], vault["metadata"]["namespace"], vault.get("spec") or {})

    @property
    def tls_disabled(self) -> bool:
        listener = (self.spec.get("config") or {}).get("listener") or {}
        tcp = listener.get("tcp", {}) if isinstance(listener, Mapping) else {}
        return isinstance(tcp, Mapping) and tcp.get("tls_disable") in (True, "true", 1)

    @property
    def server(self) -> ServerSettings:
        config = self.spec.get("config")
        return server_settings(config if isinstance(config, Mapping) else None)

    def vault_labels(self, base: Mapping[str, str]) -> dict[str, str]:
        return {**base, **_strings(self.spec.get("vaultLabels"))}

    def vault_annotations(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        return {**(base or {}), **_strings(self.spec.get("annotations")), **_strings(self.spec.get("vaultAnnotations"))}

    def configurer_labels(self, base: Mapping[str, str]) -> dict[str, str]:
        return {**base, **_strings(self.spec.get("vaultConfigurerLabels"))}

    def configurer_annotations(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        return {**(base or {}), **_strings(self.spec.get("vaultConfigurerAnnotations"))}

    @property
    def secret_init_env(self) -> list[dict[str, Any]]:
        """`secretInitsConfig`, after the deprecated `vaultEnvsConfig` entries under their new names."""
        deprecated = _env(self.spec.get("vaultEnvsConfig"))
        renamed = [{**e, "name": DEPRECATED_ENV_NAMES.get(e["name"], e["name"])} for e in deprecated]
        return [*_env(self.spec.get("secretInitsConfig")), *renamed]

    @property
    def common_env(self) -> list[dict[str, Any]]:
        return _env(self.spec.get("envsConfig"))

    @property
    def sidecar_env(self) -> list[dict[str, Any]]:
        return _env(self.spec.get("sidecarEnvsConfig"))

    def ingress(self, labels: Mapping[str, str]) -> dict[str, Any] | None:
        """The networking.k8s.io/v1 Ingress upstream creates for `spec.ingress`, or None without one."""
        ingress = self.spec.get("ingress")
        if not isinstance(ingress, Mapping):
            return None
        spec = dict(ingress.get("spec") or {})
        if not spec.get("rules") and not spec.get("defaultBackend"):
            spec["defaultBackend"] = {"service": {"name": self.name, "port": {"number": 8200}}}
        annotations = _strings(ingress.get("annotations"))
        if not self.tls_disabled:
            annotations.update(INGRESS_TLS_ANNOTATIONS)
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": self.name, "labels": dict(labels), "annotations": annotations},
            "spec": spec,
        }
