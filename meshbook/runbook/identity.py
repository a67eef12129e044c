"""What a run ran on, as observed at its end: meshbook itself, the cluster, and each component's version.

A report must stand alone for an auditor, so the run records here (in `summary.json` under `identity`,
and in `manifest.json`) what the cluster showed rather than what the parameters asked for: the API
server's `/version`, the images of istiod and of the Bank-Vaults operator and webhook, the Vault CR's
image and the version the Vault server itself reports (on the sandbox OpenBao answers behind a CR that
names `hashicorp/vault`; both are kept). `meshbook report` on an old run reads it back, never
re-queries. Every step is best effort: what could not be read says why instead of stopping the run.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from meshbook.params import RunbookParams, notebook_parameters

__all__ = ["IDENTITY_KEY", "changed_parameters", "meshbook_build", "run_identity", "vault_server_versions"]

IDENTITY_KEY = "identity"
"""The key of `summary.json` (and `manifest.json`) that holds what this module gathers."""

NOT_A_CHECKOUT = "not a git checkout (installed package)"


def meshbook_build() -> dict[str, str]:
    """meshbook's version and the git commit of the package's own checkout (with `+dirty` when modified)."""
    from meshbook import __version__

    package = Path(__file__).resolve().parent.parent
    commit = NOT_A_CHECKOUT
    try:
        head = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
        lines = head.stdout.split()
        if head.returncode == 0 and len(lines) == 2 and package.is_relative_to(Path(lines[0]).resolve()):
            dirty = subprocess.run(
                ["git", "-C", str(package), "status", "--porcelain", "--untracked-files=no", "--", "."],
                capture_output=True, text=True, timeout=20, check=False,
            )  # fmt: skip
            commit = lines[1] + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {"version": __version__, "commit": commit}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def changed_parameters(params: RunbookParams) -> dict[str, Any]:
    """Dotted parameter -> value, for each parameter that differs from its default (defaults: params.py).

    Parameters never carry a credential (`param_credentials` refuses them at load time), so values are
    shown as they are.
    """
    given, default = (
        _flatten(notebook_parameters(params)),
        _flatten(notebook_parameters(RunbookParams.model_validate({}))),
    )
    return {key: value for key, value in given.items() if default.get(key, object()) != value}


def _images(deployments: Iterable[Any]) -> dict[str, str]:
    """`deployment/container` -> image, for every container of the given Deployments."""
    images: dict[str, str] = {}
    for deployment in deployments:
        name = deployment.metadata.name if deployment.metadata else "?"
        spec = deployment.spec.template.spec if deployment.spec and deployment.spec.template else None
        for container in (spec.containers if spec else None) or []:
            if container.name != "istio-proxy":
                images[f"{name}/{container.name}"] = str(container.image)
    return images


def _cluster(
    api: Any, params: RunbookParams, kubeconfig: str | None, sandbox: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(cluster identity, observed component versions) from the API server; each part says why it is missing."""
    from kubernetes import client

    cluster: dict[str, Any] = {"target": str(params.target), "server": api.configuration.host}
    cluster["context"] = params.kube_context or _current_context(kubeconfig) or "not recorded"
    if sandbox:
        cluster["sandbox"] = sandbox
    observed: dict[str, Any] = {}
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    try:
        observed["kubernetes"] = client.VersionApi(api).get_code().git_version
        kube_system = core.read_namespace("kube-system")
        cluster["kube_system_uid"] = kube_system.metadata.uid if kube_system.metadata else None
        cluster["reachable"] = True
    except Exception as exc:
        cluster["reachable"] = False
        cluster["unreachable_because"] = type(exc).__name__
        return cluster, observed
    for label, namespace, selector in (
        ("istiod", params.istio.namespace, "app=istiod"),
        ("bank-vaults", params.bank_vaults.namespace, None),
    ):
        try:
            found = apps.list_namespaced_deployment(namespace, label_selector=selector or "").items
            observed[label] = _images(found) or f"no Deployment in namespace {namespace}"
        except Exception as exc:
            observed[label] = f"not readable ({type(exc).__name__})"
    try:
        cr: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "vault.banzaicloud.com", "v1alpha1", params.vault.namespace, "vaults", "vault"
        )
        spec = cr.get("spec") if isinstance(cr, dict) else None
        observed["vault CR image"] = str((spec or {}).get("image") or "not set (operator default)")
    except Exception as exc:
        observed["vault CR image"] = f"not readable ({type(exc).__name__})"
    return cluster, observed


def _current_context(kubeconfig: str | None) -> str | None:
    """The kubeconfig's `current-context` (the first file of a KUBECONFIG list), or None."""
    import os

    import yaml

    path = (kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config").split(os.pathsep)[0]
    try:
        data = yaml.safe_load(Path(path).expanduser().read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    current = data.get("current-context") if isinstance(data, dict) else None
    return str(current) if current else None


def vault_server_versions(records: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The Vault server's own answer (`sys/health` version, cluster id) from the run's vault_status records."""
    found: dict[str, str] = {}
    for record in records:
        observed = record.get("observed")
        if record.get("kind") == "vault_status" and isinstance(observed, dict) and observed.get("version"):
            found = {"version": str(observed["version"]), "cluster_id": str(observed.get("cluster_id") or "")}
    return found


def run_identity(
    params: RunbookParams, api: Any, kubeconfig: str | None, evidence: Path, *, sandbox: str | None = None
) -> dict[str, Any]:
    """Everything the report's header shows, gathered once at the end of a run (best effort).

    `api` is None when no cluster could be reached; `sandbox` names the meshbook sandbox's state (its id).
    """
    from meshbook.evidence import read_evidence

    identity: dict[str, Any] = {"meshbook": meshbook_build(), "parameters_changed": changed_parameters(params)}
    if api is None:
        identity["cluster"] = {"target": str(params.target), "reachable": False}
        identity["observed"] = {}
    else:
        identity["cluster"], identity["observed"] = _cluster(api, params, kubeconfig, sandbox)
    try:
        records = read_evidence(evidence) if evidence.exists() else []
    except (OSError, ValueError):
        records = []
    identity["vault_server"] = vault_server_versions(records) or {"version": "not observed (no vault_status record)"}
    identity["requested"] = {
        "istio": params.istio.version,
        "vault-operator chart": params.bank_vaults.operator_chart_version,
        "vault-secrets-webhook chart": params.bank_vaults.webhook_chart_version,
    }
    return identity
