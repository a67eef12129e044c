"""The end of a run: scan every file of the run directory for known secrets, scrub any hit.

A hit fails the run (exit 1): the scrubbed file no longer holds the value, and the leak is listed (path,
secret class, source, encoding, count; never the value) in the summary and the manifest, next to the
scan's coverage (classes with their number of values, encodings, files read) so its scope is on record.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from meshbook.bankvaults.secrets import known_secrets
from meshbook.evidence import Redactor, ScanCoverage, default_redactor, scan_directory, scrub
from meshbook.evidence.leakscan import PATTERN_CLASS, PATTERN_LABEL, values_found_by_pattern
from meshbook.kube.client import api_client
from meshbook.params import RunbookParams
from meshbook.runbook.environment import ENV_KUBECONFIG
from meshbook.runbook.rundir import RunDirectory


def prepare() -> None:
    """Load what the run's end needs while the notebooks run (the runner's process only waits on them):
    this module's imports (the Kubernetes client), the reports and the pattern pass's compiled rules,
    about 2.5 s of CPU that would otherwise come after the last notebook."""
    import meshbook.report.build  # noqa: F401
    from meshbook.evidence.detectors import load_rules
    from meshbook.kube.client import load_api_classes

    load_api_classes()
    load_rules()


def scan_run_directory(
    run_dir: RunDirectory, params: RunbookParams
) -> tuple[list[dict[str, Any]], Redactor, ScanCoverage]:
    """Leaks found (already scrubbed), as plain records for the summary and manifest; a redactor of
    every known secret, for what the run writes after the scan (summary reasons, the terminal); and
    what the scan covered."""
    api = _api_for(params)  # None without a cluster: scan for the values known without one
    try:
        known = known_secrets(
            api, params, sandbox_state=sandbox_state_dir(_kubeconfig(params) or os.environ.get("KUBECONFIG"))
        )
    finally:
        if api is not None:
            api.close()
    labels = known.labels()
    only_known = Redactor()
    for value, label in labels.items():
        only_known.add(value, label=label)
    labels.update(values_found_by_pattern(run_dir.path, only_known))  # what nobody knew, by its shape
    patterned = {value: label for value, label in labels.items() if label.startswith(PATTERN_LABEL)}
    redactor = default_redactor()
    for value, label in labels.items():
        redactor.add(value, label=label)
    result = scan_directory(run_dir.path, labels)
    counts = dict(known.counts())
    counts[PATTERN_CLASS] = len(patterned)
    coverage = ScanCoverage(counts, result.files, result.bytes, result.compressed, tuple(known.unread))
    if not result.leaks:
        return [], redactor, coverage
    report = scrub(run_dir.path, result.leaks, redactor)
    unclean = {str(path) for path, _ in report.not_scrubbed}
    return (
        [
            {
                "path": str(Path(leak.path).relative_to(run_dir.path))
                if Path(leak.path).is_absolute()
                else str(leak.path),
                "secret": leak.label_or_hint,
                "encoding": leak.encoding,
                "count": leak.count,
                "scrubbed": str(leak.path) not in unclean,
            }
            for leak in result.leaks
        ],
        redactor,
        coverage,
    )


def sandbox_state_dir(kubeconfig: str | None) -> Path | None:
    """The state directory of the meshbook sandbox a kubeconfig belongs to, running or just stopped."""
    from meshbook.sandbox import control

    found = control.from_kubeconfig(kubeconfig)
    if found is not None or not kubeconfig:
        return found
    path = Path(kubeconfig.split(os.pathsep)[0]).expanduser().resolve()
    # A stopped sandbox leaves its keys behind (until an ephemeral state is removed): know it by its files.
    if path.name == "kubeconfig" and (path.parent / "ca.key").is_file() and (path.parent / "token").is_file():
        return path.parent
    return None


def _kubeconfig(params: RunbookParams) -> str | None:
    return os.environ.get(ENV_KUBECONFIG) or params.kubeconfig


def _api_for(params: RunbookParams) -> Any:
    kubeconfig = _kubeconfig(params)
    try:
        return api_client(kubeconfig, None if os.environ.get(ENV_KUBECONFIG) else params.kube_context)
    except Exception:
        return None


def gather_identity(params: RunbookParams, run_dir: RunDirectory) -> dict[str, Any]:
    """The run's identity for the top of its reports (`runbook.identity`): meshbook, cluster, versions."""
    from meshbook.runbook.identity import run_identity

    kubeconfig = _kubeconfig(params) or os.environ.get("KUBECONFIG")
    state = sandbox_state_dir(kubeconfig) if str(params.target) == "sandbox" else None
    api = _api_for(params)
    try:
        return run_identity(params, api, kubeconfig, run_dir.evidence, sandbox=state.name if state else None)
    finally:
        if api is not None:
            api.close()


def cluster_identity(params: RunbookParams) -> dict[str, Any]:
    """Which cluster the run used: API server address and version, kube-system uid (best effort)."""
    from kubernetes import client

    api = _api_for(params)
    if api is None:
        return {"target": str(params.target), "reachable": False}
    identity: dict[str, Any] = {"target": str(params.target), "server": api.configuration.host}
    try:
        identity["version"] = client.VersionApi(api).get_code().git_version
        kube_system = client.CoreV1Api(api).read_namespace("kube-system")
        identity["kube_system_uid"] = kube_system.metadata.uid if kube_system.metadata else None
        identity["reachable"] = True
    except Exception:
        identity["reachable"] = False
    finally:
        api.close()
    return identity
