"""Istio in the sandbox: the sidecar injector webhook and istiod's per-namespace root CA ConfigMap.

Configuration is read from the objects an Istio install creates, as istiod reads it: the istiod
Deployment's `ENABLE_NATIVE_SIDECARS` env, the `istio-sidecar-injector` ConfigMap's values
(`pilot.cni.enabled`) and the `istio` mesh ConfigMap (`defaultConfig.holdApplicationUntilProxyStarts`),
with the pod's `proxy.istio.io/config` annotation on top. Injection output follows Istio 1.30:
classic mode appends `istio-init` LAST among init containers (so the app's own init containers run
before capture, FACTS 6), CNI mode adds `istio-validation` instead, native mode puts `istio-init` and a
restartable `istio-proxy` FIRST.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from meshbook.param_enums import SidecarMode
from meshbook.sandbox.apiserver.admission import AdmissionRequest, default_container
from meshbook.sandbox.apiserver.verbs import ApiCore
from meshbook.sandbox.controllers.base import Controller, Key
from meshbook.sandbox.storage.store import Object, WatchEvent

ISTIO_NAMESPACE = "istio-system"
PROXY_IMAGE = "docker.io/istio/proxyv2:1.30.0"
ROOT_CERT_CONFIGMAP = "istio-ca-root-cert"
INJECTED_BY = "sidecar.istio.io/status"


@dataclass(frozen=True)
class InjectionConfig:
    sidecar_mode: SidecarMode
    hold_application_until_proxy_starts: bool
    revision: str = "default"


def injection_config(core: ApiCore, pod: Mapping[str, Any]) -> InjectionConfig:
    """The injector's settings from the Istio objects in the store and the pod's annotations."""
    deploy_rt = core.registry.lookup("apps", "v1", "deployments")
    cm_rt = core.registry.lookup("", "v1", "configmaps")
    assert deploy_rt and cm_rt
    native = False
    istiod = core.store.get(deploy_rt, ISTIO_NAMESPACE, "istiod")
    for container in (istiod or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
        for env in container.get("env") or []:
            if env.get("name") == "ENABLE_NATIVE_SIDECARS":
                native = str(env.get("value", "")).lower() == "true"
    cni = False
    injector = core.store.get(cm_rt, ISTIO_NAMESPACE, "istio-sidecar-injector")
    if injector is not None:
        values = json.loads((injector.get("data") or {}).get("values", "{}") or "{}")
        cni = bool(values.get("pilot", {}).get("cni", {}).get("enabled"))
    hold = False
    mesh = core.store.get(cm_rt, ISTIO_NAMESPACE, "istio")
    if mesh is not None:
        mesh_config = yaml.safe_load((mesh.get("data") or {}).get("mesh", "") or "") or {}
        hold = bool((mesh_config.get("defaultConfig") or {}).get("holdApplicationUntilProxyStarts"))
    proxy_config = (pod.get("metadata", {}).get("annotations") or {}).get("proxy.istio.io/config")
    if proxy_config:
        override = yaml.safe_load(proxy_config) or {}
        if "holdApplicationUntilProxyStarts" in override:
            hold = bool(override["holdApplicationUntilProxyStarts"])
    mode = SidecarMode.NATIVE if native else SidecarMode.CNI if cni else SidecarMode.CLASSIC
    return InjectionConfig(mode, hold)


def _proxy_container(pod: Mapping[str, Any], native: bool) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "istio-proxy",
        "image": PROXY_IMAGE,
        "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local", "--proxyLogLevel=warning"],
        "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
            {
                "name": "POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}},
            },
            {"name": "ISTIO_META_POD_PORTS", "value": "[]"},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
            "periodSeconds": 15,
            "failureThreshold": 4,
        },
        "securityContext": {"runAsUser": 1337, "runAsGroup": 1337, "runAsNonRoot": True},
        "volumeMounts": [
            {"name": "workload-socket", "mountPath": "/var/run/secrets/workload-spiffe-uds"},
            {"name": "istiod-ca-cert", "mountPath": "/var/run/secrets/istio"},
            {"name": "istio-data", "mountPath": "/var/lib/istio/data"},
            {"name": "istio-envoy", "mountPath": "/etc/istio/proxy"},
            {"name": "istio-token", "mountPath": "/var/run/secrets/tokens"},
            {"name": "istio-podinfo", "mountPath": "/etc/istio/pod"},
        ],
    }
    if native:
        container["restartPolicy"] = "Always"
    default_container(container)
    return container


def _init_container(name: str, args: list[str]) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": PROXY_IMAGE,
        "args": args,
        "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}, "runAsUser": 0, "runAsNonRoot": False},
    }
    if name == "istio-validation":
        container["securityContext"] = {"runAsUser": 1337, "runAsGroup": 1337, "runAsNonRoot": True}
    default_container(container)
    return container


_IPTABLES = ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", ""]
_VOLUMES: list[dict[str, Any]] = [
    {"name": "workload-socket", "emptyDir": {}},
    {"name": "credential-socket", "emptyDir": {}},
    {"name": "workload-certs", "emptyDir": {}},
    {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
    {"name": "istio-data", "emptyDir": {}},
    {
        "name": "istio-podinfo",
        "downwardAPI": {
            "items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
            ]
        },
    },
    {
        "name": "istio-token",
        "projected": {
            "sources": [
                {"serviceAccountToken": {"audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}
            ]
        },
    },
    {"name": "istiod-ca-cert", "configMap": {"name": ROOT_CERT_CONFIGMAP}},
]


def inject(pod: Object, config: InjectionConfig) -> Object:
    """The pod as Istio's injector returns it (idempotent: an injected pod is left alone)."""
    meta = pod.setdefault("metadata", {})
    annotations = meta.setdefault("annotations", {})
    if INJECTED_BY in annotations:
        return pod
    spec = pod.setdefault("spec", {})
    app_containers = [c["name"] for c in spec.get("containers") or []]
    inits = list(spec.get("initContainers") or [])
    containers = list(spec.get("containers") or [])
    proxy = _proxy_container(pod, native=config.sidecar_mode == SidecarMode.NATIVE)
    init_names: list[str]
    if config.sidecar_mode == SidecarMode.NATIVE:
        iptables = _init_container("istio-init", [*_IPTABLES, "-b", "*", "-d", "15090,15021,15020"])
        spec["initContainers"] = [iptables, proxy, *inits]
        init_names = ["istio-init", "istio-proxy"]
    elif config.sidecar_mode == SidecarMode.CNI:
        validation = _init_container("istio-validation", ["istio-iptables", "--run-validation", "--skip-rule-apply"])
        spec["initContainers"] = [*inits, validation]
        containers = [proxy, *containers] if config.hold_application_until_proxy_starts else [*containers, proxy]
        init_names = ["istio-validation"]
        annotations["sidecar.istio.io/interceptionMode"] = "REDIRECT"
    else:
        iptables = _init_container("istio-init", [*_IPTABLES, "-b", "*", "-d", "15090,15021,15020"])
        spec["initContainers"] = [*inits, iptables]
        containers = [proxy, *containers] if config.hold_application_until_proxy_starts else [*containers, proxy]
        init_names = ["istio-init"]
    spec["containers"] = containers
    spec["volumes"] = [*(spec.get("volumes") or []), *json.loads(json.dumps(_VOLUMES))]
    status = {
        "initContainers": init_names,
        "containers": [] if config.sidecar_mode == SidecarMode.NATIVE else ["istio-proxy"],
        "volumes": [v["name"] for v in _VOLUMES],
        "imagePullSecrets": None,
        "revision": config.revision,
    }
    annotations[INJECTED_BY] = json.dumps(status, separators=(",", ":"))
    if app_containers:
        annotations.setdefault("kubectl.kubernetes.io/default-container", app_containers[0])
        annotations.setdefault("kubectl.kubernetes.io/default-logs-container", app_containers[0])
    annotations.setdefault("istio.io/rev", config.revision)
    annotations.setdefault("prometheus.io/path", "/stats/prometheus")
    annotations.setdefault("prometheus.io/port", "15020")
    annotations.setdefault("prometheus.io/scrape", "true")
    if config.hold_application_until_proxy_starts:
        annotations.setdefault("proxy.istio.io/config", "holdApplicationUntilProxyStarts: true\n")
    labels = meta.setdefault("labels", {})
    labels.setdefault("security.istio.io/tlsMode", "istio")
    canonical = labels.get("app.kubernetes.io/name") or labels.get("app") or meta.get("generateName", "").rstrip("-")
    labels.setdefault("service.istio.io/canonical-name", canonical or meta.get("name", ""))
    labels.setdefault("service.istio.io/canonical-revision", labels.get("app.kubernetes.io/version", "latest"))
    return pod


class IstioInjectorBackend:
    """The `istiod` Service's `/inject` webhook."""

    def __init__(self, core: ApiCore) -> None:
        self.core = core

    def __call__(self, hook: Mapping[str, Any], request: AdmissionRequest, obj: Object) -> Object:
        if request.rt.kind != "Pod":
            return obj
        meta = obj.get("metadata", {})
        opt_out = (meta.get("annotations") or {}).get("sidecar.istio.io/inject") or (meta.get("labels") or {}).get(
            "sidecar.istio.io/inject"
        )
        if str(opt_out).lower() == "false" or obj.get("spec", {}).get("hostNetwork"):
            return obj
        return inject(obj, injection_config(self.core, obj))


class RootCertController(Controller):
    """istiod writes its root CA into `istio-ca-root-cert` in every namespace; injected pods mount it."""

    name = "istio-root-cert"

    def keys_for(self, event: WatchEvent) -> Iterable[Key]:
        if event.rt_key == "/namespaces" and event.type != "DELETED":
            yield ("", event.object["metadata"]["name"])
        elif event.rt_key == "apps/deployments" and event.object["metadata"]["name"] == "istiod":
            for ns in self.core.store.list(self._rt("namespaces")):
                yield ("", ns["metadata"]["name"])

    def initial_keys(self) -> Iterable[Key]:
        for ns in self.core.store.list(self._rt("namespaces")):
            yield ("", ns["metadata"]["name"])

    def _rt(self, plural: str) -> Any:
        rt = self.core.registry.lookup("", "v1", plural)
        assert rt is not None
        return rt

    async def reconcile(self, key: Key) -> None:
        deploy_rt = self.core.registry.lookup("apps", "v1", "deployments")
        assert deploy_rt is not None
        istiod = self.core.store.get(deploy_rt, ISTIO_NAMESPACE, "istiod")
        namespace = self.core.store.get(self._rt("namespaces"), "", key[1])
        if istiod is None or namespace is None or namespace["metadata"].get("deletionTimestamp"):
            return
        cm_rt = self._rt("configmaps")
        if self.core.store.get(cm_rt, key[1], ROOT_CERT_CONFIGMAP) is None:
            ca = self.core.store.get(cm_rt, key[1], "kube-root-ca.crt")
            pem = (ca or {}).get("data", {}).get("ca.crt", "")
            await self.core.create(
                cm_rt,
                key[1],
                {
                    "metadata": {"name": ROOT_CERT_CONFIGMAP, "labels": {"istio.io/config": "true"}},
                    "data": {"root-cert.pem": pem},
                },
            )
