"""The objects the vault-operator and vault-secrets-webhook Helm charts create, for the sandbox.

On a live cluster Helm installs the OCI charts; the sandbox gets the same kinds of objects (CRD,
operator and webhook Deployments and Services, the webhook's MutatingWebhookConfiguration with the
chosen failure policy and `ignoreReleaseNamespace`), and its behaviour hangs off them.
"""

from __future__ import annotations

from typing import Any

from meshbook.params import BankVaultsParams

Object = dict[str, Any]

OPERATOR = "vault-operator"
WEBHOOK = "vault-secrets-webhook"
ALL_VERBS = ["*"]
WATCHED = ["get", "list", "watch"]
# The operator chart's ClusterRole (templates/role.yaml): what the operator may do, and all it may do.
# The sandbox's operator acts as its service account, so a narrower binding fails as on a cluster.
OPERATOR_RULES: list[Object] = [
    {"apiGroups": ["vault.banzaicloud.com"], "resources": ["*"], "verbs": ALL_VERBS},
    {"apiGroups": [""], "resources": ["events", "pods", "services", "configmaps", "secrets"], "verbs": ALL_VERBS},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": WATCHED},
    {"apiGroups": ["apps", "extensions"], "resources": ["replicasets"], "verbs": ["get"]},
    {
        "apiGroups": ["apps", "extensions"],
        "resources": ["deployments", "deployments/finalizers", "statefulsets"],
        "verbs": ALL_VERBS,
    },
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["get"]},
    {
        "apiGroups": ["extensions", "networking.k8s.io"],
        "resources": ["ingresses"],
        "verbs": ["list", "get", "create", "update", "watch"],
    },
    {
        "apiGroups": ["monitoring.coreos.com"],
        "resources": ["servicemonitors"],
        "verbs": ["update", "list", "get", "create", "watch"],
    },
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ALL_VERBS},
]
# The webhook's own calls are not simulated through the API; it keeps a broad role.
WEBHOOK_RULES: list[Object] = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ALL_VERBS}]


def vault_crd() -> Object:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "vaults.vault.banzaicloud.com"},
        "spec": {
            "group": "vault.banzaicloud.com",
            "scope": "Namespaced",
            "names": {"plural": "vaults", "singular": "vault", "kind": "Vault", "listKind": "VaultList"},
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }


def _workload(
    name: str, namespace: str, image: str, replicas: int, port: int, env: list[Object], rules: list[Object]
) -> list[Object]:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name}
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels},
            "rules": [dict(rule) for rule in rules],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": name,
                        "containers": [
                            {
                                "name": name,
                                "image": image,
                                "ports": [{"name": "https" if port == 8443 else "http", "containerPort": port}],
                                "env": env,
                            }
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "selector": labels,
                "ports": [
                    {
                        "name": "https" if port == 8443 else "http",
                        "port": 443 if port == 8443 else 80,
                        "targetPort": port,
                    }
                ],
            },
        },
    ]


def _webhook(
    name: str, path: str, resources: list[str], params: BankVaultsParams, policy: str, operations: list[str]
) -> Object:
    return {
        "name": f"{name}.{WEBHOOK}.admission.banzaicloud.com",
        "clientConfig": {"service": {"name": WEBHOOK, "namespace": params.namespace, "path": path, "port": 443}},
        "rules": [{"operations": operations, "apiGroups": ["*"], "apiVersions": ["*"], "resources": resources}],
        "failurePolicy": policy,
        "sideEffects": "NoneOnDryRun",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 10,
        # ignoreReleaseNamespace: the webhook never mutates its own namespace
        "namespaceSelector": {
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [params.namespace]}
            ]
        },
        "objectSelector": {
            "matchExpressions": [{"key": "security.banzaicloud.io/mutate", "operator": "NotIn", "values": ["skip"]}]
        },
    }


def bank_vaults_objects(params: BankVaultsParams, vault_addr: str) -> list[Object]:
    """Operator and webhook as the charts install them, `env.VAULT_ADDR` set to `vault_addr`."""
    ns = params.namespace
    operator = _workload(
        OPERATOR,
        ns,
        f"ghcr.io/bank-vaults/vault-operator:v{params.operator_chart_version}",
        1,
        8080,
        [],
        OPERATOR_RULES,
    )
    webhook = _workload(
        WEBHOOK,
        ns,
        f"ghcr.io/bank-vaults/vault-secrets-webhook:v{params.webhook_chart_version}",
        params.webhook_replicas,
        8443,
        [
            {"name": "VAULT_ADDR", "value": vault_addr},
            {"name": "VAULT_ENV_IMAGE", "value": f"ghcr.io/bank-vaults/vault-env:v{params.webhook_chart_version}"},
            {"name": "TLS_CERT_FILE", "value": "/var/serving-cert/tls.crt"},
            {"name": "TLS_PRIVATE_KEY_FILE", "value": "/var/serving-cert/tls.key"},
        ],
        WEBHOOK_RULES,
    )
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK, "labels": {"app.kubernetes.io/name": WEBHOOK}},
        "webhooks": [
            _webhook("pods", "/pods", ["pods"], params, str(params.pods_failure_policy), ["CREATE"]),
            _webhook("secrets", "/secrets", ["secrets"], params, "Ignore", ["CREATE", "UPDATE"]),
            _webhook("configmaps", "/configmaps", ["configmaps"], params, "Ignore", ["CREATE", "UPDATE"]),
        ],
    }
    return [vault_crd(), *operator, *webhook, config]
