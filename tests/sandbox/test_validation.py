"""What the sandbox refuses, and how, compared with kube-apiserver: every refusal is checked for its HTTP
code and the exact Status message a cluster gives; refusals first, then what is accepted.

One sandbox per kubectl minor (1.33 and 1.28, picked by the server's version); the official client and
raw HTTP requests run against both.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from meshbook.bankvaults.chart_objects import vault_crd
from meshbook.mesh.istio_crd_schemas import MTLS_MODES
from meshbook.mesh.istio_objects import _crd as istio_crd
from tests.sandbox.conftest import RunningSandbox, start_sandbox

pytestmark = pytest.mark.slow

LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
DNS1035_MESSAGE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


@pytest.fixture(scope="module", params=["1.33", "1.28"], ids=["kubectl-1.33", "kubectl-1.28"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """A sandbox with the Istio security CRDs and Bank-Vaults' Vault CRD, as meshbook installs them."""
    running = start_sandbox(tmp_path_factory.mktemp("validation"), kubernetes_version=request.param)
    try:
        ext = client.ApiextensionsV1Api(running.api)
        for crd in (istio_crd("peerauthentications", "PeerAuthentication", ["pa"]), vault_crd()):
            ext.create_custom_resource_definition(crd)
        yield running
    finally:
        running.api.close()
        from meshbook.sandbox import control

        control.down(running.info.state_dir)


@pytest.fixture
def ns(cluster: RunningSandbox) -> str:
    name = f"v-{secrets.token_hex(3)}"
    client.CoreV1Api(cluster.api).create_namespace({"metadata": {"name": name}})
    return name


class Answer:
    def __init__(self, status: int, headers: dict[str, list[str]], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def message(self) -> str:
        return str(self.json["message"])


def request(
    cluster: RunningSandbox,
    method: str,
    path: str,
    body: bytes | str | None = None,
    content_type: str = "application/json",
    **query: str,
) -> Answer:
    """One HTTP request with the client's credentials; the raw answer, whatever its status."""
    api = cluster.api
    if isinstance(body, str):
        body = body.encode()
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    headers["Authorization"] = "Bearer " + (cluster.info.state_dir / "token").read_text().strip()
    url = api.configuration.host + path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    response = api.rest_client.pool_manager.request(method, url, body=body, headers=headers, preload_content=True)
    merged: dict[str, list[str]] = {}
    for key, value in response.headers.items():
        merged.setdefault(key.lower(), []).append(value)
    return Answer(response.status, merged, response.data)


def configmap(name: str, **fields: Any) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **fields})


# -- fieldValidation ---------------------------------------------------------------------------------


def test_strict_refuses_unknown_fields_and_stores_nothing(cluster: RunningSandbox, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    answer = request(cluster, "POST", path, configmap("strict", dataa={"a": "b"}, extra=1), fieldValidation="Strict")
    assert answer.status == 400
    assert answer.message == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
        'unknown field "dataa", unknown field "extra"'
    )
    assert request(cluster, "GET", f"{path}/strict").status == 404


def test_unknown_fields_are_dropped_with_a_warning_by_default(cluster: RunningSandbox, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    answer = request(cluster, "POST", path, configmap("warned", data={"a": "b"}, dataa={"a": "b"}))
    assert answer.status == 201
    assert answer.headers["warning"] == ['299 - "unknown field \\"dataa\\""']
    stored = request(cluster, "GET", f"{path}/warned").json
    assert "dataa" not in stored and stored["data"] == {"a": "b"}


def test_ignore_drops_unknown_fields_silently(cluster: RunningSandbox, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    answer = request(cluster, "POST", path, configmap("ignored", dataa={"a": "b"}), fieldValidation="Ignore")
    assert answer.status == 201 and "warning" not in answer.headers
    assert "dataa" not in request(cluster, "GET", f"{path}/ignored").json


def test_duplicate_fields_are_refused_when_strict_and_the_last_kept_otherwise(cluster: RunningSandbox, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    body = '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup","name":"dup"},"data":{"a":"1","a":"2"}}'
    answer = request(cluster, "POST", path, body, fieldValidation="Strict")
    assert (answer.status, answer.message) == (
        400,
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
        'duplicate field "metadata.name", duplicate field "data.a"',
    )
    warned = request(cluster, "POST", path, body)
    assert warned.status == 201
    assert warned.headers["warning"] == [
        '299 - "duplicate field \\"metadata.name\\""',
        '299 - "duplicate field \\"data.a\\""',
    ]
    assert warned.json["data"] == {"a": "2"}


def test_an_unknown_directive_is_refused(cluster: RunningSandbox, ns: str) -> None:
    answer = request(cluster, "POST", f"/api/v1/namespaces/{ns}/configmaps", configmap("d"), fieldValidation="Strikt")
    assert answer.status == 422
    assert answer.message == (
        'CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Strikt": '
        'supported values: "Ignore", "Warn", "Strict"'
    )


def test_strict_patch_refuses_unknown_fields(cluster: RunningSandbox, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    assert request(cluster, "POST", path, configmap("patched", data={"a": "b"})).status == 201
    answer = request(
        cluster,
        "PATCH",
        f"{path}/patched",
        json.dumps({"dataa": {"x": "y"}}),
        "application/merge-patch+json",
        fieldValidation="Strict",
    )
    assert (answer.status, answer.message) == (400, 'strict decoding error: unknown field "dataa"')


def test_kubectl_apply_refuses_unknown_fields(cluster: RunningSandbox, tmp_path: Path, ns: str) -> None:
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text(_deployment_yaml(ns, "spec.replicaz"))
    refused = cluster.kubectl("apply", "-f", str(manifest), check=False)
    assert refused.returncode == 1
    assert (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.replicaz"'
    ) in refused.stderr
    assert cluster.kubectl("get", "deploy", "-n", ns, "-o", "name").stdout == ""
    server_side = cluster.kubectl("apply", "--server-side", "-f", str(manifest), check=False)
    assert server_side.returncode == 1
    assert (
        "failed to create typed patch object (apps/v1, Kind=Deployment): .spec.replicaz: field not declared in schema"
        in server_side.stderr
    )


def test_kubectl_prints_warnings_and_the_field_is_not_stored(cluster: RunningSandbox, tmp_path: Path, ns: str) -> None:
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text(_deployment_yaml(ns, "spec.replicaz"))
    applied = cluster.kubectl("apply", "--validate=warn", "-f", str(manifest))
    assert 'Warning: unknown field "spec.replicaz"' in applied.stderr
    stored = json.loads(cluster.kubectl("get", "deploy", "web", "-n", ns, "-o", "json").stdout)
    assert "replicaz" not in stored["spec"]


def _deployment_yaml(ns: str, extra: str = "", selector: str = "web") -> str:
    unknown = "  replicaz: 2\n" if extra == "spec.replicaz" else ""
    return (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n{unknown}"
        f"  selector:\n    matchLabels:\n      app: {selector}\n  template:\n    metadata:\n      labels:\n"
        f"        app: {selector}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n"
    )


# -- bodies the decoder refuses ------------------------------------------------------------------------


def test_labels_given_as_a_list_are_a_decode_error(cluster: RunningSandbox, ns: str) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "l", "labels": ["a"]}})
    answer = request(cluster, "POST", f"/api/v1/namespaces/{ns}/configmaps", body)
    assert answer.status == 400
    assert answer.message == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal array into Go '
        "struct field ObjectMeta.metadata.labels of type map[string]string"
    )


@pytest.mark.parametrize(
    ("literal", "error"),
    [
        ("NaN", "invalid character 'N' looking for beginning of value"),
        ("Infinity", "invalid character 'I' looking for beginning of value"),
        ("-Infinity", "invalid character 'I' in numeric literal"),
    ],
)
def test_nan_and_infinity_are_not_json(cluster: RunningSandbox, ns: str, literal: str, error: str) -> None:
    body = '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"nan"},"data":{"a":' + literal + "}}"
    answer = request(cluster, "POST", f"/api/v1/namespaces/{ns}/configmaps", body)
    assert answer.status == 400
    assert answer.message == (
        f"the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; "
        f'json parse error: {error} ({{"apiVersion":"v1","kind":"Con ...)'
    )
    assert request(cluster, "GET", f"/api/v1/namespaces/{ns}/configmaps/nan").status == 404
    assert cluster.kubectl("get", "cm", "-n", ns).returncode == 0


def test_deep_nesting_is_refused(cluster: RunningSandbox, ns: str) -> None:
    depth = 10_001
    body = '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"deep"},"x":' + "[" * depth + "]" * depth + "}"
    answer = request(cluster, "POST", f"/api/v1/namespaces/{ns}/configmaps", body)
    assert answer.status == 400 and answer.json["kind"] == "Status"
    assert "json parse error: exceeded max depth" in answer.message


def test_yaml_alias_bombs_are_refused_not_expanded(cluster: RunningSandbox, ns: str) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        previous = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    bomb = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\n" + "\n".join(lines) + "\n"
    answer = request(cluster, "POST", f"/api/v1/namespaces/{ns}/configmaps", bomb, "application/yaml")
    assert answer.status == 400
    assert answer.message.startswith(
        "the object provided is unrecognized (must be of type ConfigMap): yaml: document contains excessive aliasing"
    )
    # A document with a few anchors is fine.
    small = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: small\n  labels: &l {app: x}\n  annotations: *l\n"
    created = request(cluster, "POST", f"/api/v1/namespaces/{ns}/configmaps", small, "application/yaml")
    assert created.status == 201 and created.json["metadata"]["annotations"] == {"app": "x"}


# -- query values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "query", "message"),
    [
        ("GET", {"limit": "x"}, 'strconv.ParseInt: parsing "x": invalid syntax'),
        ("GET", {"watch": "1", "timeoutSeconds": "x"}, 'strconv.ParseInt: parsing "x": invalid syntax'),
        ("GET", {"watch": "maybe"}, 'strconv.ParseBool: parsing "maybe": invalid syntax'),
        ("DELETE", {"gracePeriodSeconds": "x"}, 'strconv.ParseInt: parsing "x": invalid syntax'),
    ],
)
def test_bad_query_values_are_400_statuses(
    cluster: RunningSandbox, method: str, query: dict[str, str], message: str
) -> None:
    answer = request(cluster, method, "/api/v1/namespaces/default/configmaps", **query)
    assert answer.headers["content-type"][0].startswith("application/json")
    assert (answer.status, answer.json["kind"], answer.json["code"], answer.message) == (400, "Status", 400, message)


def test_a_bad_label_selector_is_a_400_status(cluster: RunningSandbox) -> None:
    answer = request(cluster, "GET", "/api/v1/namespaces/default/pods", labelSelector="a%20in%20(")
    assert (answer.status, answer.json["kind"], answer.json["reason"]) == (400, "Status", "BadRequest")


# -- Status bodies ---------------------------------------------------------------------------------


def test_status_bodies_are_byte_for_byte_kube_apiservers(cluster: RunningSandbox, ns: str) -> None:
    missing = request(cluster, "GET", f"/api/v1/namespaces/{ns}/configmaps/nope")
    assert missing.body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \\"nope\\" '
        b'not found","reason":"NotFound","details":{"name":"nope","kind":"configmaps"},"code":404}\n'
    )
    apps = request(cluster, "GET", f"/apis/apps/v1/namespaces/{ns}/deployments/nope")
    assert apps.body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"deployments.apps '
        b'\\"nope\\" not found","reason":"NotFound","details":{"name":"nope","group":"apps","kind":"deployments"},'
        b'"code":404}\n'
    )


# -- names, labels, annotations --------------------------------------------------------------------


def test_names_of_64_characters_are_refused_for_namespaces_and_services(cluster: RunningSandbox, ns: str) -> None:
    core = client.CoreV1Api(cluster.api)
    long = "a" * 64
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_service(ns, _service(long))
    assert caught.value.status == 422
    assert _message(caught.value) == (
        f'Service "{long}" is invalid: metadata.name: Invalid value: "{long}": must be no more than 63 characters'
    )
    with pytest.raises(ApiException) as caught:
        core.create_namespace({"metadata": {"name": long}})
    assert caught.value.status == 422
    assert f'metadata.name: Invalid value: "{long}": must be no more than 63 characters' in _message(caught.value)


def test_a_service_name_must_be_a_dns_1035_label(cluster: RunningSandbox, ns: str) -> None:
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(cluster.api).create_namespaced_service(ns, _service("1svc"))
    assert caught.value.status == 422
    assert (
        _message(caught.value) == f'Service "1svc" is invalid: metadata.name: Invalid value: "1svc": {DNS1035_MESSAGE}'
    )
    manifest = json.dumps({"apiVersion": "v1", "kind": "Service", **_service("1svc")})
    refused = cluster.kubectl("apply", "-n", ns, "-f", "-", input=manifest, check=False)
    assert refused.returncode == 1
    assert f'The Service "1svc" is invalid: metadata.name: Invalid value: "1svc": {DNS1035_MESSAGE}' in refused.stderr


def test_a_label_value_with_a_space_is_refused(cluster: RunningSandbox, ns: str) -> None:
    body = {"metadata": {"name": "spaced", "labels": {"tier": "a b"}}}
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(cluster.api).create_namespaced_config_map(ns, body)
    assert caught.value.status == 422
    assert _message(caught.value) == (
        f'ConfigMap "spaced" is invalid: metadata.labels: Invalid value: "a b": {LABEL_VALUE_MESSAGE}'
    )
    causes = json.loads(caught.value.body)["details"]["causes"]
    assert causes == [
        {
            "reason": "FieldValueInvalid",
            "message": f'Invalid value: "a b": {LABEL_VALUE_MESSAGE}',
            "field": "metadata.labels",
        }
    ]


def test_annotations_over_256_kib_are_refused(cluster: RunningSandbox, ns: str) -> None:
    body = {"metadata": {"name": "big", "annotations": {"a": "x" * (256 * 1024)}}}
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(cluster.api).create_namespaced_config_map(ns, body)
    assert caught.value.status == 422
    assert _message(caught.value) == (
        'ConfigMap "big" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes'
    )


def test_an_external_name_service_needs_its_external_name(cluster: RunningSandbox, ns: str) -> None:
    body = {"metadata": {"name": "ext"}, "spec": {"type": "ExternalName"}}
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(cluster.api).create_namespaced_service(ns, body)
    assert caught.value.status == 422
    assert _message(caught.value) == 'Service "ext" is invalid: spec.externalName: Required value'


# -- immutable fields ------------------------------------------------------------------------------


def test_a_deployment_selector_is_immutable(cluster: RunningSandbox, ns: str, tmp_path: Path) -> None:
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text(_deployment_yaml(ns))
    cluster.kubectl("apply", "-f", str(manifest))
    manifest.write_text(_deployment_yaml(ns, selector="other"))
    refused = cluster.kubectl("apply", "-f", str(manifest), check=False)
    assert refused.returncode == 1
    assert (
        'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"other"}, '
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
    ) in refused.stderr


def test_an_immutable_secret_keeps_its_data(cluster: RunningSandbox, ns: str) -> None:
    core = client.CoreV1Api(cluster.api)
    core.create_namespaced_secret(ns, {"metadata": {"name": "fixed"}, "immutable": True, "data": {"k": "djE="}})
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_secret("fixed", ns, {"data": {"k": "djI="}})
    assert caught.value.status == 422
    assert (
        _message(caught.value)
        == 'Secret "fixed" is invalid: data: Forbidden: field is immutable when `immutable` is set'
    )


def test_a_pods_containers_are_immutable_but_its_image_is_not(cluster: RunningSandbox, ns: str) -> None:
    core = client.CoreV1Api(cluster.api)
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
    core.create_namespaced_pod(ns, pod)
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_pod("p", ns, {"spec": {"containers": [{"name": "c", "args": ["sleep", "1"]}]}})
    assert caught.value.status == 422
    assert _message(caught.value).startswith(
        'Pod "p" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`'
    )
    patched = core.patch_namespaced_pod("p", ns, {"spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}})
    assert patched.spec.containers[0].image == "busybox:1.37"


# -- custom resources: structural schemas ----------------------------------------------------------


def test_a_vault_cr_size_must_be_an_integer(cluster: RunningSandbox, ns: str) -> None:
    custom = client.CustomObjectsApi(cluster.api)
    body = _vault(size="one")
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object("vault.banzaicloud.com", "v1alpha1", ns, "vaults", body)
    assert caught.value.status == 422
    assert _message(caught.value) == (
        'Vault.vault.banzaicloud.com "vault" is invalid: spec.size: Invalid value: "string": '
        'spec.size in body must be of type integer: "string"'
    )


def test_a_vault_cr_needs_its_config(cluster: RunningSandbox, ns: str) -> None:
    body = _vault(size=1)
    del body["spec"]["config"]
    with pytest.raises(ApiException) as caught:
        client.CustomObjectsApi(cluster.api).create_namespaced_custom_object(
            "vault.banzaicloud.com", "v1alpha1", ns, "vaults", body
        )
    assert caught.value.status == 422
    assert _message(caught.value) == 'Vault.vault.banzaicloud.com "vault" is invalid: spec.config: Required value'


def test_a_peer_authentication_mode_must_be_one_of_istios(cluster: RunningSandbox, ns: str) -> None:
    manifest = (
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: strict\n"
        f"  namespace: {ns}\nspec:\n  mtls:\n    mode: STRIKT\n"
    )
    refused = cluster.kubectl("apply", "-f", "-", input=manifest, check=False)
    supported = ", ".join(f'"{m}"' for m in MTLS_MODES)
    assert refused.returncode == 1
    assert f'spec.mtls.mode: Unsupported value: "STRIKT": supported values: {supported}' in refused.stderr
    assert cluster.kubectl("get", "pa", "-n", ns, "-o", "name").stdout == ""


def test_unknown_fields_of_custom_resources_are_pruned(cluster: RunningSandbox, ns: str) -> None:
    custom = client.CustomObjectsApi(cluster.api)
    body = _vault(size=1)
    body["spec"]["sizee"] = 3
    body["spec"]["config"] = {"ui": True, "anything": {"goes": 1}}  # preserved: x-kubernetes-preserve-unknown-fields
    custom.create_namespaced_custom_object("vault.banzaicloud.com", "v1alpha1", ns, "vaults", body)
    stored = custom.get_namespaced_custom_object("vault.banzaicloud.com", "v1alpha1", ns, "vaults", "vault")
    assert "sizee" not in stored["spec"]
    assert stored["spec"]["size"] == 1 and stored["spec"]["config"] == {"ui": True, "anything": {"goes": 1}}
    strict = request(
        cluster,
        "PATCH",
        f"/apis/vault.banzaicloud.com/v1alpha1/namespaces/{ns}/vaults/vault",
        json.dumps({"spec": {"sizee": 2}}),
        "application/merge-patch+json",
        fieldValidation="Strict",
    )
    assert (strict.status, strict.message) == (400, 'strict decoding error: unknown field "spec.sizee"')


def _vault(size: Any) -> dict[str, Any]:
    return {
        "apiVersion": "vault.banzaicloud.com/v1alpha1",
        "kind": "Vault",
        "metadata": {"name": "vault"},
        "spec": {"size": size, "image": "hashicorp/vault:1.21.4", "istioEnabled": True, "config": {"ui": True}},
    }


def _service(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}


def _message(exc: ApiException) -> str:
    return str(json.loads(exc.body)["message"])
