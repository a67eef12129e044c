"""`meshbook audit`: the audit notebook run headlessly for one context, or for a fleet of contexts at once.

One context is an ordinary run (`meshbook.runbook`: kernel, run directory with its RUNNING marker,
evidence, leak scan, reports, manifest) of `40-audit` on target `live`. A fleet runs one such run per
context in parallel, each a `meshbook audit --context NAME` process of its own (a run keeps its run
directory and kubeconfig in its process's environment), at most `workers` at a time, each into
`contexts/<NAME>/` of the fleet's directory; then one combined report.html (a contexts x findings
matrix first), report.md and junit.xml (one testcase per context and check). A context that cannot be
reached fails its own column with exit 3; the others are audited and reported all the same.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from meshbook.errors import ExitCode, ParameterError
from meshbook.evidence import read_evidence
from meshbook.params import RunbookName, RunbookParams, Target, load_params

FLEET_FILE = "fleet.json"
WORKERS = 4
CONTEXT_TIMEOUT = 600.0  # seconds for one context's whole run (kernel, discovery, finalize)


def audit_params(kubeconfig: str | None, context: str | None) -> RunbookParams:
    """A live, read-only run of the audit notebook alone."""
    base: dict[str, object] = {"target": Target.LIVE.value, "runbooks": [RunbookName.AUDIT.value]}
    if kubeconfig:
        base["kubeconfig"] = str(Path(kubeconfig).expanduser().resolve())
    if context:
        base["kube_context"] = context
    return load_params(base=base)


def kubeconfig_contexts(kubeconfig: str | None) -> list[str]:
    """Every context of the kubeconfig (default $KUBECONFIG or ~/.kube/config), for --all-contexts."""
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    try:
        contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except (ConfigException, FileNotFoundError) as exc:
        raise ParameterError([f"kubeconfig {kubeconfig or '(default)'}: cannot list its contexts: {exc}"]) from None
    return [str(c["name"]) for c in contexts or []]


def finding_lines(run_dir: Path) -> list[str]:
    """The run's findings as `istioctl analyze` prints them (each record's reason is that line)."""
    evidence = run_dir / "evidence.jsonl"
    if not evidence.exists():
        return []
    return [str(r.get("reason")) for r in read_evidence(evidence) if r.get("kind") == "finding"]


def audit_one(kubeconfig: str | None, context: str | None, out: Path) -> int:
    """One context, in this process: the run's summary table, then its findings, like `istioctl analyze`."""
    from meshbook.runbook.summary import run_and_summarize

    params = audit_params(kubeconfig, context)
    code = run_and_summarize(params, out, only=[RunbookName.AUDIT.value], keep_sandbox=False)
    latest = out.expanduser().resolve() / "latest"
    lines = finding_lines(latest) if latest.exists() else []
    for line in lines:  # one line each, unwrapped, for grep and CI logs
        print(line)
    if not lines and code == ExitCode.OK:
        print("No findings: every container that asks for a secret will get it.")
    return code


@dataclass(frozen=True)
class ContextResult:
    context: str
    exit_code: int
    run_dir: Path | None
    output: str


def _slug(context: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", context).strip("_") or "context"


def _run_context(kubeconfig: str | None, context: str, out: Path) -> ContextResult:
    command = [sys.executable, "-m", "meshbook", "audit", "--context", context, "--out", str(out)]
    if kubeconfig:
        command += ["--kubeconfig", kubeconfig]
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=CONTEXT_TIMEOUT, check=False, env=dict(os.environ)
        )
        code, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired:
        code, output = int(ExitCode.TIMEOUT), f"context {context}: no result within {CONTEXT_TIMEOUT:g}s"
    latest = out / "latest"
    run_dir = latest.resolve() if latest.exists() else next(iter(sorted(p for p in out.glob("*") if p.is_dir())), None)
    return ContextResult(context, code, run_dir, output)


def fleet_exit_code(results: Sequence[ContextResult]) -> int:
    """The fleet's exit: the reached columns' codes with the run's precedence (timeout, then findings).

    An unreachable context fails its own column (exit 3 there, in the report and junit.xml), not the
    fleet: the others were audited and their verdict is the fleet's. Only a fleet reaching no context
    at all exits 3."""
    reached = [r for r in results if r.exit_code != int(ExitCode.UNREACHABLE)]
    if results and not reached:
        return int(ExitCode.UNREACHABLE)
    codes = {r.exit_code for r in reached}
    for code in (ExitCode.BAD_INPUT, ExitCode.UNREACHABLE, ExitCode.TIMEOUT, ExitCode.EXPECTATION_FAILED):
        if int(code) in codes:
            return int(code)
    return max(codes, default=int(ExitCode.OK))


def audit_fleet(
    kubeconfig: str | None,
    contexts: Sequence[str],
    out: Path,
    *,
    workers: int = WORKERS,
    progress: Callable[[str], None] = print,
) -> int:
    """Audit every context in parallel into one fleet directory; one combined report; the fleet's exit code."""
    from meshbook.report import build_reports
    from meshbook.runbook.rundir import check_output_folder, create_run_directory, write_text_atomically

    if len(set(contexts)) != len(contexts):
        raise ParameterError([f"--context: each context once, got {', '.join(contexts)}"])
    check_output_folder(out.expanduser().resolve())
    fleet = create_run_directory(out.expanduser().resolve())
    (fleet.path / "contexts").mkdir()
    progress(f"auditing {len(contexts)} context(s), {min(workers, len(contexts))} at a time, into {fleet.path}")
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(contexts)))) as pool:
        futures = [
            pool.submit(_run_context, kubeconfig, name, fleet.path / "contexts" / _slug(name)) for name in contexts
        ]
        results = [f.result() for f in futures]
    for result in results:
        progress(f"== {result.context}: exit {result.exit_code}")
        for line in finding_lines(result.run_dir) if result.run_dir else []:
            progress(f"   {line}")
        if result.exit_code not in (ExitCode.OK, ExitCode.EXPECTATION_FAILED):
            progress(f"   {_last_meaningful_line(result.output)}")
    exit_code = fleet_exit_code(results)
    summary = {
        "fleet_id": fleet.run_id,
        "exit_code": exit_code,
        "contexts": [
            {
                "context": r.context,
                "exit_code": r.exit_code,
                "run_dir": str(r.run_dir.relative_to(fleet.path)) if r.run_dir else None,
            }
            for r in results
        ],
    }
    write_text_atomically(fleet.path / FLEET_FILE, json.dumps(summary, indent=2) + "\n")
    runs = [r.run_dir for r in results if r.run_dir is not None]
    if runs:
        for path in build_reports(runs, fleet.path):
            progress(f"  {path.name}: {path}")
    fleet.finish()
    fleet.publish_as_latest()
    return exit_code


def _last_meaningful_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip().startswith("meshbook:") or "exit" in line]
    return lines[-1] if lines else (output.strip().splitlines() or [""])[-1]
