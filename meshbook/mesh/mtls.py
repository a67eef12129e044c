"""The guide's Backyards mTLS verbs over today's API: PeerAuthentication `security.istio.io/v1`.

The Backyards CLI is gone (FACTS 1); these functions do what its verbs did, with the objects that replaced
MeshPolicy and Policy, through the official client and server-side apply (field manager `meshbook`), so
calling one twice changes nothing:

- `require_mtls`: `backyards mtls require mesh`, PeerAuthentication `default` in the root namespace.
- `mtls_table`: `backyards mtls get`, the effective mode of every workload port, decided by the same
  pure `resolve_mtls` the sandbox enforces, so the table predicts what connections will do.
- `allow`: `backyards mtls allow NS[/WORKLOAD]`, PERMISSIVE for a namespace, a workload or one port.
- `auto_inject` (from `meshbook.mesh.injection`): `backyards sidecar-proxy auto-inject on|off NS`.

`GUIDE_COMMANDS` pairs each verb with the guide's commands so notebooks can show them side by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import pandas as pd
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from meshbook.errors import MeshbookError, ParameterError
from meshbook.kube.apply import AppliedObject, Applier, _api_error
from meshbook.manifests import peer_authentication
from meshbook.manifests.mesh import PEER_AUTHENTICATION_API
from meshbook.mesh.injection import auto_inject, injection_enabled
from meshbook.mesh.peer_authentication import PolicyScope, resolve_mtls
from meshbook.params import PeerAuthenticationMode

ROOT_NAMESPACE = "istio-system"
NAMESPACE_POLICY = "default"
"""Istio's convention for the namespace-wide (and, in the root namespace, mesh-wide) policy's name."""
ANY_WORKLOAD = "*"
"""`workload` of a namespace's row for pods that no workload-level policy selects."""
NO_POLICY = "none (PERMISSIVE by default)"
COLUMNS = ("namespace", "workload", "port", "mode", "deciding_object", "scope", "sidecar_injection")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
_ANY_PORT = 0
"""Never a target port, so `resolve_mtls` gives the mode for ports without a portLevelMtls entry."""


@dataclass(frozen=True)
class Workload:
    """A pod-owning workload as PeerAuthentication sees it: its pods' labels and target ports."""

    kind: str
    namespace: str
    name: str
    pod_labels: Mapping[str, str]
    selector: Mapping[str, str]
    """`spec.selector.matchLabels`: immutable and on every pod, so a policy using it survives upgrades."""
    ports: tuple[int, ...]
    """TCP container ports, ascending (Istio mTLS is TCP only; portLevelMtls keys are these)."""

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> Workload:
        """From a Deployment, StatefulSet or DaemonSet as the API serves it (a plain dict)."""
        meta, spec = obj["metadata"], obj.get("spec") or {}
        template = spec.get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        containers = (template.get("spec") or {}).get("containers") or []
        ports = {
            int(port["containerPort"])
            for container in containers
            for port in container.get("ports") or []
            if (port.get("protocol") or "TCP") == "TCP"
        }
        match_labels = (spec.get("selector") or {}).get("matchLabels") or {}
        return cls(obj["kind"], meta["namespace"], meta["name"], dict(labels), dict(match_labels), tuple(sorted(ports)))


class GuideCommand(NamedTuple):
    """One guide command and the meshbook call that replaces it (`pd.DataFrame(GUIDE_COMMANDS)` shows all)."""

    verb: str
    step: str
    backyards: str
    kubectl: str
    meshbook: str


def _policy_heredoc(name: str, namespace: str, targets: str) -> str:
    return (
        "kubectl apply -f - <<EOF\napiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata:\n"
        f"  name: {name}\n  namespace: {namespace}\n  labels:\n    app: security\nspec:\n{targets}"
        "  peers:\n  - mtls:\n      mode: PERMISSIVE\nEOF"
    )


GUIDE_COMMANDS: tuple[GuideCommand, ...] = (
    GuideCommand(
        "require_mtls",
        "Enable mTLS mesh-wide",
        "backyards mtls require mesh",
        "kubectl patch istio -n istio-system mesh --type=json "
        """-p='[{"op": "replace", "path": "/spec/meshPolicy/mtlsMode", "value":STRICT}]'""",
        'require_mtls(api, "STRICT")',
    ),
    GuideCommand(
        "mtls_table",
        "Check the mesh's mTLS policy",
        "backyards mtls get mesh",
        "kubectl get meshpolicy default -o yaml",
        "mtls_table(api)",
    ),
    GuideCommand(
        "allow",
        "PERMISSIVE for the webhook, so the API server can call it",
        "backyards mtls allow vault-system/vault-secrets-webhook",
        _policy_heredoc("vault-secrets-webhook", "vault-system", "  targets:\n  - name: vault-secrets-webhook\n"),
        'allow(api, "vault-system", "vault-secrets-webhook", '
        'labels={"app.kubernetes.io/name": "vault-secrets-webhook"})',
    ),
    GuideCommand(
        "allow",
        "PERMISSIVE in the vault namespace, for init containers outside the mesh",
        "backyards mtls allow vault",
        _policy_heredoc("default", "vault", ""),
        'allow(api, "vault")',
    ),
    GuideCommand(
        "auto_inject",
        "Put a namespace in the mesh",
        "backyards sidecar-proxy auto-inject on app",
        "kubectl label namespace app istio-injection=enabled",
        'auto_inject(api, "app", on=True)',
    ),
    GuideCommand(
        "auto_inject",
        "Take a namespace out of the mesh",
        "backyards sidecar-proxy auto-inject off app",
        "kubectl label namespace app istio-injection-",
        'auto_inject(api, "app", on=False)',
    ),
)


def require_mtls(
    api: client.ApiClient, mode: PeerAuthenticationMode | str = "STRICT", *, root_namespace: str = ROOT_NAMESPACE
) -> AppliedObject:
    """Set the mesh-wide mode: PeerAuthentication `default` in the root namespace (was MeshPolicy)."""
    manifest = peer_authentication(NAMESPACE_POLICY, root_namespace, _mode(mode))
    return Applier(api).apply(manifest)


def allow(
    api: client.ApiClient,
    namespace: str,
    workload: str | None = None,
    *,
    port: int | None = None,
    labels: Mapping[str, str] | None = None,
) -> AppliedObject:
    """PERMISSIVE for `namespace` (policy `default`) or for `workload` (policy named after it).

    A workload's pods are selected by `labels` when given (the workload need not exist yet, e.g. before
    its chart is installed), else by the live workload's `spec.selector.matchLabels`. With `port`, only
    that target port is PERMISSIVE (`portLevelMtls`) and `mtls` stays unset, so the workload's other
    ports keep the mode they inherit from the namespace or mesh.
    """
    problems = _allow_problems(workload, port, labels)
    if problems:
        raise ParameterError(problems)
    permissive = PeerAuthenticationMode.PERMISSIVE
    applier = Applier(api)
    if workload is None:
        return applier.apply(peer_authentication(NAMESPACE_POLICY, namespace, permissive))
    selector = dict(labels) if labels else _selector_of(find_workload(applier, namespace, workload))
    if port is None:
        return applier.apply(peer_authentication(workload, namespace, permissive, selector=selector))
    port_modes = {port: permissive}
    return applier.apply(peer_authentication(workload, namespace, None, selector=selector, port_modes=port_modes))


def _allow_problems(workload: str | None, port: int | None, labels: Mapping[str, str] | None) -> list[str]:
    problems = []
    if workload is None and port is not None:
        problems.append("allow: `port` needs a workload (Istio ignores portLevelMtls without a selector)")
    if workload is None and labels is not None:
        problems.append("allow: `labels` select a workload's pods; name the workload too")
    if labels is not None and not labels:
        problems.append("allow: `labels` is empty, which would select every pod of the namespace")
    if workload == NAMESPACE_POLICY:
        problems.append(f"allow: a workload policy named {NAMESPACE_POLICY!r} would replace the namespace policy")
    if port is not None and not 1 <= port <= 65535:
        problems.append(f"allow: port {port} is not a port number (1-65535)")
    return problems


def _selector_of(found: Workload) -> dict[str, str]:
    selector = found.selector or found.pod_labels
    if not selector:
        raise MeshbookError(f"{found.ref} has no pod labels to select; pass labels= to allow()")
    return dict(selector)


def _mode(mode: PeerAuthenticationMode | str) -> PeerAuthenticationMode:
    try:
        return PeerAuthenticationMode(mode)
    except ValueError:
        known = ", ".join(m.value for m in PeerAuthenticationMode)
        raise ParameterError([f"mTLS mode {mode!r} is not one of {known}"]) from None


def list_workloads(api: client.ApiClient | Applier, namespace: str | None = None) -> list[Workload]:
    """Deployments, StatefulSets and DaemonSets in `namespace` (None: all), by namespace, name and kind."""
    applier = api if isinstance(api, Applier) else Applier(api)
    found = [Workload.from_object(obj) for kind in WORKLOAD_KINDS for obj in _list(applier, "apps/v1", kind, namespace)]
    return sorted(found, key=lambda w: (w.namespace, w.name, WORKLOAD_KINDS.index(w.kind)))


def _list(applier: Applier, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
    """Every `kind` object (in `namespace`, or everywhere) as plain dicts; API errors name what was listed."""
    try:
        return [item.to_dict() for item in applier.resource(api_version, kind).get(namespace=namespace).items]
    except ApiException as exc:
        where = f"in namespace {namespace}" if namespace else "in all namespaces"
        raise _api_error("list", f"{kind}s", None, where, exc) from None


def find_workload(api: client.ApiClient | Applier, namespace: str, name: str) -> Workload:
    """The workload `name` in `namespace`, or a MeshbookError listing the namespace's workloads."""
    present = list_workloads(api, namespace)
    matches = [w for w in present if w.name == name]
    if len(matches) == 1:
        return matches[0]
    if matches:
        kinds = " and ".join(w.kind for w in matches)
        raise MeshbookError(f"{namespace}/{name} is ambiguous ({kinds}); pass labels= to select its pods")
    listed = ", ".join(f"{w.kind.lower()}/{w.name}" for w in present) or "none"
    raise MeshbookError(
        f"no Deployment, StatefulSet or DaemonSet named {name!r} in namespace {namespace!r}; "
        f"its workloads: {listed} (pass labels= to select pods that have no workload yet)"
    )


def mtls_table(
    api: client.ApiClient, *, namespaces: list[str] | None = None, root_namespace: str = ROOT_NAMESPACE
) -> pd.DataFrame:
    """The effective mTLS mode of every workload port in `namespaces` (default: all but kube-*).

    Reads Namespaces, workloads and PeerAuthentications once each, then applies `mtls_table_from`.
    """
    applier = Applier(api)
    namespace_labels = {
        item["metadata"]["name"]: item["metadata"].get("labels") or {} for item in _list(applier, "v1", "Namespace")
    }
    if namespaces is None:
        wanted = [name for name in sorted(namespace_labels) if not name.startswith("kube-")]
    else:
        missing = [name for name in namespaces if name not in namespace_labels]
        if missing:
            raise MeshbookError(f"namespace(s) {', '.join(missing)} do not exist")
        wanted = list(dict.fromkeys(namespaces))
    policies = _list(applier, PEER_AUTHENTICATION_API, "PeerAuthentication")
    in_scope = [w for w in list_workloads(applier) if w.namespace in wanted]
    return mtls_table_from(
        {name: namespace_labels[name] for name in wanted}, in_scope, policies, root_namespace=root_namespace
    )


def mtls_table_from(
    namespace_labels: Mapping[str, Mapping[str, str]],
    workload_list: Iterable[Workload],
    peer_authentications: Iterable[Mapping[str, Any]],
    *,
    root_namespace: str = ROOT_NAMESPACE,
) -> pd.DataFrame:
    """`mtls_table` over objects already read (pure: recorded evidence can be tabled again).

    Per namespace, in the given order: a row for any other workload (`*`), then per workload (by name)
    a workload-wide row (port None: ports without a portLevelMtls entry) and a row per container port.
    """
    policies = list(peer_authentications)
    by_namespace: dict[str, list[Workload]] = {}
    for item in workload_list:
        by_namespace.setdefault(item.namespace, []).append(item)
    rows: list[tuple[Any, ...]] = []
    for namespace, labels in namespace_labels.items():
        injection = "on" if injection_enabled(labels) else "off"
        targets: list[tuple[str, Mapping[str, str], int | None]] = [(ANY_WORKLOAD, {}, None)]
        for w in sorted(by_namespace.get(namespace, []), key=lambda w: (w.name, WORKLOAD_KINDS.index(w.kind))):
            targets += [(w.name, w.pod_labels, port) for port in (None, *w.ports)]
        for name, pod_labels, port in targets:
            res = resolve_mtls(policies, root_namespace, namespace, pod_labels, _ANY_PORT if port is None else port)
            decider = NO_POLICY if res.scope is PolicyScope.DEFAULT else res.deciding_object
            rows.append((namespace, name, port, res.mode.value, decider, res.scope.value, injection))
    columns = {
        column: pd.Series([row[i] for row in rows], dtype=object if column == "port" else "str")
        for i, column in enumerate(COLUMNS)
    }
    return pd.DataFrame(columns)


__all__ = [
    "ANY_WORKLOAD",
    "COLUMNS",
    "GUIDE_COMMANDS",
    "NO_POLICY",
    "GuideCommand",
    "Workload",
    "allow",
    "auto_inject",
    "find_workload",
    "list_workloads",
    "mtls_table",
    "mtls_table_from",
    "require_mtls",
]
