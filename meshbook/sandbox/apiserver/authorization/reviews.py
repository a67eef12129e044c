"""The authorization.k8s.io review kinds, answered from the RBAC authorizer (nothing is stored):
SelfSubjectAccessReview (`kubectl auth can-i`), SubjectAccessReview and LocalSubjectAccessReview (what
delegating servers ask), SelfSubjectRulesReview (`kubectl auth can-i --list`); and authentication's
SelfSubjectReview (`kubectl auth whoami`), the same kind of question about the caller."""

from __future__ import annotations

import copy
from typing import Any

from meshbook.sandbox.apiserver.authorization.attributes import Attributes
from meshbook.sandbox.apiserver.authorization.rbac import RBACAuthorizer
from meshbook.sandbox.apiserver.authorization.user import MASTERS, UserInfo
from meshbook.sandbox.storage.store import Object, StoreError

API_VERSION = "authorization.k8s.io/v1"


def _invalid(kind: str, field: str, value: str, detail: str) -> StoreError:
    return StoreError(
        "Invalid",
        422,
        f'{kind}.authorization.k8s.io "" is invalid: {field}: Invalid value: "{value}": {detail}',
        {"group": "authorization.k8s.io", "kind": kind},
    )


def _attributes(kind: str, user: UserInfo, spec: dict[str, Any]) -> Attributes:
    resource: dict[str, Any] | None = spec.get("resourceAttributes")
    non_resource: dict[str, Any] | None = spec.get("nonResourceAttributes")
    if (resource is None) == (non_resource is None):
        raise _invalid(
            kind,
            "spec.resourceAttributes",
            "null",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )
    if non_resource is not None:
        return Attributes(user, str(non_resource.get("verb") or ""), False, path=str(non_resource.get("path") or ""))
    assert resource is not None
    return Attributes(
        user,
        str(resource.get("verb") or ""),
        True,
        namespace=str(resource.get("namespace") or ""),
        api_group=str(resource.get("group") or ""),
        api_version=str(resource.get("version") or ""),
        resource=str(resource.get("resource") or ""),
        subresource=str(resource.get("subresource") or ""),
        name=str(resource.get("name") or ""),
    )


def _answer(authorizer: RBACAuthorizer, body: Object, kind: str, attrs: Attributes) -> Object:
    decision = authorizer.authorize(attrs)
    out = copy.deepcopy(body)
    out["apiVersion"], out["kind"] = API_VERSION, kind
    out.setdefault("metadata", {}).setdefault("creationTimestamp", None)
    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    out["status"] = status
    return out


def self_subject_access_review(authorizer: RBACAuthorizer, user: UserInfo, body: Object) -> Object:
    """May the caller do this? (`kubectl auth can-i VERB RESOURCE`)."""
    kind = "SelfSubjectAccessReview"
    return _answer(authorizer, body, kind, _attributes(kind, user, body.get("spec") or {}))


def subject_access_review(authorizer: RBACAuthorizer, body: Object, namespace: str = "") -> Object:
    """May the user named in the spec do this? Namespaced (LocalSubjectAccessReview) when `namespace` is set."""
    kind = "LocalSubjectAccessReview" if namespace else "SubjectAccessReview"
    spec = body.get("spec") or {}
    if not spec.get("user") and not spec.get("groups"):
        raise _invalid(kind, "spec.user", "", "at least one of user or group must be specified")
    extra = tuple((str(k), tuple(str(x) for x in v)) for k, v in sorted((spec.get("extra") or {}).items()))
    user = UserInfo(str(spec.get("user") or ""), tuple(spec.get("groups") or ()), str(spec.get("uid") or ""), extra)
    attrs = _attributes(kind, user, spec)
    if namespace and attrs.resource_request and attrs.namespace != namespace:
        raise _invalid(kind, "spec.resourceAttributes.namespace", attrs.namespace, "must match metadata.namespace")
    return _answer(authorizer, body, kind, attrs)


def self_subject_rules_review(authorizer: RBACAuthorizer, user: UserInfo, body: Object) -> Object:
    """Everything the caller may do in a namespace (`kubectl auth can-i --list`)."""
    namespace = str((body.get("spec") or {}).get("namespace") or "")
    resource_rules: list[dict[str, Any]] = []
    non_resource_rules: list[dict[str, Any]] = []
    for rule in authorizer.rules_of(user, namespace):
        if rule.get("nonResourceURLs"):
            non_resource_rules.append({"verbs": list(rule["verbs"]), "nonResourceURLs": list(rule["nonResourceURLs"])})
        if rule.get("resources"):
            entry: dict[str, Any] = {"verbs": list(rule.get("verbs") or [])}
            for key in ("apiGroups", "resources", "resourceNames"):
                if rule.get(key):
                    entry[key] = list(rule[key])
            resource_rules.append(entry)
    out = copy.deepcopy(body)
    out["apiVersion"], out["kind"] = API_VERSION, "SelfSubjectRulesReview"
    out.setdefault("metadata", {}).setdefault("creationTimestamp", None)
    out["status"] = {
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        # The privileged group's access comes from outside RBAC, as on a cluster without its binding.
        "incomplete": MASTERS in user.groups and not resource_rules,
    }
    return out


def self_subject_review(user: UserInfo, body: Object) -> Object:
    """Who the caller is, after impersonation (`kubectl auth whoami`)."""
    out = copy.deepcopy(body)
    out["apiVersion"], out["kind"] = "authentication.k8s.io/v1", "SelfSubjectReview"
    out.setdefault("metadata", {}).setdefault("creationTimestamp", None)
    out["status"] = {"userInfo": user.as_review_user()}
    return out
