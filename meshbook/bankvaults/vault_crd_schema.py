"""openAPIV3Schema of Bank-Vaults' `Vault` (vault.banzaicloud.com/v1alpha1), after the vault-operator
chart's CRD (VaultSpec / VaultStatus of bank-vaults/vault-operator).

Structural, as the chart's controller-gen CRD is: typed scalars (`size` an integer, `istioEnabled` a
boolean), `config` required, free-form objects where upstream preserves unknown fields (`config`, `externalConfig`, pod
specs and Kubernetes types the upstream schema expands in full, which are kept open here).
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_STRING: Schema = {"type": "string"}
_BOOLEAN: Schema = {"type": "boolean"}
_OPEN: Schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_STRING_MAP: Schema = {"type": "object", "additionalProperties": _STRING}
_OPEN_LIST: Schema = {"type": "array", "items": _OPEN}


def _object(properties: dict[str, Schema], **extra: Any) -> Schema:
    return {"type": "object", "properties": properties, **extra}


_SECRET_SHARES = _object(
    {
        "preFlightChecks": _BOOLEAN,
        "storeRootToken": _BOOLEAN,
        "secretShares": {"type": "integer"},
        "secretThreshold": {"type": "integer"},
    }
)
_UNSEAL_CONFIG = _object(
    {
        "options": _SECRET_SHARES,
        "kubernetes": _object({"secretNamespace": _STRING, "secretName": _STRING}),
        "google": _OPEN,
        "alibaba": _OPEN,
        "azure": _OPEN,
        "aws": _OPEN,
        "vault": _OPEN,
        "hsm": _OPEN,
    }
)
_RESOURCES = _object({k: _OPEN for k in ("vault", "bankVaults", "hsmDaemon", "prometheusExporter", "fluentd")})

VAULT_SPEC: Schema = _object(
    {
        "size": {"type": "integer", "format": "int32"},
        "image": _STRING,
        "bankVaultsImage": _STRING,
        "bankVaultsVolumeMounts": _OPEN_LIST,
        "statsdDisabled": _BOOLEAN,
        "statsdImage": _STRING,
        "statsdConfig": _STRING,
        "fluentdEnabled": _BOOLEAN,
        "fluentdImage": _STRING,
        "fluentdConfLocation": _STRING,
        "fluentdConfFile": _STRING,
        "fluentdConfig": _STRING,
        "watchedSecretsLabels": {"type": "array", "items": _STRING_MAP},
        "watchedSecretsAnnotations": {"type": "array", "items": _STRING_MAP},
        "annotations": _STRING_MAP,
        "vaultAnnotations": _STRING_MAP,
        "vaultLabels": _STRING_MAP,
        "vaultPodSpec": _OPEN,
        "vaultContainerSpec": _OPEN,
        "vaultConfigurerAnnotations": _STRING_MAP,
        "vaultConfigurerLabels": _STRING_MAP,
        "vaultConfigurerPodSpec": _OPEN,
        "config": _OPEN,
        "externalConfig": _OPEN,
        "unsealConfig": _UNSEAL_CONFIG,
        "credentialsConfig": _object({"env": _STRING, "path": _STRING, "secretName": _STRING}),
        "envsConfig": _OPEN_LIST,
        "securityContext": _OPEN,
        "serviceType": _STRING,
        "loadBalancerIP": _STRING,
        "serviceRegistrationEnabled": _BOOLEAN,
        "raftLeaderAddress": _STRING,
        "servicePorts": {"type": "object", "additionalProperties": {"type": "integer", "format": "int32"}},
        "affinity": _OPEN,
        "podAntiAffinity": _STRING,
        "nodeAffinity": _OPEN,
        "nodeSelector": _STRING_MAP,
        "tolerations": _OPEN_LIST,
        "serviceAccount": _STRING,
        "volumes": _OPEN_LIST,
        "volumeMounts": _OPEN_LIST,
        "volumeClaimTemplates": _OPEN_LIST,
        "vaultEnvsConfig": _OPEN_LIST,
        "secretInitsConfig": _OPEN_LIST,
        "sidecarEnvsConfig": _OPEN_LIST,
        "resources": _RESOURCES,
        "ingress": _object({"annotations": _STRING_MAP, "spec": _OPEN}),
        "serviceMonitorEnabled": _BOOLEAN,
        "existingTlsSecretName": _STRING,
        "tlsExpiryThreshold": _STRING,
        "tlsAdditionalHosts": {"type": "array", "items": _STRING},
        "caNamespaces": {"type": "array", "items": _STRING},
        "istioEnabled": _BOOLEAN,
        "veleroEnabled": _BOOLEAN,
        "veleroFsfreezeImage": _STRING,
        "vaultContainers": _OPEN_LIST,
        "vaultInitContainers": _OPEN_LIST,
    },
    required=["config"],  # `json:"config"` has no omitempty
)

VAULT_STATUS: Schema = _object(
    {
        "nodes": {"type": "array", "items": _STRING},
        "leader": _STRING,
        "conditions": _OPEN_LIST,
    },
    **{"x-kubernetes-preserve-unknown-fields": True},
)

VAULT_SCHEMA: Schema = _object({"spec": VAULT_SPEC, "status": VAULT_STATUS})
