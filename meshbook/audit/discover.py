"""Read-only discovery of what decides secret delivery in a cluster: Istio, Bank-Vaults, Vault, workloads.

Everything here is a get or a list through the official client, never of Secrets; the one request with
a body is a SubjectAccessReview, which the API server answers without storing anything. A list the
caller may not read (403) or a kind the cluster does not serve (404) is kept as a `Gap` saying which
check could not run, so the audit reports it instead of failing with a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
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


@dataclass(frozen=True)
class Listed:
    """One list the audit makes, across namespaces: a kind's API paths, newest version first."""

    attribute: str  # the Discovery field it fills
    paths: tuple[str, ...]
    checks: str  # the checks that need it (named when the list is refused)

    @property
    def what(self) -> str:
        """`resource.group` as RBAC names it (`pods`, `deployments.apps`)."""
        parts = self.paths[0].strip("/").split("/")
        return parts[-1] if parts[0] == "api" else f"{parts[-1]}.{parts[1]}"


LISTS = (
    Listed("namespaces", ("/api/v1/namespaces",), "injection labels"),
    Listed("pods", ("/api/v1/pods",), "every container check"),
    Listed("services", ("/api/v1/services",), "connectivity"),
    Listed("deployments", ("/apis/apps/v1/deployments",), "webhook settings, vault-addr"),
    Listed("statefulsets", ("/apis/apps/v1/statefulsets",), "vault-addr"),
    Listed(
        "peer_authentications",
        ("/apis/security.istio.io/v1/peerauthentications", "/apis/security.istio.io/v1beta1/peerauthentications"),
        "mTLS",
    ),
    Listed(
        "webhook_configurations",
        ("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",),
        "webhook reachability",
    ),
    Listed("vaults", ("/apis/vault.banzaicloud.com/v1alpha1/vaults",), "Vault CR"),
)
"""Everything discovery lists (one request per kind, all namespaces at once); the auditor's RBAC grants these."""

SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


def _request(api: client.ApiClient, method: str, path: str, body: Obj | None = None) -> Obj:
    """One request by path through the client's configuration (server, credentials, TLS): the generated
    API classes would cost the kernel ~0.3 s of imports for requests this simple."""
    request = api.param_serialize(
        method,
        path,
        header_params={"Accept": "application/json", "Content-Type": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*request)
    response.read()  # type: ignore[no-untyped-call]
    if not 200 <= response.status <= 299:
        raise ApiException.from_response(http_resp=response, body=None, data=None)
    return _raw(response)


def _list(api: client.ApiClient, listed: Listed) -> list[Obj]:
    """The kind's items from the first version the cluster serves; none when it serves none (no CRD)."""
    for path in listed.paths:
        try:
            return _items(_request(api, "GET", path))
        except ApiException as exc:
            if exc.status != 404 or path == listed.paths[-1]:
                raise
    return []


def _kind_not_served(exc: ApiException) -> bool:
    """A 404 for a whole list means the kind is not installed (no CRD): nothing of it exists."""
    return bool(exc.status == 404)


def discover(api: client.ApiClient) -> Discovery:
    """Read the cluster once; raises only when it cannot be reached at all (the caller's exit 3).

    The lists go out at once (one thread each: the audit's time is round trips, not work), and each
    Vault service account's SubjectAccessReview as soon as the Vault CRs are listed."""
    api.user_agent = USER_AGENT
    found = Discovery(server=str(api.configuration.host))
    with ThreadPoolExecutor(max_workers=len(LISTS), thread_name_prefix="meshbook-discover") as pool:
        lists = {entry.attribute: pool.submit(_list, api, entry) for entry in LISTS}
        vaults = _outcome(lists["vaults"])
        accounts = vault_service_accounts(Discovery(vaults=vaults)) if isinstance(vaults, list) else []
        reviews = [pool.submit(_token_review_access, api, account) for account in accounts]
        for entry in LISTS:
            outcome = _outcome(lists[entry.attribute])
            if isinstance(outcome, list):
                setattr(found, entry.attribute, outcome)
            elif not _kind_not_served(outcome):
                found.gaps.append(Gap(f"list {entry.what}", api_message(outcome), entry.checks))
        for review in reviews:
            answer = review.result()
            if isinstance(answer, Gap):
                found.gaps.append(answer)
            else:
                found.access_reviews.append(answer)
    return found


def _outcome(future: Future[list[Obj]]) -> list[Obj] | ApiException:
    """A list's items, or the API's refusal (kept as a gap); anything else (unreachable) raises."""
    try:
        return future.result()
    except ApiException as exc:
        return exc


def vault_service_accounts(found: Discovery) -> list[str]:
    """`namespace/name` of the service account each Vault CR runs as (its `serviceAccount`, else `default`)."""
    return sorted(
        f"{v['metadata'].get('namespace', '')}/{(v.get('spec') or {}).get('serviceAccount') or 'default'}"
        for v in found.vaults
    )


def _token_review_access(api: client.ApiClient, account: str) -> AccessReview | Gap:
    """Ask the API server (SubjectAccessReview) whether a Vault's service account may review tokens."""
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
        answer = _request(api, "POST", SUBJECT_ACCESS_REVIEWS, body)
    except ApiException as exc:
        return Gap(
            f"create subjectaccessreviews.authorization.k8s.io for {account}",
            api_message(exc),
            "Vault's service account may review tokens (system:auth-delegator)",
        )
    status = answer.get("status") or {}
    return AccessReview(account, bool(status.get("allowed")), str(status.get("reason") or ""))
