"""Where a notebook runs: its parameters, cluster, run directory, evidence writer and redactor.

`meshbook run` passes the run directory and the cluster's kubeconfig to each notebook's kernel through
the environment (they are not parameters: parameters are stored in the executed notebook); run by hand
in JupyterLab, a notebook talks to the sandbox that `meshbook sandbox up` / `meshbook lab` started and
keeps its evidence in memory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from meshbook.errors import UnreachableError
from meshbook.evidence import EvidenceWriter, Redactor, default_redactor, fingerprint_key
from meshbook.kube.client import api_client
from meshbook.params import RunbookParams, Target, load_params
from meshbook.runbook.environment import ENV_KUBECONFIG, ENV_RUN_DIR, ENV_RUN_ID, PARAMETER_NAMES


def params_from_scope(scope: Mapping[str, Any]) -> RunbookParams:
    """The notebook's parameter variables (as papermill injected them) validated as RunbookParams."""
    given = {name: scope[name] for name in PARAMETER_NAMES if name in scope and scope[name] is not None}
    for section in ("istio", "bank_vaults", "vault", "app", "timeouts", "sandbox"):
        if section in given and not given[section]:
            del given[section]
    # Under `meshbook run` the values are the runner's, already refused if they carried a credential; in
    # JupyterLab a user may have typed them, so they are checked.
    return load_params(base=given, credentials_checked=bool(os.environ.get(ENV_RUN_DIR)))


def _kubeconfig_for(params: RunbookParams) -> tuple[str | None, str | None]:
    from_runner = os.environ.get(ENV_KUBECONFIG)
    if from_runner:  # a live run's --context still picks the context of the runner's kubeconfig
        return from_runner, params.kube_context if params.target is Target.LIVE else None
    if params.target is Target.SANDBOX:
        from meshbook.sandbox import control

        state = Path(params.sandbox.state_dir).expanduser() if params.sandbox.state_dir else control.default_state_dir()
        info = control.running(state.resolve())
        if info is None:
            raise UnreachableError(
                f"no sandbox is running for {state}; start one with `meshbook sandbox up` (or use `meshbook lab`)"
            )
        return str(info.kubeconfig), None
    return params.kubeconfig, params.kube_context


def _require_reachable(api: client.ApiClient) -> None:
    """Fail first (exit 3) when the cluster does not answer, before any step blames something else."""
    try:
        client.VersionApi(api).get_code(_request_timeout=15)
    except Exception as exc:
        raise UnreachableError(
            f"cannot reach the cluster at {api.configuration.host}: {_cause(exc)}; check the kubeconfig, "
            "the context and that the API server is up"
        ) from None


def _cause(exc: BaseException) -> str:
    """The root of a connection failure in words (e.g. `Connection refused`), not urllib3's wrapping."""
    reason = getattr(exc, "reason", None)
    text = str(reason if reason is not None else exc)
    for known in ("Connection refused", "Name or service not known", "timed out", "certificate verify failed"):
        if known in text:
            return known
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


@dataclass
class RunContext:
    params: RunbookParams
    notebook: str
    api: client.ApiClient
    redactor: Redactor
    evidence: EvidenceWriter | None
    fingerprint_key: bytes
    run_dir: Path | None = None
    records: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def open(cls, params: RunbookParams, notebook: str) -> RunContext:
        kubeconfig, context = _kubeconfig_for(params)
        api = api_client(kubeconfig, context)
        _require_reachable(api)
        redactor = default_redactor()
        token = getattr(api.configuration, "api_key", {}).get("authorization", "")
        if token:
            redactor.add(token.removeprefix("Bearer ").strip(), label="kubeconfig token")
        run_dir_text = os.environ.get(ENV_RUN_DIR)
        run_dir = Path(run_dir_text) if run_dir_text else None
        evidence = None
        if run_dir is not None:
            run_id = os.environ.get(ENV_RUN_ID, run_dir.name)
            evidence = EvidenceWriter(run_dir / "evidence.jsonl", run_id, redactor=redactor)
        return cls(params, notebook, api, redactor, evidence, fingerprint_key(), run_dir)
