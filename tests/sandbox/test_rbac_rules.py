"""The RBAC evaluator without a server: how a request path becomes attributes, how rules match them, and
how a refusal is worded, each against what kube-apiserver does."""

from __future__ import annotations

import pytest

from meshbook.sandbox.apiserver.authorization.attributes import Attributes, forbidden, request_attributes
from meshbook.sandbox.apiserver.authorization.impersonation import impersonated_user
from meshbook.sandbox.apiserver.authorization.rbac import RBACAuthorizer, rule_allows
from meshbook.sandbox.apiserver.authorization.user import ADMIN, UserInfo, service_account_user
from meshbook.sandbox.storage.resources import ResourceRegistry
from meshbook.sandbox.storage.store import Store, StoreError

APP = service_account_user("app", "default")


def attrs(method: str, path: str, **query: str) -> Attributes:
    return request_attributes(APP, method, path, query)


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/pods", {}, ("list", "", "", "pods", "", "")),
        ("GET", "/api/v1/namespaces/app/pods", {"watch": "true"}, ("watch", "app", "", "pods", "", "")),
        ("GET", "/api/v1/watch/namespaces/app/pods", {}, ("watch", "app", "", "pods", "", "")),
        ("DELETE", "/api/v1/namespaces/app/pods", {}, ("deletecollection", "app", "", "pods", "", "")),
        ("GET", "/api/v1/namespaces/app/pods", {"fieldSelector": "metadata.name=web"},
         ("list", "app", "", "pods", "", "web")),
        ("GET", "/api/v1/namespaces/app", {}, ("get", "app", "", "namespaces", "", "app")),
        ("PUT", "/api/v1/namespaces/app/finalize", {}, ("update", "app", "", "namespaces", "finalize", "app")),
        ("GET", "/api/v1/namespaces/app/pods/web/exec", {}, ("create", "app", "", "pods", "exec", "web")),
        ("PATCH", "/apis/apps/v1/namespaces/app/deployments/web/scale", {},
         ("patch", "app", "apps", "deployments", "scale", "web")),
        ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {},
         ("create", "", "authorization.k8s.io", "selfsubjectaccessreviews", "", "")),
    ],
)  # fmt: skip
def test_request_attributes_as_request_info_parses_them(
    method: str, path: str, query: dict[str, str], expected: tuple[str, ...]
) -> None:
    got = attrs(method, path, **query)
    assert got.resource_request
    assert (got.verb, got.namespace, got.api_group, got.resource, got.subresource, got.name) == expected


@pytest.mark.parametrize("path", ["/version", "/api", "/api/v1", "/apis", "/apis/apps", "/apis/apps/v1", "/openapi/v3"])
def test_discovery_paths_are_non_resource_requests(path: str) -> None:
    got = attrs("GET", path)
    assert (got.resource_request, got.verb, got.path) == (False, "get", path)


def test_rules_do_not_match_what_they_do_not_name() -> None:
    secrets = attrs("GET", "/api/v1/namespaces/vault/secrets/keys")
    assert not rule_allows(secrets, {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]})
    assert not rule_allows(secrets, {"verbs": ["list"], "apiGroups": [""], "resources": ["secrets"]})
    assert not rule_allows(secrets, {"verbs": ["get"], "apiGroups": ["apps"], "resources": ["secrets"]})
    assert not rule_allows(
        secrets, {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["x"]}
    )
    log = attrs("GET", "/api/v1/namespaces/app/pods/web/log")
    assert not rule_allows(log, {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]})  # no subresources
    assert not rule_allows(attrs("GET", "/logs"), {"verbs": ["get"], "nonResourceURLs": ["/log"]})
    assert rule_allows(
        secrets, {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["keys"]}
    )
    assert rule_allows(log, {"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]})
    assert rule_allows(log, {"verbs": ["get"], "apiGroups": [""], "resources": ["*/log"]})
    assert rule_allows(log, {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
    assert rule_allows(attrs("GET", "/logs/kubelet"), {"verbs": ["get"], "nonResourceURLs": ["/logs/*"]})


@pytest.mark.parametrize(
    ("method", "path", "message", "details"),
    [
        (
            "GET", "/api/v1/namespaces/vault/secrets/vault-unseal-keys",
            'secrets "vault-unseal-keys" is forbidden: User "system:serviceaccount:app:default" cannot get resource '
            '"secrets" in API group "" in the namespace "vault"',
            {"name": "vault-unseal-keys", "kind": "secrets"},
        ),
        (
            "GET", "/apis/apps/v1/deployments",
            'deployments.apps is forbidden: User "system:serviceaccount:app:default" cannot list resource '
            '"deployments" in API group "apps" at the cluster scope',
            {"group": "apps", "kind": "deployments"},
        ),
        (
            "POST", "/api/v1/namespaces/app/pods/web/portforward",
            'pods "web" is forbidden: User "system:serviceaccount:app:default" cannot create resource '
            '"pods/portforward" in API group "" in the namespace "app"',
            {"name": "web", "kind": "pods"},
        ),
        ("GET", "/metrics", 'forbidden: User "system:serviceaccount:app:default" cannot get path "/metrics"', {}),
    ],
)  # fmt: skip
def test_refusals_are_worded_as_kube_apiserver_words_them(
    method: str, path: str, message: str, details: dict[str, str]
) -> None:
    error = forbidden(attrs(method, path))
    assert (error.code, error.reason, error.message, error.details) == (403, "Forbidden", message, details)


@pytest.fixture
def authorizer() -> RBACAuthorizer:
    return RBACAuthorizer(Store(), ResourceRegistry())


def test_nobody_but_the_privileged_group_is_allowed_without_bindings(authorizer: RBACAuthorizer) -> None:
    assert not authorizer.authorize(attrs("GET", "/api/v1/namespaces/app/pods")).allowed
    assert not authorizer.authorize(attrs("GET", "/version")).allowed
    admin = request_attributes(ADMIN, "DELETE", "/api/v1/namespaces/kube-system", {})
    assert authorizer.authorize(admin).allowed


def test_impersonation_needs_the_impersonate_verb(authorizer: RBACAuthorizer) -> None:
    with pytest.raises(StoreError) as caught:
        impersonated_user(authorizer, APP, "jane", [], None, {})
    assert caught.value.message == (
        'users "jane" is forbidden: User "system:serviceaccount:app:default" cannot impersonate resource "users" '
        'in API group "" at the cluster scope'
    )
    with pytest.raises(StoreError) as caught:
        impersonated_user(authorizer, ADMIN, None, ["team"], None, {})
    assert caught.value.code == 400
    as_sa = impersonated_user(authorizer, ADMIN, "system:serviceaccount:vault:vault", [], None, {})
    assert as_sa == UserInfo(
        "system:serviceaccount:vault:vault",
        ("system:serviceaccounts", "system:serviceaccounts:vault", "system:authenticated"),
    )
    assert impersonated_user(authorizer, ADMIN, "jane", ["team"], None, {}).groups == ("team", "system:authenticated")
