"""What to do about a failure: the guide's common breakages recognised from their reasons.

Reasons come from the connectivity model and the expectations (e.g. `PeerAuthentication
istio-system/default STRICT applies to vault/vault-0:8200; source app/app-x init container init-ubuntu
runs before istio-init ...`). Each rule matches such a sentence and says, in one or two lines, which
object to add or which parameter to change. Rules are tried in order; the first match wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Advice", "advise", "advise_all"]


@dataclass(frozen=True)
class Advice:
    """A recognised failure: a short name, what happened, and what to do."""

    key: str
    problem: str
    fix: str


@dataclass(frozen=True)
class _Rule:
    advice: Advice
    patterns: tuple[re.Pattern[str], ...]  # all must match

    def matches(self, text: str) -> bool:
        return all(p.search(text) for p in self.patterns)


def _rule(key: str, problem: str, fix: str, *patterns: str) -> _Rule:
    return _Rule(Advice(key, problem, fix), tuple(re.compile(p, re.IGNORECASE) for p in patterns))


_RULES: tuple[_Rule, ...] = (
    _rule(
        "webhook-unreachable",
        "The API server could not call the vault-secrets-webhook: it is outside the mesh, so STRICT mTLS "
        "resets its plain-text call and the pod is admitted without vault-env (not mutated).",
        "Add the webhook's PERMISSIVE PeerAuthentication (`backyards mtls allow "
        "vault-system/vault-secrets-webhook`; meshbook: `--set bank_vaults.webhook_permissive=true`, "
        "manifest `webhook-permissive`).",
        r"did not mutate|not mutated|vault-secrets-webhook.*(reset|refused|unreachable|STRICT)",
    ),
    _rule(
        "cni-init-refused",
        "With Istio CNI the init container's traffic is captured before istio-proxy runs, so vault-env's "
        "connection to Vault on port 8200 is refused.",
        "Exclude Vault's port from capture on the app pod: annotation "
        '`traffic.sidecar.istio.io/excludeOutboundPorts: "8200"` '
        "(or use native sidecars: `--set istio.sidecar_mode=native`).",
        r"captured by Istio CNI|cni sidecar\).*refused",
    ),
    _rule(
        "proxy-not-ready",
        "The container started before its istio-proxy was ready, so its first connection to Vault was refused.",
        "Hold the application until the proxy starts: `--set istio.hold_application_until_proxy_starts=true` "
        "(annotation `proxy.istio.io/config: holdApplicationUntilProxyStarts: true`).",
        r"istio-proxy is not ready yet",
    ),
    _rule(
        "vault-strict-init",
        "Vault is in the mesh under STRICT mTLS and the init container runs before istio-init (classic "
        "sidecar), so its plain connection to Vault is refused.",
        "Make the Vault namespace PERMISSIVE (`backyards mtls allow vault`; meshbook: `--set vault.permissive=true`, "
        "manifest `vault-permissive`), or use native sidecars so init containers go through Envoy "
        "(`--set istio.sidecar_mode=native`).",
        r"STRICT applies to",
        r"runs before istio-init",
    ),
    _rule(
        "vault-strict-outside",
        "Vault is in the mesh under STRICT mTLS and the app is outside it (no istio-proxy), so Vault's "
        "sidecar refuses the app's plain connection.",
        "Make the Vault namespace PERMISSIVE (`backyards mtls allow vault`; meshbook: `--set vault.permissive=true`, "
        "manifest `vault-permissive`), or put the app's namespace in the mesh.",
        r"STRICT applies to",
        r"has no istio-proxy|outside the mesh|plain text",
    ),
    _rule(
        "vault-strict",
        "Vault is in the mesh under STRICT mTLS and the client's connection does not use Istio mTLS.",
        "Make the Vault namespace PERMISSIVE (`--set vault.permissive=true`) or native sidecars "
        "(`--set istio.sidecar_mode=native`).",
        r"STRICT applies to",
    ),
    _rule(
        "http-port-name",
        "The Vault Service port is declared HTTP, so Envoy does not pass vault-env's TLS through.",
        "Let the operator name the ports for Istio: Vault CR `spec.istioEnabled: true` "
        "(`--set vault.istio_enabled=true`).",
        r"HTTP response to HTTPS client|declared http|reads its TLS as HTTP",
    ),
    _rule(
        "vault-unreachable",
        "meshbook could not reach Vault to read the expected secret.",
        "Check that vault-0 is Ready and unsealed (`kubectl -n vault get pods`) and that the port-forward or "
        "`vault.address` works.",
        r"Vault unreachable|vault.*(unsealed|sealed|port-forward)",
    ),
    _rule(
        "timeout",
        "A wait ran out of time: pods did not become Ready (see the pod table for READY and status).",
        "Look at the pod rows that fail and their logs; if the cluster is just slow, raise `timeouts.pods_ready`.",
        r"timed out|timeout|did not become",
    ),
    _rule(
        "cluster-unreachable",
        "The cluster or a kernel was unreachable, so the run stopped.",
        "Check the kubeconfig/context (or `meshbook sandbox status`) and re-run.",
        r"unreachable|connection refused|DeadKernel|MaxRetryError",
    ),
)


def advise(text: str) -> Advice | None:
    """The advice for a failure reason, or None when it is not one of the common failures."""
    return next((rule.advice for rule in _RULES if rule.matches(text)), None)


def advise_all(texts: Iterable[str]) -> list[Advice]:
    """Distinct advice for several reasons, in the order first found."""
    seen: dict[str, Advice] = {}
    for text in texts:
        found = advise(text) if text else None
        if found is not None and found.key not in seen:
            seen[found.key] = found
    return list(seen.values())
