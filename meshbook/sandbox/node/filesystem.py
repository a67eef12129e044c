"""The files an exec'd process can read in a sandbox container: what the kubelet puts there.

There is no image file system; a container has the files the kubelet writes into every container
(`/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`, the service account's `namespace` and `ca.crt`)
and its ConfigMap, Secret, projected and emptyDir volume mounts (each key a file, `items` and `subPath`
honoured), read from the store when the process starts, as the kubelet's volume contents are then.
"""

from __future__ import annotations

import base64
import posixpath
from collections.abc import Mapping
from typing import Any

from meshbook.sandbox.node.containers import ContainerContext

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DNS_SERVICE_IP = "10.96.0.10"


def _kubelet_files(pod: Mapping[str, Any], apiserver_ca_pem: str) -> dict[str, str]:
    meta, spec = pod["metadata"], pod.get("spec", {})
    namespace = meta.get("namespace", "default")
    hostname = spec.get("hostname") or meta["name"]
    pod_ip = pod.get("status", {}).get("podIP", "")
    files = {
        "/etc/hostname": hostname + "\n",
        "/etc/hosts": (
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
            + (f"{pod_ip}\t{hostname}\n" if pod_ip else "")
        ),
        "/etc/resolv.conf": (
            f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local\n"
            f"nameserver {DNS_SERVICE_IP}\noptions ndots:5\n"
        ),
    }
    if spec.get("automountServiceAccountToken", True) is not False:
        files[f"{SERVICE_ACCOUNT_DIR}/namespace"] = namespace
        if apiserver_ca_pem:
            files[f"{SERVICE_ACCOUNT_DIR}/ca.crt"] = apiserver_ca_pem
    return files


def _object_data(ctx: ContainerContext, kind: str, name: str) -> dict[str, str]:
    """A Secret's or ConfigMap's keys as file texts (binary kept byte for byte)."""
    namespace = ctx.pod["metadata"].get("namespace", "default")
    if kind == "secret":
        decoded = ctx.services.secret_data(namespace, name) or {}
        return {k: v.decode("utf-8", errors="surrogateescape") for k, v in decoded.items()}
    rt = ctx.services.core.registry.lookup("", "v1", "configmaps")
    found = (ctx.services.core.store.get(rt, namespace, name) if rt else None) or {}
    binary = {
        k: base64.b64decode(v).decode("utf-8", errors="surrogateescape")
        for k, v in (found.get("binaryData") or {}).items()
    }
    return dict(found.get("data") or {}) | binary


def _selected(data: dict[str, str], items: list[dict[str, Any]] | None) -> dict[str, str]:
    """`items` map keys to paths (and select them); without it every key is a file."""
    if not items:
        return data
    return {item["path"]: data[item["key"]] for item in items if item.get("key") in data}


def _volume_data(ctx: ContainerContext, volume: Mapping[str, Any]) -> dict[str, str] | None:
    """The files of a Secret, ConfigMap, projected or emptyDir volume (path -> text); None for other kinds."""
    if "emptyDir" in volume:  # what the pod's own programs wrote there (a vault-agent's rendered templates)
        return dict(ctx.services.empty_dirs.get((ctx.pod["metadata"].get("uid", ""), volume.get("name", "")), {}))
    if "secret" in volume:
        source = volume["secret"]
        return _selected(_object_data(ctx, "secret", source.get("secretName", "")), source.get("items"))
    if "configMap" in volume:
        source = volume["configMap"]
        return _selected(_object_data(ctx, "configMap", source.get("name", "")), source.get("items"))
    if "projected" not in volume:
        return None
    files: dict[str, str] = {}
    for source in volume["projected"].get("sources") or []:  # service-account tokens are not projected here
        for kind in ("secret", "configMap"):
            if kind in source:
                ref = source[kind]
                files |= _selected(_object_data(ctx, kind, ref.get("name", "")), ref.get("items"))
    return files


def container_files(ctx: ContainerContext) -> dict[str, str]:
    """Every file path the container has -> its text."""
    files = _kubelet_files(ctx.pod, ctx.services.apiserver_ca_pem)
    volumes = {v.get("name"): v for v in ctx.pod.get("spec", {}).get("volumes") or []}
    for mount in ctx.container.get("volumeMounts") or []:
        volume = volumes.get(mount.get("name"))
        data = _volume_data(ctx, volume) if volume else None
        if data is None:
            continue
        target = mount.get("mountPath", "/")
        if mount.get("subPath"):
            if mount["subPath"] in data:
                files[posixpath.normpath(target)] = data[mount["subPath"]]
            continue
        files.update({posixpath.normpath(posixpath.join(target, path)): text for path, text in data.items()})
    return files
