"""RBAC on the sandbox as on a cluster: a service account's token may do only what its bindings grant,
refusals are worded as kube-apiserver words them, `kubectl auth can-i` (with `--as`, `--as-group`,
`--list`) answers from the same rules with kubectl 1.28 and 1.33, and ClusterRoles aggregate."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from meshbook.sandbox import control
from tests.sandbox.conftest import RunningSandbox, start_sandbox, wait_for

pytestmark = pytest.mark.slow

APP_SA = "system:serviceaccount:app:default"
RBAC = "rbac.authorization.k8s.io"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """One sandbox (kubectl 1.33) with namespaces vault and app and the Secret the unseal keys live in."""
    running = start_sandbox(tmp_path_factory.mktemp("rbac"))
    try:
        core = client.CoreV1Api(running.api)
        for ns in ("vault", "app"):
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        core.create_namespaced_secret(
            "vault",
            client.V1Secret(metadata=client.V1ObjectMeta(name="vault-unseal-keys"), string_data={"k": "v"}),
        )
        wait_for(
            core.list_namespaced_service_account,
            lambda sa: sa.metadata.name == "default",  # type: ignore[union-attr]
            namespace="app",
        )
        yield running
    finally:
        running.api.close()
        control.down(running.info.state_dir)


def as_token(sandbox: RunningSandbox, namespace: str, name: str) -> client.ApiClient:
    """The official client authenticated with a service account's token, as a pod would be."""
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    token = client.CoreV1Api(sandbox.api).create_namespaced_service_account_token(name, namespace, request)
    configuration = client.Configuration()
    base = sandbox.api.configuration
    configuration.host, configuration.ssl_ca_cert = base.host, base.ssl_ca_cert
    configuration.api_key = {"authorization": f"Bearer {token.status.token}"}
    return client.ApiClient(configuration)


@pytest.fixture(scope="module")
def app(cluster: RunningSandbox) -> Iterator[client.ApiClient]:
    api = as_token(cluster, "app", "default")
    yield api
    api.close()


def raw(api: client.ApiClient, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One HTTP request with the client's credentials: the status and the JSON body (or text)."""
    configuration = api.configuration
    request = urllib.request.Request(
        configuration.host + path,
        method=method,
        headers={"Authorization": configuration.api_key["authorization"], **(headers or {})},
    )
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    try:
        with urllib.request.urlopen(request, context=context, timeout=60) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def refusal(caught: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    assert caught.value.status == 403, caught.value.body
    body: dict[str, Any] = json.loads(caught.value.body)
    return body


# -- refusals first -----------------------------------------------------------------------------------


def test_the_apps_token_cannot_read_the_unseal_keys(app: client.ApiClient) -> None:
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(app).read_namespaced_secret("vault-unseal-keys", "vault")
    body = refusal(caught)
    assert body["message"] == (
        f'secrets "vault-unseal-keys" is forbidden: User "{APP_SA}" cannot get resource "secrets" '
        'in API group "" in the namespace "vault"'
    )
    assert (body["kind"], body["status"], body["reason"], body["code"]) == ("Status", "Failure", "Forbidden", 403)
    assert body["details"] == {"name": "vault-unseal-keys", "kind": "secrets"}


def test_the_apps_token_cannot_list_pods_at_the_cluster_scope(app: client.ApiClient) -> None:
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(app).list_pod_for_all_namespaces()
    body = refusal(caught)
    assert body["message"] == (
        f'pods is forbidden: User "{APP_SA}" cannot list resource "pods" in API group "" at the cluster scope'
    )
    assert body["details"] == {"kind": "pods"}


def test_the_apps_token_cannot_exec_nor_port_forward(app: client.ApiClient) -> None:
    for sub in ("exec", "portforward"):
        status, body = raw(app, "POST", f"/api/v1/namespaces/app/pods/web/{sub}")
        assert status == 403 and body["message"] == (
            f'pods "web" is forbidden: User "{APP_SA}" cannot create resource "pods/{sub}" in API group "" '
            'in the namespace "app"'
        )


def test_the_apps_token_cannot_review_tokens_or_impersonate(app: client.ApiClient) -> None:
    review = client.V1TokenReview(spec=client.V1TokenReviewSpec(token="x"))
    with pytest.raises(ApiException) as caught:
        client.AuthenticationV1Api(app).create_token_review(review)
    body = refusal(caught)
    assert body["message"] == (
        f'tokenreviews.authentication.k8s.io is forbidden: User "{APP_SA}" cannot create resource "tokenreviews" '
        'in API group "authentication.k8s.io" at the cluster scope'
    )
    assert body["details"] == {"group": "authentication.k8s.io", "kind": "tokenreviews"}
    status, body = raw(app, "GET", "/api/v1/namespaces/app/pods", {"Impersonate-User": "jane"})
    assert status == 403 and body["message"] == (
        f'users "jane" is forbidden: User "{APP_SA}" cannot impersonate resource "users" in API group "" '
        "at the cluster scope"
    )


def test_a_path_outside_the_discovery_roles_is_forbidden(app: client.ApiClient) -> None:
    status, body = raw(app, "GET", "/logs/")
    assert status == 403 and body["reason"] == "Forbidden"
    assert body["message"] == f'forbidden: User "{APP_SA}" cannot get path "/logs/"'
    assert body["details"] == {}
    assert raw(app, "GET", "/version")[0] == 200  # system:public-info-viewer


def test_a_binding_to_a_missing_role_says_so(cluster: RunningSandbox, app: client.ApiClient) -> None:
    cluster.kubectl(
        "create", "rolebinding", "dangling", "--clusterrole=nope", "--serviceaccount=app:default", "-n", "app"
    )
    try:
        with pytest.raises(ApiException) as caught:
            client.CoreV1Api(app).list_namespaced_config_map("app")
        assert refusal(caught)["message"].endswith(f'in the namespace "app": RBAC: clusterrole.{RBAC} "nope" not found')
    finally:
        cluster.kubectl("delete", "rolebinding", "dangling", "-n", "app")


# -- kubectl auth can-i -----------------------------------------------------------------------------


def can_i(sandbox: RunningSandbox, *args: str) -> tuple[int, str]:
    proc = sandbox.kubectl("auth", "can-i", *args, check=False)
    return proc.returncode, proc.stdout.strip() or proc.stderr.strip()


def test_can_i_as_the_apps_service_account(cluster: RunningSandbox) -> None:
    assert can_i(cluster, "get", "secrets", "-n", "vault", "--as", APP_SA) == (1, "no")
    assert can_i(cluster, "list", "pods", "--all-namespaces", "--as", APP_SA) == (1, "no")
    assert can_i(cluster, "create", "selfsubjectaccessreviews.authorization.k8s.io", "--as", APP_SA) == (0, "yes")
    assert can_i(cluster, "get", "/version", "--as", APP_SA) == (0, "yes")
    assert can_i(cluster, "get", "secrets", "-n", "vault") == (0, "yes")  # the kubeconfig user: system:masters


@pytest.fixture(scope="module")
def cluster_1_28(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """A second sandbox reporting 1.28, so the dispatcher runs kubectl 1.28 (JSON bodies, not protobuf)."""
    running = start_sandbox(tmp_path_factory.mktemp("rbac-1.28"), kubernetes_version="1.28")
    try:
        yield running
    finally:
        running.api.close()
        control.down(running.info.state_dir)


def test_can_i_with_kubectl_1_28(cluster_1_28: RunningSandbox) -> None:
    sandbox = cluster_1_28
    assert sandbox.kubectl("version", "--client", "-o", "json").stdout.count('"minor": "28"') == 1
    sandbox.kubectl("create", "namespace", "vault")
    assert can_i(sandbox, "get", "secrets", "-n", "vault", "--as", APP_SA) == (1, "no")
    sandbox.kubectl("create", "role", "secrets", "--verb=get", "--resource=secrets", "-n", "vault")
    sandbox.kubectl("create", "rolebinding", "secrets", "--role=secrets", "--serviceaccount=app:default", "-n", "vault")
    assert can_i(sandbox, "get", "secrets", "-n", "vault", "--as", APP_SA) == (0, "yes")
    assert can_i(sandbox, "list", "secrets", "-n", "vault", "--as", APP_SA) == (1, "no")
    sandbox.kubectl("create", "rolebinding", "auditors", "--clusterrole=view", "--group=auditors", "-n", "vault")
    assert can_i(sandbox, "list", "pods", "-n", "vault", "--as", "jane", "--as-group", "auditors") == (0, "yes")
    assert can_i(sandbox, "list", "pods", "-n", "vault", "--as", "jane") == (1, "no")
    listed = sandbox.kubectl("auth", "can-i", "--list", "-n", "vault", "--as", APP_SA).stdout
    assert any(line.split()[:1] == ["secrets"] and "[get]" in line for line in listed.splitlines())


def test_whoami_names_the_impersonated_service_account(cluster: RunningSandbox) -> None:
    out = json.loads(cluster.kubectl("auth", "whoami", "--as", APP_SA, "-o", "json").stdout)
    assert out["kind"] == "SelfSubjectReview"
    assert out["status"]["userInfo"] == {
        "username": APP_SA,
        "groups": ["system:serviceaccounts", "system:serviceaccounts:app", "system:authenticated"],
    }


def test_can_i_list_shows_the_service_accounts_rules(cluster: RunningSandbox) -> None:
    listed = cluster.kubectl("auth", "can-i", "--list", "-n", "app", "--as", APP_SA).stdout.splitlines()
    header, rows = listed[0].split(), [line.split() for line in listed[1:]]
    assert header == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    assert ["selfsubjectaccessreviews.authorization.k8s.io", "[]", "[]", "[create]"] in rows
    assert ["[/version]", "[]", "[get]"] in rows
    assert not any(row[0] == "secrets" for row in rows)


def test_a_role_binding_to_a_group_grants_in_its_namespace_only(cluster: RunningSandbox) -> None:
    as_jane = ("--as", "jane", "--as-group", "auditors")
    assert can_i(cluster, "list", "configmaps", "-n", "app", *as_jane) == (1, "no")
    cluster.kubectl("create", "role", "cm-reader", "--verb=get,list", "--resource=configmaps", "-n", "app")
    cluster.kubectl("create", "rolebinding", "cm-reader", "--role=cm-reader", "--group=auditors", "-n", "app")
    assert can_i(cluster, "list", "configmaps", "-n", "app", *as_jane) == (0, "yes")
    assert can_i(cluster, "list", "configmaps", "-n", "vault", *as_jane) == (1, "no")
    assert can_i(cluster, "delete", "configmaps", "-n", "app", *as_jane) == (1, "no")
    assert can_i(cluster, "list", "configmaps", "-n", "app", "--as", "jane") == (1, "no")  # not in the group


def test_a_cluster_role_labelled_aggregate_to_view_joins_view(cluster: RunningSandbox) -> None:
    cluster.kubectl("create", "clusterrolebinding", "bob-views", "--clusterrole=view", "--user=bob")
    assert can_i(cluster, "list", "leases.coordination.k8s.io", "--as", "bob") == (0, "yes")  # bootstrap view
    assert can_i(cluster, "get", "secrets", "-n", "app", "--as", "bob") == (1, "no")  # view never has secrets
    cluster.kubectl("create", "clusterrole", "secret-viewer", "--verb=get", "--resource=secrets")
    cluster.kubectl("label", "clusterrole", "secret-viewer", f"{RBAC}/aggregate-to-view=true")
    assert can_i(cluster, "get", "secrets", "-n", "app", "--as", "bob") == (0, "yes")
    # The aggregation controller writes the union into view's rules, as `kubectl get` shows it.
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    wanted = {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}
    wait_for(
        rbac.list_cluster_role,
        lambda role: any(
            cluster.api.sanitize_for_serialization(rule) == wanted
            for rule in (role.rules or [])  # type: ignore[union-attr]
        ),
        field_selector="metadata.name=view",
    )
    # `edit` aggregates `view`, and `admin` aggregates `edit`: the new rule reaches both.
    assert can_i(cluster, "get", "secrets", "-n", "app", "--as", "bob") == (0, "yes")
    cluster.kubectl("delete", "clusterrole", "secret-viewer")
    assert can_i(cluster, "get", "secrets", "-n", "app", "--as", "bob") == (1, "no")


def test_a_service_account_does_what_its_binding_grants(cluster: RunningSandbox, app: client.ApiClient) -> None:
    core = client.CoreV1Api(app)
    with pytest.raises(ApiException):
        core.list_namespaced_pod("app")
    cluster.kubectl(
        "create", "rolebinding", "app-view", "--clusterrole=view", "--serviceaccount=app:default", "-n", "app"
    )
    assert core.list_namespaced_pod("app").items == []
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_pod("vault")
    assert refusal(caught)["message"].endswith('cannot list resource "pods" in API group "" in the namespace "vault"')


def test_subject_access_review_needs_auth_delegator(cluster: RunningSandbox) -> None:
    cluster.kubectl("create", "serviceaccount", "delegate", "-n", "app")
    api = as_token(cluster, "app", "delegate")
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=APP_SA,
            resource_attributes=client.V1ResourceAttributes(verb="get", resource="secrets", namespace="vault"),
        )
    )
    try:
        with pytest.raises(ApiException) as caught:
            client.AuthorizationV1Api(api).create_subject_access_review(review)
        assert 'cannot create resource "subjectaccessreviews"' in refusal(caught)["message"]
        cluster.kubectl(
            "create", "clusterrolebinding", "delegate", "--clusterrole=system:auth-delegator",
            "--serviceaccount=app:delegate",
        )  # fmt: skip
        answer = client.AuthorizationV1Api(api).create_subject_access_review(review)
        assert answer.status.allowed is False
    finally:
        api.close()
