"""The header every report starts with: what ran, on which cluster, with which versions, as observed.

An auditor handed one report must not need `manifest.json` to know what was tested: meshbook's version
and commit, the cluster (context, server, kube-system UID or the sandbox's id), Kubernetes, Istio,
Bank-Vaults and Vault versions as the cluster showed them (the Vault CR's image next to what the Vault
server itself reports: they differ on the sandbox, which runs OpenBao), the parameters that differ from
the defaults, and the leak scan's scope. All of it comes from `summary.json` (`identity`, written at the
end of the run); a run made before it was recorded says "not recorded" rather than guessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshbook.report.outcomes import leak_scan_summary
from meshbook.report.rundir import RunData

__all__ = ["NOT_RECORDED", "header_rows"]

NOT_RECORDED = "not recorded (the run predates this record, or did not finish)"


def _get(data: Mapping[str, Any], *path: str) -> Any:
    value: Any = data
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _images(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{name}: {image}" for name, image in value.items()) or "none"
    return str(value) if value else NOT_RECORDED


def _meshbook(identity: Mapping[str, Any]) -> str:
    build = identity.get("meshbook")
    if not isinstance(build, Mapping):
        return NOT_RECORDED
    return f"{build.get('version', '?')}, commit {build.get('commit') or 'unknown'}"


def _cluster(identity: Mapping[str, Any]) -> list[tuple[str, str]]:
    cluster = identity.get("cluster")
    if not isinstance(cluster, Mapping):
        return [("cluster", NOT_RECORDED)]
    rows = [
        ("target", str(cluster.get("target") or "?")),
        ("kube context", str(cluster.get("context") or "not recorded")),
        ("API server", str(cluster.get("server") or "not recorded")),
    ]
    if cluster.get("reachable") is False:
        rows.append(
            ("cluster identity", f"unreachable at the end of the run ({cluster.get('unreachable_because', '?')})")
        )
        return rows
    uid = f"kube-system namespace UID {cluster.get('kube_system_uid') or 'not recorded'}"
    rows.append(
        ("cluster identity", uid + (f"; meshbook sandbox {cluster['sandbox']}" if cluster.get("sandbox") else ""))
    )
    return rows


def _vault(identity: Mapping[str, Any]) -> str:
    image = _get(identity, "observed", "vault CR image")
    server = identity.get("vault_server")
    if image is None and not isinstance(server, Mapping):
        return NOT_RECORDED
    version = str(_get(identity, "vault_server", "version") or "not observed")
    cluster_id = _get(identity, "vault_server", "cluster_id")
    text = f"Vault CR image {image or 'not recorded'}; the server reports version {version} (sys/health)"
    text += f", cluster id {cluster_id}" if cluster_id else ""
    if isinstance(image, str) and ":" in image and version[:1].isdigit() and not image.endswith(f":{version}"):
        sandbox = str(_get(identity, "cluster", "target")) == "sandbox"
        text += ". The server is not the CR's image: " + (
            "the sandbox runs OpenBao behind the CR" if sandbox else "check which image the vault-0 pod runs"
        )
    return text


def _changed(identity: Mapping[str, Any]) -> str:
    changed = identity.get("parameters_changed")
    if not isinstance(changed, Mapping):
        return NOT_RECORDED
    if not changed:
        return "none (all defaults)"
    return "; ".join(f"{key}={value}" for key, value in sorted(changed.items()))


def header_rows(run: RunData) -> list[tuple[str, str]]:
    """(label, value) rows of the report header, in reading order; never a secret (none is recorded)."""
    identity = run.identity
    observed = identity.get("observed") if isinstance(identity.get("observed"), Mapping) else None
    requested = identity.get("requested") if isinstance(identity.get("requested"), Mapping) else {}

    def seen(key: str, asked: str = "") -> str:
        if observed is None:
            return NOT_RECORDED
        text = _images(observed.get(key)) if key in observed else "not observed"
        return text + (f" (asked for {asked})" if asked else "")

    istio_asked = str(requested.get("istio", "")) if requested else ""
    charts = ", ".join(f"{k} {v}" for k, v in requested.items() if "chart" in k) if requested else ""
    leak = leak_scan_summary(run)
    return [
        ("meshbook", _meshbook(identity)),
        *_cluster(identity),
        ("Kubernetes", seen("kubernetes")),
        ("Istio (istiod image)", seen("istiod", istio_asked)),
        ("Bank-Vaults (operator and webhook images)", seen("bank-vaults", charts)),
        ("Vault", _vault(identity)),
        ("parameters changed from the defaults", _changed(identity)),
        ("leak scan", leak.headline if leak else NOT_RECORDED),
    ]
