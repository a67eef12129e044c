"""OpenAPI documents: the operations and schemas kubectl reads, hashes/ETags, and real kubectl apply."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from kubernetes.client import models

from meshbook.sandbox.http.openapi import documents as openapi
from meshbook.sandbox.http.openapi.schemas import PATCH_META, SCHEMA_REF, go_type
from meshbook.sandbox.storage.resources import ResourceRegistry
from tests.sandbox.test_discovery import (
    KUBECTL_133,
    VAULT_CRD,
    discovery_app,
    registry_with_vault,
    run_kubectl,
    serve,
    write_kubeconfig,
)

KUBECTL_127 = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27"
SMP = "application/strategic-merge-patch+json"


def document(registry: ResourceRegistry, group: str, version: str) -> dict[str, Any]:
    doc = openapi.openapi_v3_document(registry, group, version)
    assert doc is not None
    return doc


def all_documents(registry: ResourceRegistry) -> dict[str, dict[str, Any]]:
    return {openapi.gv_path(g, v): document(registry, g, v) for g, vs in registry.group_versions().items() for v in vs}


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow allOf[0] and $ref the way strategicpatch.PatchMetaFromOpenAPIV3 does."""
    if schema.get("allOf"):
        schema = schema["allOf"][0]
    if "$ref" in schema:
        target: dict[str, Any] = doc["components"]["schemas"][schema["$ref"].removeprefix(SCHEMA_REF)]
        return target
    return schema


def patch_meta(doc: dict[str, Any], kind: str, path: str) -> dict[str, Any]:
    """The property schema at a dotted field path of a kind, as kubectl's apply walks it."""
    schemas = doc["components"]["schemas"].values()
    schema = next(s for s in schemas if any(g["kind"] == kind for g in s.get("x-kubernetes-group-version-kind", [])))
    prop: dict[str, Any] = {}
    for name in path.split("."):
        prop = schema["properties"][name]  # KeyError = "unable to find api field" in kubectl
        schema = resolve(doc, prop["items"] if prop.get("type") == "array" else prop)
    return prop


def test_root_lists_every_group_version_with_a_hashed_url() -> None:
    root = openapi.openapi_v3_root(registry_with_vault())
    assert list(root) == ["paths"]
    assert {"api/v1", "apis/apps/v1", "apis/vault.banzaicloud.com/v1alpha1"} <= set(root["paths"])
    for path, entry in root["paths"].items():
        assert list(entry) == ["serverRelativeURL"]
        assert re.fullmatch(rf"/openapi/v3/{re.escape(path)}\?hash=[0-9A-F]{{128}}", entry["serverRelativeURL"])


def test_hash_changes_only_for_the_group_version_whose_document_changed() -> None:
    changed = copy.deepcopy(VAULT_CRD)
    schema = changed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"]["properties"]["image"] = {"type": "string"}
    before = openapi.openapi_v3_root(registry_with_vault())["paths"]
    registry = ResourceRegistry()
    registry.sync_crds([changed])
    after = openapi.openapi_v3_root(registry)["paths"]
    vault = "apis/vault.banzaicloud.com/v1alpha1"
    assert before[vault] != after[vault]
    assert before["apis/apps/v1"] == after["apis/apps/v1"]
    assert openapi.openapi_v3_root(registry_with_vault())["paths"] == before  # deterministic


def test_document_structure_and_pod_operations() -> None:
    doc = document(ResourceRegistry(), "", "v1")
    assert list(doc) == ["openapi", "info", "paths", "components"]
    assert doc["openapi"] == "3.0.0"
    paths = doc["paths"]
    collection, item = (
        paths["/api/v1/namespaces/{namespace}/pods"],
        paths["/api/v1/namespaces/{namespace}/pods/{name}"],
    )
    assert set(collection) == {"get", "post", "delete", "parameters"}
    assert set(item) == {"get", "put", "delete", "patch", "parameters"}
    assert [p["name"] for p in item["parameters"]] == ["name", "namespace", "pretty"]
    ids = {
        (op["operationId"], op.get("x-kubernetes-action"))
        for ops in paths.values()
        for op in ops.values()
        if "operationId" in op
    }
    assert {
        ("listCoreV1NamespacedPod", "list"), ("createCoreV1NamespacedPod", "post"),
        ("deleteCoreV1CollectionNamespacedPod", "deletecollection"), ("readCoreV1NamespacedPod", "get"),
        ("replaceCoreV1NamespacedPod", "put"), ("deleteCoreV1NamespacedPod", "delete"),
        ("patchCoreV1NamespacedPod", "patch"), ("listCoreV1PodForAllNamespaces", "list"),
        ("readCoreV1NamespacedPodLog", "get"), ("patchCoreV1NamespacedPodStatus", "patch"),
        ("connectCoreV1GetNamespacedPodPortforward", "connect"),
        ("connectCoreV1PostNamespacedPodPortforward", "connect"),
        ("createCoreV1NamespacedServiceAccountToken", "post"), ("replaceCoreV1NamespaceFinalize", "put"),
        ("listCoreV1Namespace", "list"), ("getCoreV1APIResources", None),
    } <= ids  # fmt: skip
    patch = item["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "", "kind": "Pod", "version": "v1"}
    assert [p["name"] for p in patch["parameters"]] == ["dryRun", "fieldManager", "fieldValidation", "force"]
    assert all(p["in"] == "query" for p in patch["parameters"])
    assert list(patch["requestBody"]["content"]) == [
        "application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json", SMP,
    ]  # fmt: skip


def test_subresource_and_group_operations_carry_their_own_kind() -> None:
    registry = ResourceRegistry()
    apps = document(registry, "apps", "v1")["paths"]
    scale = apps["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["patch"]["operationId"] == "patchAppsV1NamespacedDeploymentScale"
    assert scale["patch"]["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling",
        "kind": "Scale",
        "version": "v1",
    }
    token = document(registry, "", "v1")["paths"]["/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"]
    assert token["post"]["x-kubernetes-group-version-kind"]["kind"] == "TokenRequest"
    rbac = document(registry, "rbac.authorization.k8s.io", "v1")["paths"]
    assert rbac["/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}"]["patch"]["operationId"] == (
        "patchRbacAuthorizationV1ClusterRole"
    )
    reviews = document(registry, "authentication.k8s.io", "v1")["paths"]
    assert set(reviews["/apis/authentication.k8s.io/v1/tokenreviews"]) == {"post", "parameters"}
    assert "/apis/authentication.k8s.io/v1/tokenreviews/{name}" not in reviews


def test_every_patch_operation_declares_gvk_and_field_validation() -> None:
    """kubectl decides on the first PATCH operation whose GVK matches, so every one must be complete."""
    registry = registry_with_vault()
    count = 0
    for doc in all_documents(registry).values():
        for ops in doc["paths"].values():
            if "patch" in ops:
                count += 1
                assert set(ops["patch"]["x-kubernetes-group-version-kind"]) == {"group", "kind", "version"}
                params = ops["patch"]["parameters"]
                assert any(p["name"] == "fieldValidation" and p["in"] == "query" for p in params)
    patchable = [t for t in registry.types() if "patch" in t.verbs]
    assert count == len(patchable) + sum(s in ("status", "scale") for t in patchable for s in t.subresources)


def test_custom_resources_take_no_strategic_merge_patch() -> None:
    doc = document(registry_with_vault(), "vault.banzaicloud.com", "v1alpha1")
    patch = doc["paths"]["/apis/vault.banzaicloud.com/v1alpha1/namespaces/{namespace}/vaults/{name}"]["patch"]
    assert patch["operationId"] == "patchVaultBanzaicloudComV1alpha1NamespacedVault"
    assert SMP not in patch["requestBody"]["content"]
    assert "application/merge-patch+json" in patch["requestBody"]["content"]
    schema = doc["components"]["schemas"]["com.banzaicloud.vault.v1alpha1.Vault"]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "vault.banzaicloud.com", "kind": "Vault", "version": "v1alpha1"}
    ]
    assert schema["properties"]["spec"] == {"type": "object", "properties": {"size": {"type": "integer"}}}
    assert {"apiVersion", "kind", "metadata", "spec"} == set(schema["properties"])
    assert resolve(doc, schema["properties"]["metadata"])["properties"]["name"] == {"type": "string"}


def test_crd_without_schema_gets_an_open_object() -> None:
    crd = copy.deepcopy(VAULT_CRD)
    del crd["spec"]["versions"][0]["schema"]
    registry = ResourceRegistry()
    registry.sync_crds([crd])
    schema = document(registry, "vault.banzaicloud.com", "v1alpha1")["components"]["schemas"][
        "com.banzaicloud.vault.v1alpha1.Vault"
    ]
    assert schema["x-kubernetes-preserve-unknown-fields"] is True


@pytest.mark.parametrize(
    ("group", "kind", "path", "key", "strategy"),
    [
        ("apps", "Deployment", "spec.template.spec.containers", "name", "merge"),
        ("apps", "Deployment", "spec.template.spec.containers.env", "name", "merge"),
        ("apps", "Deployment", "spec.template.spec.containers.ports", "containerPort", "merge"),
        ("apps", "Deployment", "spec.template.spec.volumes", "name", "merge,retainKeys"),
        ("apps", "Deployment", "spec.strategy", None, "retainKeys"),
        ("apps", "StatefulSet", "spec.template.spec.initContainers.volumeMounts", "mountPath", "merge"),
        ("", "Service", "spec.ports", "port", "merge"),
        ("", "Pod", "metadata.ownerReferences", "uid", "merge"),
        ("", "Pod", "spec.containers.resources.limits", None, None),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration", "webhooks", "name", "merge"),
    ],
)
def test_schemas_carry_merge_keys_where_kubectl_apply_looks(
    group: str, kind: str, path: str, key: str | None, strategy: str | None
) -> None:
    prop = patch_meta(document(ResourceRegistry(), group, "v1"), kind, path)
    assert prop.get("x-kubernetes-patch-merge-key") == key
    assert prop.get("x-kubernetes-patch-strategy") == strategy


def test_patch_meta_table_names_real_fields() -> None:
    """A typo in PATCH_META would silently drop a merge key; each entry must match a client model field."""
    fields = {
        (go_type(name), json_name)
        for name in dir(models)
        if isinstance(cls := getattr(models, name), type) and hasattr(cls, "attribute_map")
        for json_name in cls.attribute_map.values()
    }
    assert set(PATCH_META) <= fields


def test_every_ref_resolves_and_kinds_are_tagged() -> None:
    for path, doc in all_documents(registry_with_vault()).items():
        names = set(doc["components"]["schemas"])
        refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(doc)))
        assert refs <= names, (path, refs - names)
        tagged = [s for s in doc["components"]["schemas"].values() if "x-kubernetes-group-version-kind" in s]
        assert tagged, path


def test_serve_root_and_documents_with_etags_and_hash_redirects() -> None:
    registry = ResourceRegistry()
    root = openapi.serve_openapi_v3(registry, "")
    assert root.status == 200 and root.headers["Content-Type"] == "application/json"
    assert openapi.serve_openapi_v3(registry, "/", if_none_match=root.headers["ETag"]).status == 304
    url = json.loads(root.body)["paths"]["apis/apps/v1"]["serverRelativeURL"]
    digest = url.split("hash=")[1]
    current = openapi.serve_openapi_v3(registry, "apis/apps/v1", query_hash=digest, now=0)
    assert current.status == 200
    assert current.headers["ETag"] == f'"{digest}"'
    assert current.headers["Cache-Control"] == "public, immutable"
    assert current.headers["Expires"] == "Fri, 01 Jan 1971 00:00:00 GMT"
    assert openapi.content_hash(current.body) == digest
    stale = openapi.serve_openapi_v3(registry, "apis/apps/v1", query_hash="0" * 128)
    assert (stale.status, stale.headers["Location"]) == (301, url)
    plain = openapi.serve_openapi_v3(registry, "apis/apps/v1")
    assert plain.status == 200 and "Cache-Control" not in plain.headers
    assert openapi.serve_openapi_v3(registry, "apis/apps/v1", if_none_match=f'"{digest}"').status == 304
    assert openapi.serve_openapi_v3(registry, "apis/apps/v9").status == 404
    assert openapi.serve_openapi_v3(registry, "apis/apps/v1", accept="application/x-protobuf").status == 406


def test_openapi_v2_is_a_minimal_parseable_document() -> None:
    proto = openapi.serve_openapi_v2(accept="application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
    assert proto.body == b"\x0a\x032.0\x12\x15\x0a\x0aKubernetes\x12\x07v1.33.0"
    assert "@" not in proto.headers["Content-Type"]  # Go's mime parser rejects it
    assert openapi.serve_openapi_v2(accept="x+protobuf", if_none_match=proto.headers["ETag"]).status == 304
    plain = openapi.serve_openapi_v2(accept="application/json")
    assert json.loads(plain.body)["swagger"] == "2.0"


# -- real kubectl apply against discovery + OpenAPI + a tiny object store ---------------------------------

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "nginx:1.25", env: [{name: A, value: "1"}, {name: B, value: "2"}]}
      - {name: side, image: busybox}
"""


def object_store(requests: list[dict[str, Any]]) -> Any:
    """Answers object requests: enough for kubectl apply to create and then patch one object."""
    objects: dict[str, dict[str, Any]] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.text()
        requests.append({"method": request.method, "path": request.path_qs, "ct": request.content_type, "body": body})
        if request.method == "POST":
            obj = json.loads(body)
            obj["metadata"] |= {"uid": "u1", "resourceVersion": "1", "namespace": "default"}
            objects[f"{request.path}/{obj['metadata']['name']}"] = obj
            return web.json_response(obj, status=201)
        if request.path not in objects:
            return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound"}, status=404)
        return web.json_response(objects[request.path])  # PATCH: the patch itself is what is checked

    return handle


@pytest.mark.slow
@pytest.mark.parametrize("kubectl", [KUBECTL_127, KUBECTL_133], ids=["1.27", "1.33"])
def test_kubectl_apply_twice_with_validation(tmp_path: Path, kubectl: str) -> None:
    requests: list[dict[str, Any]] = []
    (tmp_path / "v1.yaml").write_text(DEPLOYMENT)
    (tmp_path / "v2.yaml").write_text(DEPLOYMENT.replace('{name: B, value: "2"}', '{name: C, value: "3"}'))
    seen: list[str] = []
    with serve(discovery_app(ResourceRegistry(), object_store(requests), seen)) as url:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
        first = run_kubectl(kubectl, kubeconfig, tmp_path / "cache", "apply", "-f", str(tmp_path / "v1.yaml"))
        assert first.returncode == 0, first.stderr
        mark = len(requests)
        second = run_kubectl(kubectl, kubeconfig, tmp_path / "cache", "apply", "-f", str(tmp_path / "v2.yaml"))
    assert second.returncode == 0, second.stderr
    assert "warning" not in first.stderr.lower() + second.stderr.lower()
    post = next(r for r in requests[:mark] if r["method"] == "POST")
    assert post["path"].endswith("deployments?fieldManager=kubectl-client-side-apply&fieldValidation=Strict")
    assert "kubectl.kubernetes.io/last-applied-configuration" in post["body"]
    patch = next(r for r in requests[mark:] if r["method"] == "PATCH")
    assert patch["ct"] == SMP and "fieldValidation=Strict" in patch["path"]
    spec = json.loads(patch["body"])["spec"]["template"]["spec"]
    assert spec["$setElementOrder/containers"] == [{"name": "web"}, {"name": "side"}]
    assert {"$patch": "delete", "name": "B"} in spec["containers"][0]["env"]
    v2_fetches = [path for path in seen if path.startswith("GET /openapi/v2")]
    if kubectl == KUBECTL_127:
        assert v2_fetches  # its validator needs /openapi/v2 to exist
    else:
        assert not v2_fetches  # the v3 schemas sufficed for the strategic merge patch: no fallback
