"""The ClusterRoles and ClusterRoleBindings every cluster starts with (upstream's bootstrap policy), as data.

Only the roles a user of this sandbox meets are here: `cluster-admin`, the aggregated `admin`, `edit` and
`view` (filled from the `system:aggregate-to-*` roles and any ClusterRole labelled like them), and the
`system:` roles that authenticated users and service accounts get (discovery, public info, basic-user,
auth-delegator, issuer discovery). Like kube-apiserver, the server creates missing ones at start.
"""

from __future__ import annotations

from typing import Any, Final

from meshbook.sandbox.apiserver.authorization.rbac import GROUP
from meshbook.sandbox.apiserver.authorization.user import AUTHENTICATED, MASTERS, SERVICE_ACCOUNTS, UNAUTHENTICATED
from meshbook.sandbox.apiserver.verbs import ApiCore

Object = dict[str, Any]

AGGREGATE_TO: Final = "rbac.authorization.k8s.io/aggregate-to-"
READ: Final = ("get", "list", "watch")
WRITE: Final = ("create", "delete", "deletecollection", "patch", "update")
ALL: Final = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


def _rule(verbs: tuple[str, ...], group: str, *resources: str) -> Object:
    return {"verbs": list(verbs), "apiGroups": [group], "resources": list(resources)}


def _urls(verbs: tuple[str, ...], *urls: str) -> Object:
    return {"verbs": list(verbs), "nonResourceURLs": list(urls)}


def _with_status(*resources: str) -> tuple[str, ...]:
    return tuple(x for r in resources for x in (r, f"{r}/status"))


# name -> (labels beyond the bootstrapping one, rules, aggregate-to selector or None)
_ROLES: Final[dict[str, tuple[dict[str, str], list[Object], str | None]]] = {
    "cluster-admin": ({}, [_rule(("*",), "*", "*"), _urls(("*",), "*")], None),
    "admin": ({}, [], "admin"),
    "edit": ({f"{AGGREGATE_TO}admin": "true"}, [], "edit"),
    "view": ({f"{AGGREGATE_TO}edit": "true"}, [], "view"),
    "system:aggregate-to-admin": (
        {f"{AGGREGATE_TO}admin": "true"},
        [
            _rule(("create",), "authorization.k8s.io", "localsubjectaccessreviews"),
            _rule(ALL, GROUP, "rolebindings", "roles"),
        ],
        None,
    ),
    "system:aggregate-to-edit": (
        {f"{AGGREGATE_TO}edit": "true"},
        [
            _rule(READ, "", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"),
            _rule(("impersonate",), "", "serviceaccounts"),
            _rule(WRITE, "", "pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"),
            _rule(("create",), "", "pods/eviction"),
            _rule(
                WRITE, "", "configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy",
            ),
            _rule(("create",), "", "serviceaccounts/token"),
            _rule(
                WRITE, "apps", "daemonsets", "deployments", "deployments/rollback", "deployments/scale",
                "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale",
            ),
            _rule(WRITE, "autoscaling", "horizontalpodautoscalers"),
            _rule(WRITE, "batch", "cronjobs", "jobs"),
            _rule(WRITE, "policy", "poddisruptionbudgets"),
            _rule(WRITE, "networking.k8s.io", "ingresses", "networkpolicies"),
            _rule(WRITE, "coordination.k8s.io", "leases"),
        ],
        None,
    ),
    "system:aggregate-to-view": (
        {f"{AGGREGATE_TO}view": "true"},
        [
            _rule(
                READ, "", "configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status",
                "pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
                "services/status",
            ),
            _rule(
                READ, "", "bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
                "replicationcontrollers/status", "resourcequotas", "resourcequotas/status",
            ),
            _rule(READ, "", "namespaces"),
            _rule(READ, "discovery.k8s.io", "endpointslices"),
            _rule(
                READ, "apps", *_with_status("controllerrevisions", "daemonsets", "deployments", "replicasets",
                "statefulsets"), "deployments/scale", "replicasets/scale", "statefulsets/scale",
            ),
            _rule(READ, "autoscaling", *_with_status("horizontalpodautoscalers")),
            _rule(READ, "batch", *_with_status("cronjobs", "jobs")),
            _rule(READ, "policy", *_with_status("poddisruptionbudgets")),
            _rule(READ, "networking.k8s.io", *_with_status("ingresses"), "networkpolicies"),
            _rule(READ, "coordination.k8s.io", "leases"),
        ],
        None,
    ),
    "system:auth-delegator": (
        {},
        [
            _rule(("create",), "authentication.k8s.io", "tokenreviews"),
            _rule(("create",), "authorization.k8s.io", "subjectaccessreviews"),
        ],
        None,
    ),
    "system:basic-user": (
        {},
        [
            _rule(("create",), "authorization.k8s.io", "selfsubjectaccessreviews", "selfsubjectrulesreviews"),
            _rule(("create",), "authentication.k8s.io", "selfsubjectreviews"),
        ],
        None,
    ),
    "system:discovery": (
        {},
        [_urls(("get",), "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
               "/readyz", "/version", "/version/")],
        None,
    ),
    "system:public-info-viewer": (
        {}, [_urls(("get",), "/healthz", "/livez", "/readyz", "/version", "/version/")], None,
    ),
    "system:service-account-issuer-discovery": (
        {},
        [_urls(("get",), "/.well-known/openid-configuration", "/.well-known/openid-configuration/",
               "/openid/v1/jwks", "/openid/v1/jwks/")],
        None,
    ),
}  # fmt: skip

# ClusterRoleBinding name (= its ClusterRole) -> the groups it binds.
_BINDINGS: Final[dict[str, tuple[str, ...]]] = {
    "cluster-admin": (MASTERS,),
    "system:basic-user": (AUTHENTICATED,),
    "system:discovery": (AUTHENTICATED,),
    "system:public-info-viewer": (AUTHENTICATED, UNAUTHENTICATED),
    "system:service-account-issuer-discovery": (SERVICE_ACCOUNTS,),
}

_BOOTSTRAP_META: Final = {
    "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
    "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
}


def cluster_roles() -> list[Object]:
    out = []
    for name, (labels, rules, aggregate) in _ROLES.items():
        role: Object = {
            "apiVersion": f"{GROUP}/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": name,
                "labels": {**_BOOTSTRAP_META["labels"], **labels},
                "annotations": dict(_BOOTSTRAP_META["annotations"]),
            },
            "rules": rules,
        }
        if aggregate:
            selector = {"matchLabels": {f"{AGGREGATE_TO}{aggregate}": "true"}}
            role["aggregationRule"] = {"clusterRoleSelectors": [selector]}
        out.append(role)
    return out


def cluster_role_bindings() -> list[Object]:
    return [
        {
            "apiVersion": f"{GROUP}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name, **{k: dict(v) for k, v in _BOOTSTRAP_META.items()}},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": group} for group in groups],
        }
        for name, groups in _BINDINGS.items()
    ]


async def ensure_bootstrap_policy(core: ApiCore) -> None:
    """Create the bootstrap roles and bindings that are missing (kube-apiserver's storage_rbac post-start hook)."""
    for plural, objects in (("clusterroles", cluster_roles()), ("clusterrolebindings", cluster_role_bindings())):
        rt = core.registry.lookup(GROUP, "v1", plural)
        assert rt is not None, plural
        for obj in objects:
            if core.store.get(rt, "", obj["metadata"]["name"]) is None:
                await core.create(rt, "", obj)
