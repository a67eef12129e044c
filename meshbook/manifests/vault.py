"""Vault's RBAC, the Bank-Vaults `Vault` custom resource and its file-storage volume (FACTS 2 and 5).

The demo secret values below are what the guide's Vault CR ships; they live in exactly one constant so
the evidence redactor can be fed them, and they are never a parameter (parameters are stored in plain
text in executed notebooks).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from meshbook.errors import ParameterError
from meshbook.manifests._objects import Manifest, metadata, obj
from meshbook.manifests.mesh import WEBHOOK_NAME
from meshbook.params import RunbookParams

VAULT_NAME = "vault"
VAULT_SERVICE_ACCOUNT = "vault"
VAULT_RBAC_NAME = "vault-secrets"
AUTH_DELEGATOR_BINDING = "vault-auth-delegator"
FILE_VOLUME = "vault-file"
TLS_SECRET = "vault-tls"
"""Secret the operator creates (server certificate and CA) and copies, CA only, to `caNamespaces`."""
VAULT_PORT = 8200
SECRETS_POLICY = "allow_secrets"

VAULT_IMAGE = "hashicorp/vault:1.21.4"
"""Vault line the vault-operator 1.24.x chart was tested with (its VERSIONS.md: Vault 1.21.x).

The sandbox runs OpenBao 2.7 behind the CR whatever this says; on a live cluster the operator runs it.
"""
BANK_VAULTS_IMAGE = "ghcr.io/bank-vaults/bank-vaults:v1.33.2"
"""Unsealer/configurer CLI; operator 1.24.x needs Bank-Vaults >= 1.33.1."""

DEMO_STARTUP_SECRETS: Mapping[str, str] = MappingProxyType(
    {"AWS_ACCESS_KEY_ID": "secretId", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}
)
"""The guide's demo secret, written to Vault at start-up. Known values: redact them from evidence."""


def vault_addr(params: RunbookParams) -> str:
    """The in-cluster Vault URL the app annotates and the webhook allow-lists (FACTS 4)."""
    return f"https://{VAULT_NAME}.{params.vault.namespace}:{VAULT_PORT}"


def kv_mount(params: RunbookParams) -> tuple[str, str]:
    """Split `vault.secret_path` (KV v2, `<mount>/data/<path>`) into mount and path inside it."""
    mount, sep, rest = params.vault.secret_path.strip("/").partition("/data/")
    if not sep or not mount or not rest:
        raise ParameterError(
            [
                f"vault.secret_path: expected a KV version 2 path <mount>/data/<path> "
                f"such as secret/data/accounts/aws, got {params.vault.secret_path!r}"
            ]
        )
    return mount, rest


def rbac(params: RunbookParams) -> list[Manifest]:
    """Vault's service account, its access to Secrets, and TokenReview rights for Kubernetes auth."""
    ns = params.vault.namespace
    subject = {"kind": "ServiceAccount", "name": VAULT_SERVICE_ACCOUNT, "namespace": ns}
    return [
        obj("v1", "ServiceAccount", metadata(VAULT_SERVICE_ACCOUNT, ns)),
        obj(
            "rbac.authorization.k8s.io/v1",
            "Role",
            metadata(VAULT_RBAC_NAME, ns),
            rules=[{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}],
        ),
        obj(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            metadata(VAULT_RBAC_NAME, ns),
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": VAULT_RBAC_NAME},
            subjects=[dict(subject)],
        ),
        obj(
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            metadata(AUTH_DELEGATOR_BINDING),
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
            subjects=[dict(subject)],
        ),
    ]


def file_volume_claim(params: RunbookParams) -> Manifest:
    """1Gi claim for Vault's file storage; the CR mounts it at /vault/file."""
    return obj(
        "v1",
        "PersistentVolumeClaim",
        metadata(FILE_VOLUME, params.vault.namespace),
        spec={"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    )


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def client_namespaces(params: RunbookParams) -> list[str]:
    """Where Vault's clients run (webhook, app): they get Vault's CA and may log in with Kubernetes auth."""
    return _unique([params.bank_vaults.namespace, params.app.namespace])


def _external_config(params: RunbookParams) -> dict[str, object]:
    """What bank-vaults configures inside Vault: policy, Kubernetes auth role, KV v2, the demo secret."""
    mount, _ = kv_mount(params)
    accounts = _unique([WEBHOOK_NAME, VAULT_SERVICE_ACCOUNT, params.app.service_account])
    rules = f'path "{mount}/*" {{\n  capabilities = ["create", "read", "update", "delete", "list"]\n}}\n'
    return {
        "policies": [{"name": SECRETS_POLICY, "rules": rules}],
        "auth": [
            {
                "type": "kubernetes",
                "roles": [
                    {
                        "name": params.vault.role,
                        "bound_service_account_names": accounts,
                        "bound_service_account_namespaces": client_namespaces(params),
                        "policies": [SECRETS_POLICY],
                        "ttl": "1h",
                    }
                ],
            }
        ],
        "secrets": [{"path": mount, "type": "kv", "description": "General secrets.", "options": {"version": 2}}],
        "startupSecrets": [
            {"type": "kv", "path": params.vault.secret_path.strip("/"), "data": {"data": dict(DEMO_STARTUP_SECRETS)}}
        ],
    }


def vault_custom_resource(params: RunbookParams) -> Manifest:
    """The `Vault` the operator turns into vault-0, the configurer and Secret `vault-tls`.

    `istioEnabled` only renames the API port (`https-api-port`) so Istio detects TLS correctly (FACTS 5).
    """
    ns = params.vault.namespace
    spec = {
        "size": 1,
        "image": VAULT_IMAGE,
        "bankVaultsImage": BANK_VAULTS_IMAGE,
        "serviceAccount": VAULT_SERVICE_ACCOUNT,
        "serviceType": "ClusterIP",
        "istioEnabled": params.vault.istio_enabled,
        "caNamespaces": client_namespaces(params),
        "unsealConfig": {"kubernetes": {"secretNamespace": ns}},
        "volumes": [{"name": FILE_VOLUME, "persistentVolumeClaim": {"claimName": FILE_VOLUME}}],
        "volumeMounts": [{"name": FILE_VOLUME, "mountPath": "/vault/file"}],
        "config": {
            "storage": {"file": {"path": "/vault/file"}},
            "listener": {
                "tcp": {
                    "address": f"0.0.0.0:{VAULT_PORT}",
                    "tls_cert_file": "/vault/tls/server.crt",
                    "tls_key_file": "/vault/tls/server.key",
                }
            },
            "api_addr": vault_addr(params),
            "ui": True,
        },
        "externalConfig": _external_config(params),
    }
    return obj("vault.banzaicloud.com/v1alpha1", "Vault", metadata(VAULT_NAME, ns), spec=spec)


def vault_cr(params: RunbookParams) -> list[Manifest]:
    """The claim first, then the CR, so the StatefulSet's volume exists when the operator creates it."""
    return [file_volume_claim(params), vault_custom_resource(params)]
