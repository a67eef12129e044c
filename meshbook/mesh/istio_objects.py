"""The objects an Istio install creates, as meshbook installs them into the sandbox.

The sandbox has no Helm: it gets the same kinds of objects `istioctl install` / the `istio/base` and
`istio/istiod` charts create (namespace, CRDs, istiod Deployment and Service, mesh and injector
ConfigMaps, the injector's MutatingWebhookConfiguration, the CNI DaemonSet in CNI mode), and the
sandbox's behaviour hangs off them: delete the webhook configuration and injection stops.
"""

from __future__ import annotations

import json
from typing import Any

from meshbook.mesh.istio_crd_schemas import open_api_v3_schema
from meshbook.params import IstioParams, SidecarMode

Object = dict[str, Any]


def _crd(plural: str, kind: str, short_names: list[str]) -> Object:
    schema = open_api_v3_schema(kind)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.security.istio.io", "labels": {"app": "istio-pilot", "istio": "security"}},
        "spec": {
            "group": "security.istio.io",
            "scope": "Namespaced",
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "shortNames": short_names,
                "categories": ["istio-io", "security-istio-io"],
                "listKind": f"{kind}List",
            },
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": version == "v1",
                    "schema": {"openAPIV3Schema": schema},
                    "additionalPrinterColumns": [
                        {
                            "name": "Mode",
                            "type": "string",
                            "jsonPath": ".spec.mtls.mode",
                            "description": "Defines the mTLS mode used for peer authentication.",
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ]
                    if kind == "PeerAuthentication"
                    else [],
                }
                for version in ("v1", "v1beta1")
            ],
        },
    }


def istio_objects(params: IstioParams) -> list[Object]:
    """Everything `meshbook sandbox install istio` creates, in apply order."""
    ns = params.namespace
    native = params.sidecar_mode is SidecarMode.NATIVE
    cni = params.sidecar_mode is SidecarMode.CNI
    labels = {"app": "istiod", "istio": "pilot", "istio.io/rev": "default"}
    mesh = {
        "defaultConfig": {
            "discoveryAddress": f"istiod.{ns}.svc:15012",
            "holdApplicationUntilProxyStarts": params.hold_application_until_proxy_starts,
        },
        "rootNamespace": ns,
        "trustDomain": "cluster.local",
    }
    values = {
        "global": {
            "istioNamespace": ns,
            "proxy": {"image": "proxyv2"},
            "hub": "docker.io/istio",
            "tag": params.version,
        },
        "pilot": {"cni": {"enabled": cni}},
        "sidecarInjectorWebhook": {"enableNamespacesByDefault": False},
    }
    objects: list[Object] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        _crd("peerauthentications", "PeerAuthentication", ["pa"]),
        _crd("authorizationpolicies", "AuthorizationPolicy", ["ap"]),
        _crd("requestauthentications", "RequestAuthentication", ["ra"]),
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "istiod", "namespace": ns, "labels": labels},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "istio", "namespace": ns, "labels": {"istio.io/rev": "default"}},
            "data": {"mesh": json.dumps(mesh, indent=2), "meshNetworks": "networks: {}"},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "istio-sidecar-injector", "namespace": ns, "labels": {"istio.io/rev": "default"}},
            "data": {"values": json.dumps(values), "config": "policy: enabled\nalwaysInjectSelector: []\n"},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "istiod", "namespace": ns, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"istio": "pilot"}},
                "template": {
                    "metadata": {"labels": labels, "annotations": {"sidecar.istio.io/inject": "false"}},
                    "spec": {
                        "serviceAccountName": "istiod",
                        "containers": [
                            {
                                "name": "discovery",
                                "image": f"docker.io/istio/pilot:{params.version}",
                                "args": ["discovery", "--monitoringAddr=:15014", "--log_output_level=default:info"],
                                "ports": [
                                    {"containerPort": 8080, "protocol": "TCP"},
                                    {"containerPort": 15010, "protocol": "TCP"},
                                    {"containerPort": 15017, "protocol": "TCP"},
                                ],
                                "env": [
                                    {"name": "ENABLE_NATIVE_SIDECARS", "value": "true" if native else "false"},
                                    {"name": "PILOT_ENABLE_CNI", "value": "true" if cni else "false"},
                                    {"name": "REVISION", "value": "default"},
                                ],
                            }
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "istiod", "namespace": ns, "labels": labels},
            "spec": {
                "selector": {"app": "istiod", "istio": "pilot"},
                "ports": [
                    {"name": "grpc-xds", "port": 15010, "protocol": "TCP"},
                    {"name": "https-dns", "port": 15012, "protocol": "TCP"},
                    {"name": "https-webhook", "port": 443, "targetPort": 15017, "protocol": "TCP"},
                    {"name": "http-monitoring", "port": 15014, "protocol": "TCP"},
                ],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {
                "name": "istio-sidecar-injector",
                "labels": {"app": "sidecar-injector", "istio.io/rev": "default"},
            },
            "webhooks": [
                {
                    "name": "namespace.sidecar-injector.istio.io",
                    "clientConfig": {"service": {"name": "istiod", "namespace": ns, "path": "/inject", "port": 443}},
                    "rules": [
                        {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}
                    ],
                    "failurePolicy": "Fail",
                    "reinvocationPolicy": "Never",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1beta1", "v1"],
                    "timeoutSeconds": 10,
                    "namespaceSelector": {
                        "matchExpressions": [{"key": "istio-injection", "operator": "In", "values": ["enabled"]}]
                    },
                    "objectSelector": {
                        "matchExpressions": [
                            {"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}
                        ]
                    },
                }
            ],
        },
    ]
    if cni:
        cni_labels = {"k8s-app": "istio-cni-node"}
        objects.append(
            {
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "metadata": {"name": "istio-cni-node", "namespace": ns, "labels": cni_labels},
                "spec": {
                    "selector": {"matchLabels": cni_labels},
                    "template": {
                        "metadata": {"labels": cni_labels, "annotations": {"sidecar.istio.io/inject": "false"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "install-cni",
                                    "image": f"docker.io/istio/install-cni:{params.version}",
                                    "args": ["install-cni"],
                                }
                            ]
                        },
                    },
                },
            }
        )
    return objects
