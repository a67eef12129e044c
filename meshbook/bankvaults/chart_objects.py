"""The objects the vault-operator and vault-secrets-webhook Helm charts create, for the sandbox.

On a live cluster Helm installs the OCI charts; the sandbox gets the same kinds of objects (CRD,
operator and webhook Deployments and Services, the webhook's MutatingWebhookConfiguration rendered from
the chart's values as its templates do, `chart_values`), and its behaviour hangs off them.
"""

from __future__ import annotations

import copy
from typing import Any

from meshbook.bankvaults.chart_values import ChartValues, params_sets, webhook_values
from meshbook.bankvaults.vault_crd_schema import VAULT_SCHEMA
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
                    "schema": {"openAPIV3Schema": copy.deepcopy(VAULT_SCHEMA)},
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


_SKIP = {"key": "security.banzaicloud.io/mutate", "operator": "NotIn", "values": ["skip"]}
_NOT_HELM = {"key": "owner", "operator": "NotIn", "values": ["helm"]}
# (name, path, resources, operations, failurePolicy key, selectors' key, objectSelector's own expressions)
_HOOKS: tuple[tuple[str, str, str, list[str], str, str, list[Object]], ...] = (
    ("pods", "/pods", "pods", ["CREATE"], "podsFailurePolicy", "pods", [_SKIP]),
    ("secrets", "/secrets", "secrets", ["CREATE", "UPDATE"], "secretsFailurePolicy", "secrets", [_NOT_HELM, _SKIP]),
    ("configmaps", "/configmaps", "configmaps", ["CREATE", "UPDATE"], "", "configMaps", [_NOT_HELM, _SKIP]),
)
# Which value registers each webhook (the pods webhook always is).
_REGISTERED_BY = {"secrets": "secretsMutation", "configmaps": "configMapMutation"}


def _selector(chosen: Object, own: list[Object]) -> Object:
    """A selector as the chart splices it: the value's matchLabels and matchExpressions, then its own."""
    out: Object = {}
    if chosen.get("matchLabels"):
        out["matchLabels"] = dict(chosen["matchLabels"])
    expressions = [*copy.deepcopy(chosen.get("matchExpressions") or []), *copy.deepcopy(own)]
    if expressions:
        out["matchExpressions"] = expressions
    return out


def _webhook(hook: tuple[str, str, str, list[str], str, str, list[Object]], ns: str, values: ChartValues) -> Object:
    name, path, resource, operations, policy_key, scope, own = hook
    policy = values[policy_key] if policy_key else values["configmapFailurePolicy"] or values["configMapFailurePolicy"]
    release = [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [ns]}]
    namespaces = values[f"{scope}.namespaceSelector"] or values["namespaceSelector"]
    objects = values[f"{scope}.objectSelector"] or values["objectSelector"]
    return {
        "name": f"{name}.{WEBHOOK}.admission.banzaicloud.com",
        "clientConfig": {"service": {"name": WEBHOOK, "namespace": ns, "path": path, "port": 443}},
        "rules": [{"operations": operations, "apiGroups": ["*"], "apiVersions": ["*"], "resources": [resource]}],
        "failurePolicy": policy,
        "sideEffects": values["apiSideEffectValue"],
        "admissionReviewVersions": ["v1"],
        # The chart leaves it out by default; kube-apiserver then defaults it to 10 (the sandbox shows it).
        "timeoutSeconds": values["timeoutSeconds"] or 10,
        "namespaceSelector": _selector(namespaces, release if values["ignoreReleaseNamespace"] else []),
        "objectSelector": _selector(objects, own),
    }


def _webhook_workload(params: BankVaultsParams, values: ChartValues) -> list[Object]:
    """The webhook's ServiceAccount, RBAC, Deployment and Service, with the values' env, labels and image."""
    env = [
        {"name": "TLS_CERT_FILE", "value": "/var/serving-cert/tls.crt"},
        {"name": "TLS_PRIVATE_KEY_FILE", "value": "/var/serving-cert/tls.key"},
        {"name": "LISTEN_ADDRESS", "value": ":8443"},
        *([{"name": "LOG_LEVEL", "value": "debug"}] if values["debug"] else []),
        {"name": "VAULT_ENV_IMAGE", "value": f"{values['vaultEnv.repository']}:{values['vaultEnv.tag']}"},
        *({"name": name, "value": value} for name, value in sorted(values["env"].items())),
    ]
    image = f"{values['image.repository']}:{values['image.tag'] or f'v{params.webhook_chart_version}'}"
    objects = _workload(WEBHOOK, params.namespace, image, values["replicaCount"], 8443, env, WEBHOOK_RULES)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    meta = deployment["metadata"]
    meta["labels"] = {**meta["labels"], **values["labels"]}  # a copy: the selectors share the chart's labels
    template = deployment["spec"]["template"]["metadata"]
    template["labels"] = {**template["labels"], "security.banzaicloud.io/mutate": "skip", **values["labels"]}
    if values["podAnnotations"]:
        template["annotations"] = dict(values["podAnnotations"])
    return objects


def bank_vaults_objects(params: BankVaultsParams, vault_addr: str, values: ChartValues | None = None) -> list[Object]:
    """Operator and webhook as the charts install them; `values` are the webhook chart's (default: the
    chart's defaults with what the parameters decide, `env.VAULT_ADDR` set to `vault_addr`)."""
    ns = params.namespace
    if values is None:
        values = webhook_values(parameter_sets=params_sets(params, vault_addr))
    operator = _workload(
        OPERATOR,
        ns,
        f"ghcr.io/bank-vaults/vault-operator:v{params.operator_chart_version}",
        1,
        8080,
        [],
        OPERATOR_RULES,
    )
    hooks = [hook for hook in _HOOKS if hook[0] not in _REGISTERED_BY or values[_REGISTERED_BY[hook[0]]]]
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK, "labels": {"app.kubernetes.io/name": WEBHOOK}},
        "webhooks": [_webhook(hook, ns, values) for hook in hooks],
    }
    return [vault_crd(), *operator, *_webhook_workload(params, values), config]
