"""Which PeerAuthentication decides the mTLS mode of a workload port, resolved the way istiod does.

Pure (no I/O), so the sandbox can use it through `meshbook.mesh.connectivity`. Objects are the plain dicts
the API serves. The rules follow istiod's `ComposePeerAuthentication` (pilot/pkg/security/authn/
policy_applier.go) and `getConfigsForWorkload` (pilot/pkg/model/authentication.go); FACTS 6 "Policy
precedence" summarises them:

- Only policies in the workload's namespace and in the root namespace count.
- Workload level: `spec.selector.matchLabels` non-empty and a subset of the pod labels, outside the root
  namespace (istiod ignores selector policies in the root namespace). Namespace level: no selector in
  the workload's namespace. Mesh level: no selector in the root namespace.
- Several policies at one level: the oldest `creationTimestamp` wins, ties by name then namespace
  (pilot/pkg/model/config.go `configCompareByCreationTime`).
- `mtls.mode` UNSET (or absent) inherits from the level above; with nothing set the mode is PERMISSIVE.
- `portLevelMtls` (keys are the workload's target ports, FACTS 1) counts only on the chosen workload
  policy, and an UNSET port inherits the workload-level mode. A namespace or mesh policy's
  `portLevelMtls` is ignored (the API's validation rejects it; istiod never reads it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from meshbook.param_enums import PeerAuthenticationMode

UNSET = "UNSET"
NO_POLICY = "no PeerAuthentication (PERMISSIVE by default)"
_MODES = {m.value: m for m in PeerAuthenticationMode}
_NEVER = datetime.min.replace(tzinfo=UTC)


class PolicyScope(StrEnum):
    """The level of the PeerAuthentication that decided the mode."""

    PORT = "port"  # portLevelMtls of a workload policy
    WORKLOAD = "workload"
    NAMESPACE = "namespace"
    MESH = "mesh"
    DEFAULT = "default"  # no policy sets a mode: PERMISSIVE


_RANK = {
    PolicyScope.DEFAULT: 0,
    PolicyScope.MESH: 1,
    PolicyScope.NAMESPACE: 2,
    PolicyScope.WORKLOAD: 3,
    PolicyScope.PORT: 4,
}


class EffectiveMode(NamedTuple):
    mode: PeerAuthenticationMode
    deciding_object: str
    scope: PolicyScope


@dataclass(frozen=True)
class MtlsResolution:
    """The effective mode plus notes on the policies that did NOT decide it (ignored, UNSET, newer)."""

    mode: PeerAuthenticationMode
    deciding_object: str
    scope: PolicyScope
    notes: tuple[str, ...] = ()

    def effective(self) -> EffectiveMode:
        return EffectiveMode(self.mode, self.deciding_object, self.scope)


@dataclass(frozen=True)
class _Policy:
    namespace: str
    name: str
    created: datetime | None
    selector: Mapping[str, str]
    mode: str  # UNSET or a PeerAuthenticationMode value
    port_modes: Mapping[int, str]

    @property
    def ref(self) -> str:
        return f"PeerAuthentication {self.namespace}/{self.name}"

    def sort_key(self) -> tuple[int, datetime, str, str]:
        # Objects without a creationTimestamp (not yet persisted) sort after every stored one.
        return (self.created is None, self.created or _NEVER, self.name, self.namespace)


def effective_mode(
    peer_authentications: Iterable[Mapping[str, Any]],
    root_namespace: str,
    namespace: str,
    labels: Mapping[str, str],
    port: int,
) -> EffectiveMode:
    """(mode, deciding object, scope) for the pods with `labels` in `namespace`, at target `port`."""
    return resolve_mtls(peer_authentications, root_namespace, namespace, labels, port).effective()


def resolve_mtls(
    peer_authentications: Iterable[Mapping[str, Any]],
    root_namespace: str,
    namespace: str,
    labels: Mapping[str, str],
    port: int,
) -> MtlsResolution:
    """Like `effective_mode`, with notes explaining the policies that were ignored or inherited."""
    notes: list[str] = []
    candidates: list[_Policy] = []
    for obj in peer_authentications:
        parsed = _parse(obj)
        if isinstance(parsed, str):
            if _namespace_of(obj) in (namespace, root_namespace):
                notes.append(parsed)
        elif parsed.namespace in (namespace, root_namespace):
            candidates.append(parsed)
    candidates.sort(key=_Policy.sort_key)

    chosen: dict[PolicyScope, _Policy] = {}
    for policy in candidates:
        if not policy.selector:
            scope = PolicyScope.MESH if policy.namespace == root_namespace else PolicyScope.NAMESPACE
        elif not _selects(policy.selector, labels):
            continue
        elif policy.namespace == root_namespace:
            notes.append(f"{policy.ref} is ignored: istiod ignores selectors in the root namespace")
            continue
        else:
            scope = PolicyScope.WORKLOAD
        if scope in chosen:
            notes.append(f"{policy.ref} is ignored: {chosen[scope].ref} is older")
        else:
            chosen[scope] = policy

    mode, decider, decided_scope = PeerAuthenticationMode.PERMISSIVE, NO_POLICY, PolicyScope.DEFAULT
    for scope in (PolicyScope.MESH, PolicyScope.NAMESPACE, PolicyScope.WORKLOAD):
        level = chosen.get(scope)
        if level is not None and level.mode != UNSET:
            mode, decider, decided_scope = _MODES[level.mode], level.ref, scope
        if level is not None and scope is not PolicyScope.WORKLOAD and port in level.port_modes:
            notes.append(f"{level.ref} sets portLevelMtls without a selector, which Istio ignores")
    mesh = chosen.get(PolicyScope.MESH)
    if mesh is not None and decided_scope is PolicyScope.DEFAULT:
        # istiod treats an UNSET mesh policy as PERMISSIVE.
        decider, decided_scope = mesh.ref, PolicyScope.MESH
        notes.append(f"{mesh.ref} leaves mtls UNSET, which is PERMISSIVE at mesh level")

    workload = chosen.get(PolicyScope.WORKLOAD)
    if workload is not None and port in workload.port_modes:
        if workload.port_modes[port] != UNSET:
            mode, decider, decided_scope = _MODES[workload.port_modes[port]], workload.ref, PolicyScope.PORT
        else:
            notes.append(f"{workload.ref} leaves portLevelMtls {port} UNSET and inherits")
    for scope in (PolicyScope.NAMESPACE, PolicyScope.WORKLOAD):
        level = chosen.get(scope)
        if level is not None and level.mode == UNSET and _RANK[scope] > _RANK[decided_scope]:
            notes.append(f"{level.ref} leaves mtls UNSET and inherits")
    return MtlsResolution(mode, decider, decided_scope, tuple(notes))


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _namespace_of(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    return str(metadata.get("namespace", "")) if isinstance(metadata, Mapping) else ""


def _parse(obj: Mapping[str, Any]) -> _Policy | str:
    """The policy, or a note saying why istiod would ignore it (the sandbox stores unvalidated objects)."""
    raw_metadata = obj.get("metadata")
    metadata: Mapping[str, Any] = raw_metadata if isinstance(raw_metadata, Mapping) else {}
    namespace, name = str(metadata.get("namespace", "")), str(metadata.get("name", ""))
    ref = f"PeerAuthentication {namespace}/{name}"
    spec = obj.get("spec") or {}
    if not isinstance(spec, Mapping):
        return f"{ref} is ignored: spec is not an object"
    selector = spec.get("selector") or {}
    match_labels = (selector.get("matchLabels") or {}) if isinstance(selector, Mapping) else None
    if not isinstance(match_labels, Mapping):
        return f"{ref} is ignored: spec.selector.matchLabels is not an object"
    mode = _mode(spec.get("mtls"))
    if mode is None:
        return f"{ref} is ignored: spec.mtls.mode is not one of UNSET, DISABLE, PERMISSIVE, STRICT"
    port_modes: dict[int, str] = {}
    port_level = spec.get("portLevelMtls") or {}
    if not isinstance(port_level, Mapping):
        return f"{ref} is ignored: spec.portLevelMtls is not an object"
    for key, value in port_level.items():
        port_mode = _mode(value)
        if not str(key).isdigit() or port_mode is None:
            return f"{ref} is ignored: spec.portLevelMtls[{key}] is not a port with a valid mode"
        port_modes[int(key)] = port_mode
    created = metadata.get("creationTimestamp")
    try:
        timestamp = datetime.fromisoformat(str(created)) if created else None
    except ValueError:
        return f"{ref} is ignored: metadata.creationTimestamp {created!r} is not a timestamp"
    if timestamp is not None and timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    labels = {str(k): str(v) for k, v in match_labels.items()}
    return _Policy(namespace, name, timestamp, labels, mode, port_modes)


def _mode(mtls: Any) -> str | None:
    """The mode string (UNSET when absent), or None when it is not a valid enum name (case-sensitive)."""
    if mtls is None:
        return UNSET
    if not isinstance(mtls, Mapping):
        return None
    mode = mtls.get("mode") or UNSET
    return mode if isinstance(mode, str) and (mode == UNSET or mode in _MODES) else None
