"""Read-only discovery of what decides secret delivery in a cluster: Istio, Bank-Vaults, Vault, workloads.

Everything here is a get or a list through the official client, never of Secrets; the one request with
a body is a SubjectAccessReview, which the API server answers without storing anything. A list the
caller may not read (403) or a kind the cluster does not serve (404) is kept as a `Gap` saying which
check could not run, so the audit reports it instead of failing with a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from meshbook import __version__
from meshbook.kube.client import api_message

Obj = dict[str, Any]

USER_AGENT = f"meshbook-audit/{__version__}"
"""Every audit request carries it, so a server's request log can tell the audit's requests apart."""

AUTH_DELEGATOR_CHECK = {"group": "authentication.k8s.io", "resource": "tokenreviews", "verb": "create"}
"""What `system:auth-delegator` grants that Vault's Kubernetes auth needs: TokenReview create."""


@dataclass(frozen=True)
class Gap:
    """A list or review the audit could not make, and the checks that therefore did not run."""

    what: str
    reason: str
    checks: str


@dataclass(frozen=True)
class AccessReview:
    """Whether a service account may create TokenReviews (SubjectAccessReview's answer)."""

    service_account: str  # namespace/name
    allowed: bool
    reason: str


@dataclass
class Discovery:
    """The objects one audit reads, as plain dicts the API serves (the model's inputs read these)."""

    server: str = ""
    namespaces: list[Obj] = field(default_factory=list)
    pods: list[Obj] = field(default_factory=list)
    services: list[Obj] = field(default_factory=list)
    deployments: list[Obj] = field(default_factory=list)
    statefulsets: list[Obj] = field(default_factory=list)
    peer_authentications: list[Obj] = field(default_factory=list)
    webhook_configurations: list[Obj] = field(default_factory=list)
    vaults: list[Obj] = field(default_factory=list)
    access_reviews: list[AccessReview] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)

    def namespace(self, name: str) -> Obj | None:
        return next((n for n in self.namespaces if n["metadata"]["name"] == name), None)

    def service(self, namespace: str, name: str) -> Obj | None:
        return next(
            (s for s in self.services if s["metadata"]["name"] == name and s["metadata"].get("namespace") == namespace),
            None,
        )

    def pods_of(self, namespace: str, selector: Mapping[str, str]) -> list[Obj]:
        """Pods in `namespace` whose labels hold `selector` (not being deleted), in name order."""
        return sorted(
            (
                p
                for p in self.pods
                if p["metadata"].get("namespace") == namespace
                and selector
                and all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
                and not p["metadata"].get("deletionTimestamp")
            ),
            key=lambda p: str(p["metadata"]["name"]),
        )


def _raw(response: Any) -> Obj:
    data: Obj = json.loads(response.data)
    return data


def _items(found: Any) -> list[Obj]:
    items: list[Obj] = (found if isinstance(found, dict) else _raw(found)).get("items") or []
    return items


# (attribute, what it lists, checks that need it, the call); custom resources try their versions in order.
def _lists(api: client.ApiClient) -> list[tuple[str, str, str, Callable[[], list[Obj]]]]:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    admission = client.AdmissionregistrationV1Api(api)
    custom = client.CustomObjectsApi(api)

    def crs(group: str, versions: tuple[str, ...], plural: str) -> Callable[[], list[Obj]]:
        def listed() -> list[Obj]:
            last: ApiException | None = None
            for version in versions:
                try:
                    return _items(custom.list_cluster_custom_object(group, version, plural))
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                    last = exc
            if last is not None and _kind_not_served(last):
                return []
            raise last if last is not None else RuntimeError(plural)

        return listed

    return [
        ("namespaces", "namespaces", "injection labels", lambda: _items(core.list_namespace(_preload_content=False))),
        (
            "pods",
            "pods",
            "every container check",
            lambda: _items(core.list_pod_for_all_namespaces(_preload_content=False)),
        ),
        (
            "services",
            "services",
            "connectivity",
            lambda: _items(core.list_service_for_all_namespaces(_preload_content=False)),
        ),
        (
            "deployments",
            "deployments.apps",
            "webhook settings, vault-addr",
            lambda: _items(apps.list_deployment_for_all_namespaces(_preload_content=False)),
        ),
        (
            "statefulsets",
            "statefulsets.apps",
            "vault-addr",
            lambda: _items(apps.list_stateful_set_for_all_namespaces(_preload_content=False)),
        ),
        (
            "peer_authentications",
            "peerauthentications.security.istio.io",
            "mTLS",
            crs("security.istio.io", ("v1", "v1beta1"), "peerauthentications"),
        ),
        (
            "webhook_configurations",
            "mutatingwebhookconfigurations.admissionregistration.k8s.io",
            "webhook reachability",
            lambda: _items(admission.list_mutating_webhook_configuration(_preload_content=False)),
        ),
        ("vaults", "vaults.vault.banzaicloud.com", "Vault CR", crs("vault.banzaicloud.com", ("v1alpha1",), "vaults")),
    ]


def _kind_not_served(exc: ApiException) -> bool:
    """A 404 for a whole list means the kind is not installed (no CRD): nothing of it exists."""
    return bool(exc.status == 404)


def discover(api: client.ApiClient) -> Discovery:
    """Read the cluster once; raises only when it cannot be reached at all (the caller's exit 3)."""
    api.user_agent = USER_AGENT
    found = Discovery(server=str(api.configuration.host))
    for attribute, what, checks, call in _lists(api):
        try:
            setattr(found, attribute, call())
        except ApiException as exc:
            if exc.status == 404 and _kind_not_served(exc):
                continue
            found.gaps.append(Gap(f"list {what}", api_message(exc), checks))
    found.access_reviews = _token_review_access(api, found)
    return found


def vault_service_accounts(found: Discovery) -> list[str]:
    """`namespace/name` of the service account each Vault CR runs as (its `serviceAccount`, else `default`)."""
    return sorted(
        f"{v['metadata'].get('namespace', '')}/{(v.get('spec') or {}).get('serviceAccount') or 'default'}"
        for v in found.vaults
    )


def _token_review_access(api: client.ApiClient, found: Discovery) -> list[AccessReview]:
    """Ask the API server (SubjectAccessReview) whether each Vault's service account may review tokens."""
    reviews = []
    authorization = client.AuthorizationV1Api(api)
    for account in vault_service_accounts(found):
        namespace, name = account.split("/", 1)
        body: Obj = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": f"system:serviceaccount:{namespace}:{name}",
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
                "resourceAttributes": AUTH_DELEGATOR_CHECK,
            },
        }
        try:
            answer = _raw(authorization.create_subject_access_review(body, _preload_content=False))  # type: ignore[arg-type]
        except ApiException as exc:
            found.gaps.append(
                Gap(
                    f"create subjectaccessreviews.authorization.k8s.io for {account}",
                    api_message(exc),
                    "Vault's service account may review tokens (system:auth-delegator)",
                )
            )
            continue
        status = answer.get("status") or {}
        reviews.append(AccessReview(account, bool(status.get("allowed")), str(status.get("reason") or "")))
    return reviews
