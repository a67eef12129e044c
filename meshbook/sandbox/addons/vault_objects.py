"""The objects the Bank-Vaults operator creates for a Vault CR: its Service, StatefulSet and configurer
Deployment, with the labels, annotations and env `vault_cr.VaultCR` places on them (FACTS 2, 5)."""

from __future__ import annotations

import json
from typing import Any

from meshbook.sandbox.addons.vault_cr import VaultCR
from meshbook.sandbox.storage.store import Object

DEFAULT_BANK_VAULTS_IMAGE = "ghcr.io/bank-vaults/bank-vaults:v1.32.0"
STATSD_IMAGE = "prom/statsd-exporter:v0.28.0"


def api_port_name(spec: dict[str, Any]) -> str:
    """FACTS 5: `istioEnabled` names the API port for Istio's protocol detection."""
    tls = spec.get("config", {}).get("listener", {}).get("tcp", {}).get("tls_disable") not in (True, "true", 1)
    if spec.get("istioEnabled"):
        return "https-api-port" if tls else "http-api-port"
    return "api-port"


def labels(name: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": component, "vault_cr": name}


def selector(name: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": component, "vault_cr": name}


def service(vault: Object) -> Object:
    name = vault["metadata"]["name"]
    spec = vault.get("spec", {})
    cr = VaultCR.read(vault)
    annotations = cr.vault_annotations()
    if spec.get("ingress") and not cr.tls_disabled:  # GKE's load balancer needs the backend protocol
        protocols = {api_port_name(spec): "HTTPS"}
        annotations["cloud.google.com/app-protocols"] = json.dumps(protocols, separators=(",", ":"))
    return {
        "metadata": {
            "name": name,
            "labels": cr.vault_labels({**labels(name, "vault"), "global_service": "true"}),
            "annotations": annotations,
        },
        "spec": {
            "type": spec.get("serviceType", "ClusterIP"),
            "selector": selector(name, "vault"),
            "ports": [
                {"name": api_port_name(spec), "port": 8200, "targetPort": 8200, "protocol": "TCP"},
                {"name": "cluster-port", "port": 8201, "targetPort": 8201, "protocol": "TCP"},
                {"name": "metrics", "port": 9091, "targetPort": 9091, "protocol": "TCP"},
                {"name": "statsd", "port": 9102, "targetPort": 9102, "protocol": "TCP"},
            ],
        },
    }


def statefulset(vault: Object) -> Object:
    name, ns = vault["metadata"]["name"], vault["metadata"]["namespace"]
    spec = vault.get("spec", {})
    bank_vaults = spec.get("bankVaultsImage", DEFAULT_BANK_VAULTS_IMAGE)
    secret_ns = spec.get("unsealConfig", {}).get("kubernetes", {}).get("secretNamespace", ns)
    cr = VaultCR.read(vault)
    containers: list[dict[str, Any]] = [
        {
            "name": "vault",
            "image": spec.get("image", "hashicorp/vault:latest"),
            "args": ["server"],
            "ports": [
                {"name": api_port_name(spec), "containerPort": 8200},
                {"name": "cluster-port", "containerPort": 8201},
            ],
            "env": [{"name": "VAULT_CLUSTER_INTERFACE", "value": "eth0"}, *cr.secret_init_env],
            "volumeMounts": [
                {"name": "vault-tls", "mountPath": "/vault/tls"},
                {"name": "vault-file", "mountPath": "/vault/file"},
                {"name": "vault-config", "mountPath": "/vault/config"},
            ],
        },
        {
            "name": "bank-vaults",
            "image": bank_vaults,
            "command": ["bank-vaults", "unseal", "--init"],
            "args": [
                "--mode",
                "k8s",
                "--k8s-secret-namespace",
                secret_ns,
                "--k8s-secret-name",
                f"{name}-unseal-keys",
            ],
            "env": [{"name": "VAULT_ADDR", "value": "https://127.0.0.1:8200"}, *cr.common_env, *cr.sidecar_env],
            "ports": [{"name": "metrics", "containerPort": 9091}],
        },
    ]
    if not spec.get("statsdDisabled"):
        containers.append(
            {
                "name": "prometheus-exporter",
                "image": STATSD_IMAGE,
                "ports": [{"name": "statsd", "containerPort": 9102}],
                **({"env": cr.sidecar_env} if cr.sidecar_env else {}),
            }
        )
    pod_labels = cr.vault_labels(labels(name, "vault"))
    init_env = {"env": cr.secret_init_env} if cr.secret_init_env else {}
    return {
        "metadata": {"name": name, "labels": pod_labels, "annotations": cr.vault_annotations()},
        "spec": {
            "replicas": int(spec.get("size", 1)),
            "serviceName": name,
            "selector": {"matchLabels": selector(name, "vault")},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": cr.vault_annotations()},
                "spec": {
                    "serviceAccountName": spec.get("serviceAccount", "default"),
                    "initContainers": [
                        {
                            "name": "config-templating",
                            "image": bank_vaults,
                            "command": ["bank-vaults", "template", "-template", "/tmp/vault-config.json"],
                            **init_env,
                        }
                    ],
                    "containers": containers,
                    "volumes": [
                        {"name": "vault-tls", "secret": {"secretName": f"{name}-tls"}},
                        {"name": "vault-file", "persistentVolumeClaim": {"claimName": "vault-file"}},
                        {"name": "vault-config", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def configurer(vault: Object) -> Object:
    name, ns = vault["metadata"]["name"], vault["metadata"]["namespace"]
    spec = vault.get("spec", {})
    secret_ns = spec.get("unsealConfig", {}).get("kubernetes", {}).get("secretNamespace", ns)
    cr = VaultCR.read(vault)
    pod_labels = cr.configurer_labels(labels(name, "vault-configurator"))
    annotations = cr.configurer_annotations()
    return {
        "metadata": {"name": f"{name}-configurer", "labels": pod_labels, "annotations": annotations},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector(name, "vault-configurator")},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": annotations},
                "spec": {
                    "serviceAccountName": spec.get("serviceAccount", "default"),
                    "containers": [
                        {
                            "name": "bank-vaults",
                            "image": spec.get("bankVaultsImage", DEFAULT_BANK_VAULTS_IMAGE),
                            "command": ["bank-vaults", "configure"],
                            "args": [
                                "--mode",
                                "k8s",
                                "--k8s-secret-namespace",
                                secret_ns,
                                "--k8s-secret-name",
                                f"{name}-unseal-keys",
                                "--vault-config-file",
                                "/config/vault-config.yml",
                            ],
                            "env": [{"name": "VAULT_ADDR", "value": f"https://{name}.{ns}:8200"}, *cr.common_env],
                            "volumeMounts": [{"name": "config", "mountPath": "/config"}],
                        }
                    ],
                    "volumes": [{"name": "config", "secret": {"secretName": f"{name}-raw-config"}}],
                },
            },
        },
    }
