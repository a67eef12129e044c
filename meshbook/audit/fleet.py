"""`meshbook audit` over a fleet: the audit notebook for several contexts at once, in one process.

Each context is an ordinary audit run (`audit.run`) into `contexts/<NAME>/` of the fleet's directory.
The first `workers` contexts' kernels are started before anything else, all at once, while this process
imports papermill; then up to `workers` contexts run at a time, in threads sharing this process's
imports (each kernel has its run directory and kubeconfig in its own environment). Then one combined
report.html (a contexts x findings matrix first), report.md and junit.xml (one testcase per context and
check). A context that cannot be reached fails its own column with exit 3; the others are audited and
reported all the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from meshbook.audit.run import (
    AuditRun,
    audit_notebook,
    execute,
    finding_lines,
    finish,
    import_ahead,
    open_run,
    stopping_kernels,
)
from meshbook.errors import ExitCode, MeshbookError, ParameterError
from meshbook.runbook.catalogue import Runbook
from meshbook.runbook.kernels import kernelspec
from meshbook.runbook.rundir import check_output_folder, create_run_directory, write_text_atomically

FLEET_FILE = "fleet.json"
WORKERS = 4


def kubeconfig_contexts(kubeconfig: str | None) -> list[str]:
    """Every context of the kubeconfig (default $KUBECONFIG or ~/.kube/config), for --all-contexts."""
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    try:
        contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except (ConfigException, FileNotFoundError) as exc:
        raise ParameterError([f"kubeconfig {kubeconfig or '(default)'}: cannot list its contexts: {exc}"]) from None
    return [str(c["name"]) for c in contexts or []]


@dataclass(frozen=True)
class ContextResult:
    context: str
    exit_code: int
    run_dir: Path | None
    reason: str  # why a column failed other than by its findings (the notebook's reason, or the error)


def _slug(context: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", context).strip("_") or "context"


def _audit_context(run: AuditRun, runbook: Runbook) -> ContextResult:
    """One column: the run, ended and reported in its own directory; an error is this column's exit code."""
    context = str(run.context)
    try:
        if run.kernel is None:  # beyond the first `workers` contexts: started when a worker takes it
            run.start_kernel(runbook.path.parent)
        result = execute(run, runbook, lambda line: None)
        finish(run, result)
    except MeshbookError as exc:
        return ContextResult(context, int(exc.exit_code), run.run_dir.path, f"meshbook: {exc}")
    reasons = [r.reason for r in result.results if r.reason]
    return ContextResult(context, int(result.exit_code), run.run_dir.path, "; ".join(reasons))


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
    if len(set(contexts)) != len(contexts):
        raise ParameterError([f"--context: each context once, got {', '.join(contexts)}"])
    workers = max(1, min(workers, len(contexts)))
    out = out.expanduser().resolve()
    check_output_folder(out)
    runbook = audit_notebook()
    fleet = create_run_directory(out)
    (fleet.path / "contexts").mkdir()
    with kernelspec():
        runs = [open_run(kubeconfig, name, fleet.path / "contexts" / _slug(name)) for name in contexts]
        with stopping_kernels(runs):
            for run in runs[:workers]:
                run.start_kernel(runbook.path.parent)
            progress(f"auditing {len(contexts)} context(s), {workers} at a time, into {fleet.path}")
            import_ahead()  # once, while the kernels boot, not by each thread

            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="meshbook-audit") as pool:
                results = list(pool.map(lambda run: _audit_context(run, runbook), runs))
    for result in results:
        progress(f"== {result.context}: exit {result.exit_code}")
        for line in finding_lines(result.run_dir) if result.run_dir else []:
            progress(f"   {line}")
        if result.exit_code not in (ExitCode.OK, ExitCode.EXPECTATION_FAILED) and result.reason:
            progress(f"   {result.reason}")
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
    from meshbook.report import build_reports

    runs_written = [r.run_dir for r in results if r.run_dir is not None]
    if runs_written:
        for path in build_reports(runs_written, fleet.path):
            progress(f"  {path.name}: {path}")
    fleet.finish()
    fleet.publish_as_latest()
    return exit_code
