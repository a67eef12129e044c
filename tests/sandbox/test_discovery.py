"""Discovery bodies: exact shapes kubectl and client-go decode, subresources, CRDs, negotiation."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from meshbook.sandbox.http import discovery
from meshbook.sandbox.http.openapi import documents as openapi
from meshbook.sandbox.storage.resources import ResourceRegistry

KUBECTL_133 = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"
ACCEPT_CLIENT_GO_133 = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)
ACCEPT_CLIENT_GO_127 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"

VAULT_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "vaults.vault.banzaicloud.com"},
    "spec": {
        "group": "vault.banzaicloud.com",
        "scope": "Namespaced",
        "names": {
            "kind": "Vault",
            "plural": "vaults",
            "singular": "vault",
            "shortNames": ["vlt"],
            "categories": ["all", "vault"],
        },
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}},
                    }
                },
            }
        ],
    },
}


def registry_with_vault() -> ResourceRegistry:
    registry = ResourceRegistry()
    assert registry.sync_crds([VAULT_CRD])
    return registry


def _by_name(resource_list: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    assert resource_list is not None
    return {r["name"]: r for r in resource_list["resources"]}


def test_version_info_has_the_fields_kubectl_reads() -> None:
    info = discovery.version_info("1.33")
    assert list(info) == [
        "major",
        "minor",
        "emulationMajor",
        "emulationMinor",
        "minCompatibilityMajor",
        "minCompatibilityMinor",
        "gitVersion",
        "gitCommit",
        "gitTreeState",
        "buildDate",
        "goVersion",
        "compiler",
        "platform",
    ]
    assert (info["major"], info["minor"], info["gitVersion"]) == ("1", "33", "v1.33.0")
    assert re.fullmatch(r"[0-9a-f]{40}", info["gitCommit"])
    old = discovery.version_info("1.27")
    assert (old["minor"], old["gitVersion"]) == ("27", "v1.27.0")
    assert "emulationMinor" not in old  # added to version.Info in 1.33


def test_api_versions_lists_v1_and_the_server_address() -> None:
    assert discovery.api_versions("10.0.0.1:443") == {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:443"}],
    }


def test_api_group_list_has_named_groups_with_preferred_versions() -> None:
    body = discovery.api_group_list(ResourceRegistry())
    assert list(body) == ["kind", "apiVersion", "groups"]
    assert (body["kind"], body["apiVersion"]) == ("APIGroupList", "v1")
    groups = {g["name"]: g for g in body["groups"]}
    assert "" not in groups
    assert groups["apps"] == {
        "name": "apps",
        "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
    }
    assert "rbac.authorization.k8s.io" in groups


def test_core_resource_list_matches_the_real_shape() -> None:
    registry = ResourceRegistry()
    body = discovery.api_resource_list(registry, "", "v1")
    pod_type = registry.lookup("", "v1", "pods")
    assert body is not None and pod_type is not None
    assert list(body) == ["kind", "groupVersion", "resources"]  # no apiVersion on /api/v1
    pods = _by_name(body)
    assert pods["pods"] == {
        "name": "pods",
        "singularName": "pod",
        "namespaced": True,
        "kind": "Pod",
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        "shortNames": ["po"],
        "categories": ["all"],
        "storageVersionHash": discovery.storage_version_hash(pod_type),
    }
    assert "categories" not in pods["secrets"] and "shortNames" not in pods["secrets"]


SUBRESOURCE_ENTRIES = [
    # name, namespaced, (group, version) when not the parent's, kind, verbs
    ("pods/log", True, None, "Pod", ["get"]),
    ("pods/portforward", True, None, "PodPortForwardOptions", ["create", "get"]),
    ("pods/exec", True, None, "PodExecOptions", ["create", "get"]),
    ("pods/attach", True, None, "PodAttachOptions", ["create", "get"]),
    ("pods/status", True, None, "Pod", ["get", "patch", "update"]),
    ("serviceaccounts/token", True, ("authentication.k8s.io", "v1"), "TokenRequest", ["create"]),
    ("namespaces/finalize", False, None, "Namespace", ["update"]),
    ("namespaces/status", False, None, "Namespace", ["get", "patch", "update"]),
]


@pytest.mark.parametrize(("name", "namespaced", "group_version", "kind", "verbs"), SUBRESOURCE_ENTRIES)
def test_core_subresource_entries(
    name: str, namespaced: bool, group_version: tuple[str, str] | None, kind: str, verbs: list[str]
) -> None:
    expected: dict[str, Any] = {"name": name, "singularName": "", "namespaced": namespaced}
    if group_version:
        expected |= {"group": group_version[0], "version": group_version[1]}
    expected |= {"kind": kind, "verbs": verbs}
    entry = _by_name(discovery.api_resource_list(ResourceRegistry(), "", "v1"))[name]
    assert entry == expected
    assert list(entry) == list(expected)  # key order as the real server writes it


def test_apps_resource_list_has_scale_as_autoscaling_v1() -> None:
    body = discovery.api_resource_list(ResourceRegistry(), "apps", "v1")
    assert body is not None
    assert list(body) == ["kind", "apiVersion", "groupVersion", "resources"]
    assert (body["apiVersion"], body["groupVersion"]) == ("v1", "apps/v1")
    entries = _by_name(body)
    assert entries["deployments/scale"] == {
        "name": "deployments/scale",
        "singularName": "",
        "namespaced": True,
        "group": "autoscaling",
        "version": "v1",
        "kind": "Scale",
        "verbs": ["get", "patch", "update"],
    }
    assert entries["deployments"]["shortNames"] == ["deploy"]
    assert entries["daemonsets/status"]["kind"] == "DaemonSet"
    assert "daemonsets/scale" not in entries


def test_virtual_resources_have_no_storage_hash_and_unknown_group_versions_are_none() -> None:
    entries = _by_name(discovery.api_resource_list(ResourceRegistry(), "authentication.k8s.io", "v1"))
    assert entries["tokenreviews"]["verbs"] == ["create"]
    assert "storageVersionHash" not in entries["tokenreviews"]
    assert discovery.api_resource_list(ResourceRegistry(), "apps", "v2") is None
    assert discovery.api_resource_list(ResourceRegistry(), "nope.example.com", "v1") is None


def test_storage_version_hash_is_stable_and_distinct() -> None:
    registry = ResourceRegistry()
    pods, deploy = registry.lookup("", "v1", "pods"), registry.lookup("apps", "v1", "deployments")
    assert pods is not None and deploy is not None
    assert re.fullmatch(r"[A-Za-z0-9+/]{11}=", discovery.storage_version_hash(pods))
    assert discovery.storage_version_hash(pods) == discovery.storage_version_hash(pods)
    assert discovery.storage_version_hash(pods) != discovery.storage_version_hash(deploy)


def test_crd_types_appear_with_short_names_categories_and_status() -> None:
    registry = registry_with_vault()
    groups = {g["name"] for g in discovery.api_group_list(registry)["groups"]}
    assert "vault.banzaicloud.com" in groups
    entries = _by_name(discovery.api_resource_list(registry, "vault.banzaicloud.com", "v1alpha1"))
    assert entries["vaults"]["shortNames"] == ["vlt"]
    assert entries["vaults"]["categories"] == ["all", "vault"]
    assert entries["vaults"]["kind"] == "Vault"
    assert entries["vaults/status"] == {
        "name": "vaults/status",
        "singularName": "",
        "namespaced": True,
        "kind": "Vault",
        "verbs": ["get", "patch", "update"],
    }
    body, _ = discovery.aggregated_discovery(registry, core=False)
    vault = next(i for i in body["items"] if i["metadata"] == {"name": "vault.banzaicloud.com"})
    resource = vault["versions"][0]["resources"][0]
    assert (resource["shortNames"], resource["categories"]) == (["vlt"], ["all", "vault"])


def test_aggregated_discovery_core_and_groups() -> None:
    registry = ResourceRegistry()
    core, content_type = discovery.aggregated_discovery(registry, core=True)
    assert content_type == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    assert list(core) == ["kind", "apiVersion", "metadata", "items"]
    assert (core["kind"], core["apiVersion"]) == ("APIGroupDiscoveryList", "apidiscovery.k8s.io/v2")
    assert [item["metadata"] for item in core["items"]] == [{}]
    pods = next(r for r in core["items"][0]["versions"][0]["resources"] if r["resource"] == "pods")
    assert list(pods) == [
        "resource",
        "responseKind",
        "scope",
        "singularResource",
        "verbs",
        "shortNames",
        "categories",
        "subresources",
    ]
    assert pods["responseKind"] == {"group": "", "version": "", "kind": "Pod"}
    assert {s["subresource"] for s in pods["subresources"]} == {"status", "log", "portforward", "exec", "attach"}
    assert {
        "subresource": "exec",
        "responseKind": {"group": "", "version": "", "kind": "PodExecOptions"},
        "verbs": ["create", "get"],
    } in pods["subresources"]

    groups, _ = discovery.aggregated_discovery(registry, core=False, mode="aggregated-v2beta1")
    assert groups["apiVersion"] == "apidiscovery.k8s.io/v2beta1"
    names = [item["metadata"].get("name") for item in groups["items"]]
    assert "" not in names and None not in names and "apps" in names
    apps = next(item for item in groups["items"] if item["metadata"]["name"] == "apps")
    assert apps["versions"][0]["version"] == "v1" and apps["versions"][0]["freshness"] == "Current"
    deploy = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert deploy["scope"] == "Namespaced"
    assert {
        "subresource": "scale",
        "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
        "verbs": ["get", "patch", "update"],
    } in deploy["subresources"]
    with pytest.raises(ValueError):
        discovery.aggregated_discovery(registry, core=False, mode="legacy")


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (ACCEPT_CLIENT_GO_133, "aggregated-v2"),
        (ACCEPT_CLIENT_GO_127, "aggregated-v2beta1"),
        ("application/json", "legacy"),
        ("*/*", "legacy"),
        ("", "legacy"),
        (None, "legacy"),
        (
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0.5,"
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
            "aggregated-v2beta1",
        ),
        (
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0,application/json",
            "legacy",
        ),
        ("application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", "legacy"),
        ("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList", "legacy"),
        ("application/json; g=apidiscovery.k8s.io; v=v2; as=APIGroupDiscoveryList", "aggregated-v2"),
    ],
)
def test_negotiate_discovery(accept: str | None, expected: str) -> None:
    assert discovery.negotiate_discovery(accept) == expected


def test_content_types_are_exact() -> None:
    assert discovery.DISCOVERY_CONTENT_TYPES == {
        "aggregated-v2": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        "aggregated-v2beta1": "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
        "legacy": "application/json",
    }


# -- a small real server built from these functions, for kubectl ------------------------------------------


def _json(body: Any, content_type: str = "application/json", status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), headers={"Content-Type": content_type})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def discovery_app(
    registry: ResourceRegistry, objects: Handler | None = None, seen: list[str] | None = None
) -> web.Application:
    """Discovery and OpenAPI as the sandbox serves them; `objects` answers everything else.

    Each request is appended to `seen` as "METHOD /path?query".
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        if seen is not None:
            seen.append(f"{request.method} {request.path_qs}")
        path = request.path.rstrip("/")
        if path == "/version":
            return _json(discovery.version_info("1.33"))
        if path in ("/api", "/apis"):
            mode = discovery.negotiate_discovery(request.headers.get("Accept"))
            core = path == "/api"
            if mode == "legacy":
                return _json(discovery.api_versions() if core else discovery.api_group_list(registry))
            return _json(*discovery.aggregated_discovery(registry, core, mode))
        if path == "/openapi/v2":
            answer = openapi.serve_openapi_v2(
                accept=request.headers.get("Accept"), if_none_match=request.headers.get("If-None-Match")
            )
            return web.Response(status=answer.status, body=answer.body, headers=answer.headers)
        if path.startswith("/openapi/v3"):
            answer = openapi.serve_openapi_v3(
                registry,
                path.removeprefix("/openapi/v3"),
                query_hash=request.query.get("hash"),
                if_none_match=request.headers.get("If-None-Match"),
                accept=request.headers.get("Accept"),
            )
            return web.Response(status=answer.status, body=answer.body, headers=answer.headers)
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) == 2:
            body = discovery.api_resource_list(registry, "", parts[1])
        elif parts[0] == "apis" and len(parts) == 3:
            body = discovery.api_resource_list(registry, parts[1], parts[2])
        elif objects is not None:
            return await objects(request)
        else:
            body = None
        return _json(body) if body else _json({"kind": "Status", "code": 404}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@contextmanager
def serve(app: web.Application) -> Iterator[str]:
    """Run `app` on a loopback port in a thread; yields its URL."""
    loop = asyncio.new_event_loop()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    runner = web.AppRunner(app)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> None:
        await runner.setup()
        await web.SockSite(runner, sock).start()

    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def write_kubeconfig(path: Path, server: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "default"}}],
        "current-context": "x",
    }
    path.write_text(json.dumps(config))
    return path


def run_kubectl(binary: str, kubeconfig: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not shutil.which(binary):
        pytest.skip(f"{binary} is not installed")
    cmd = [binary, "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@web.middleware
async def _strip_accept(request: web.Request, handler: Handler) -> web.StreamResponse:
    return await handler(request.clone(headers={"Accept": "application/json"}))


@pytest.mark.slow
@pytest.mark.parametrize("legacy", [False, True], ids=["aggregated", "legacy"])
def test_kubectl_api_resources_reads_our_discovery(tmp_path: Path, legacy: bool) -> None:
    registry = registry_with_vault()
    app = discovery_app(registry)
    if legacy:  # a client that does not ask for the aggregated form still gets everything
        app.middlewares.append(_strip_accept)
    with serve(app) as url:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
        proc = run_kubectl(KUBECTL_133, kubeconfig, tmp_path / "cache", "api-resources")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^deployments\s+deploy\s+apps/v1\s+true\s+Deployment$", proc.stdout, re.M), proc.stdout
    assert re.search(r"^vaults\s+vlt\s+vault\.banzaicloud\.com/v1alpha1\s+true\s+Vault$", proc.stdout, re.M)
    assert re.search(r"^pods\s+po\s+v1\s+true\s+Pod$", proc.stdout, re.M)
