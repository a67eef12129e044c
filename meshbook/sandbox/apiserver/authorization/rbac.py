"""The RBAC authorizer: Roles, ClusterRoles (with aggregation), RoleBindings and ClusterRoleBindings.

Rules are matched as kube-apiserver's RBAC authorizer matches them (`*` wildcards, `resource/subresource`,
`*/subresource`, resourceNames, non-resource URL prefixes ending in `*`). The privileged group
`system:masters` is allowed everything before RBAC is asked, as on a cluster. Bindings are indexed by
subject and the rules of each (user, groups, namespace) cached until an RBAC object changes, so a request
costs a dictionary lookup and a scan of the caller's own rules.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from meshbook.sandbox.apiserver.authorization.attributes import Attributes
from meshbook.sandbox.apiserver.authorization.user import MASTERS, UserInfo
from meshbook.sandbox.apiserver.selectors import label_selector_from_dict
from meshbook.sandbox.storage.resources import ResourceRegistry
from meshbook.sandbox.storage.store import Object, Store, WatchEvent

GROUP: Final = "rbac.authorization.k8s.io"
RBAC_PLURALS: Final = ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
RBAC_STORAGE_KEYS: Final = frozenset(f"{GROUP}/{plural}" for plural in RBAC_PLURALS)

Rule = Mapping[str, Any]


def _has(values: Sequence[str] | None, wanted: str) -> bool:
    return bool(values) and ("*" in values or wanted in values)  # type: ignore[operator]


def resource_matches(rule: Rule, resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for given in rule.get("resources") or ():
        if given in ("*", combined) or (subresource and given == f"*/{subresource}"):
            return True
    return False


def non_resource_url_matches(rule: Rule, path: str) -> bool:
    for given in rule.get("nonResourceURLs") or ():
        if given in ("*", path) or (given.endswith("*") and path.startswith(given[:-1])):
            return True
    return False


def rule_allows(attrs: Attributes, rule: Rule) -> bool:
    """Whether one PolicyRule allows the request (upstream `RuleAllows`)."""
    if not _has(rule.get("verbs"), attrs.verb):
        return False
    if not attrs.resource_request:
        return non_resource_url_matches(rule, attrs.path)
    names = rule.get("resourceNames") or ()
    return (
        _has(rule.get("apiGroups"), attrs.api_group)
        and resource_matches(rule, attrs.resource, attrs.subresource)
        and (not names or attrs.name in names)
    )


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


@dataclass(frozen=True)
class Grant:
    """Rules reached through one binding, and how upstream describes that binding in its reasons."""

    source: str
    rules: tuple[Rule, ...]


@dataclass
class _Index:
    cluster_roles: dict[str, Object] = field(default_factory=dict)
    roles: dict[tuple[str, str], Object] = field(default_factory=dict)
    # subject key ("User"|"Group", name) -> (binding, subject); namespaced ones keyed by (namespace, key).
    cluster_bindings: dict[tuple[str, str], list[tuple[Object, Mapping[str, Any]]]] = field(default_factory=dict)
    bindings: dict[tuple[str, tuple[str, str]], list[tuple[Object, Mapping[str, Any]]]] = field(default_factory=dict)


def _subject_key(subject: Mapping[str, Any], binding_namespace: str) -> tuple[str, str] | None:
    kind, name = subject.get("kind"), str(subject.get("name") or "")
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return ("User", f"system:serviceaccount:{namespace}:{name}") if namespace and name else None
    if kind in ("User", "Group"):
        return (str(kind), name)
    return None


def describe_subject(subject: Mapping[str, Any], binding_namespace: str) -> str:
    name = str(subject.get("name") or "")
    if subject.get("kind") == "ServiceAccount":
        name = f"{name}/{subject.get('namespace') or binding_namespace}"
    return f'{subject.get("kind")} "{name}"'


class RBACAuthorizer:
    """Decides requests and lists a user's rules from the RBAC objects in the store."""

    def __init__(self, store: Store, registry: ResourceRegistry) -> None:
        self.store = store
        self.registry = registry
        self._index: _Index | None = None
        self._grants: dict[tuple[str, tuple[str, ...], str], tuple[list[Grant], list[str]]] = {}
        store.add_listener(self._on_event)

    def _on_event(self, event: WatchEvent) -> None:
        if event.rt_key in RBAC_STORAGE_KEYS:
            self._index = None
            self._grants.clear()

    def _objects(self, plural: str) -> list[Object]:
        rt = self.registry.lookup(GROUP, "v1", plural)
        return self.store.list(rt) if rt is not None else []

    def index(self) -> _Index:
        if self._index is not None:
            return self._index
        index = _Index()
        for role in self._objects("clusterroles"):
            index.cluster_roles[role["metadata"]["name"]] = role
        for role in self._objects("roles"):
            index.roles[(role["metadata"]["namespace"], role["metadata"]["name"])] = role
        for binding in self._objects("clusterrolebindings"):
            for subject in binding.get("subjects") or ():
                key = _subject_key(subject, "")
                if key is not None:
                    index.cluster_bindings.setdefault(key, []).append((binding, subject))
        for binding in self._objects("rolebindings"):
            namespace = binding["metadata"]["namespace"]
            for subject in binding.get("subjects") or ():
                key = _subject_key(subject, namespace)
                if key is not None:
                    index.bindings.setdefault((namespace, key), []).append((binding, subject))
        self._index = index
        return index

    def cluster_role_rules(self, name: str) -> tuple[Rule, ...] | None:
        """A ClusterRole's rules; for an aggregated one, the union of the roles its selectors pick."""
        return self._cluster_role_rules(self.index(), name, set())

    def _cluster_role_rules(self, index: _Index, name: str, seen: set[str]) -> tuple[Rule, ...] | None:
        role = index.cluster_roles.get(name)
        if role is None:
            return None
        aggregation = role.get("aggregationRule")
        if not aggregation or name in seen:
            return tuple(role.get("rules") or ())
        seen.add(name)
        selectors = [label_selector_from_dict(s) for s in aggregation.get("clusterRoleSelectors") or ()]
        rules: list[Rule] = []
        for other_name in sorted(index.cluster_roles):
            other = index.cluster_roles[other_name]
            labels = other["metadata"].get("labels") or {}
            if other_name != name and any(s.matches(labels) for s in selectors):
                for rule in self._cluster_role_rules(index, other_name, seen) or ():
                    if rule not in rules:
                        rules.append(rule)
        return tuple(rules)

    def _role_ref_rules(self, index: _Index, binding: Object) -> tuple[tuple[Rule, ...] | None, str]:
        ref = binding.get("roleRef") or {}
        name = str(ref.get("name") or "")
        if ref.get("kind") == "ClusterRole":
            # Worded as the authorizer's listers word it (singular kind).
            return self._cluster_role_rules(index, name, set()), f'clusterrole.{GROUP} "{name}" not found'
        namespace = binding["metadata"].get("namespace", "")
        role = index.roles.get((namespace, name))
        return (tuple(role.get("rules") or ()) if role else None), f'role.{GROUP} "{name}" not found'

    def grants(self, user: UserInfo, namespace: str) -> tuple[list[Grant], list[str]]:
        """Every binding that applies to the user (cluster-wide, then in `namespace`), with its rules, and
        the errors met on the way (bindings to missing roles), cached until RBAC objects change."""
        cache_key = (user.name, user.groups, namespace)
        cached = self._grants.get(cache_key)
        if cached is not None:
            return cached
        index = self.index()
        keys = [("User", user.name), *(("Group", g) for g in user.groups)]
        grants: list[Grant] = []
        errors: list[str] = []
        for key in keys:
            for binding, subject in index.cluster_bindings.get(key, ()):
                rules, missing = self._role_ref_rules(index, binding)
                ref = binding.get("roleRef") or {}
                source = (
                    f'ClusterRoleBinding "{binding["metadata"]["name"]}" of {ref.get("kind")} "{ref.get("name")}" '
                    f"to {describe_subject(subject, '')}"
                )
                grants.append(Grant(source, rules or ())) if rules is not None else errors.append(missing)
        if namespace:
            for key in keys:
                for binding, subject in index.bindings.get((namespace, key), ()):
                    rules, missing = self._role_ref_rules(index, binding)
                    ref = binding.get("roleRef") or {}
                    source = (
                        f'RoleBinding "{binding["metadata"]["name"]}/{namespace}" of {ref.get("kind")} '
                        f'"{ref.get("name")}" to {describe_subject(subject, namespace)}'
                    )
                    grants.append(Grant(source, rules or ())) if rules is not None else errors.append(missing)
        self._grants[cache_key] = (grants, errors)
        return grants, errors

    def authorize(self, attrs: Attributes) -> Decision:
        """Allowed with upstream's reason, or denied with the errors RBAC met (e.g. a missing role)."""
        if MASTERS in attrs.user.groups:
            return Decision(True)
        grants, errors = self.grants(attrs.user, attrs.namespace if attrs.resource_request else "")
        for grant in grants:
            if any(rule_allows(attrs, rule) for rule in grant.rules):
                return Decision(True, f"RBAC: allowed by {grant.source}")
        if not errors:
            return Decision(False)
        return Decision(False, "RBAC: " + (errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]"))

    def rules_of(self, user: UserInfo, namespace: str) -> Iterator[Rule]:
        """The rules the user has in `namespace` (cluster-wide ones included), for SelfSubjectRulesReview."""
        grants, _ = self.grants(user, namespace)
        for grant in grants:
            yield from grant.rules
