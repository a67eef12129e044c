"""`meshbook audit`'s runs: the audit notebook once per context, in this process, kernels started first.

Each context gets the run `meshbook run --only 40-audit` makes on target live (run directory with its
RUNNING marker, executed notebook, evidence, leak scan, summary.json, reports, manifest, `latest`),
built from the same pieces (`runbook.execute.execute_runbook`, `runbook.finalize`, `runbook.summary`).
What differs is the order, for speed: a context's run directory is created and its kernel started
(booting and importing meshbook and the audit's modules) before this process imports papermill and the
reports; and a kernel gets its run directory and kubeconfig in its own environment, not this process's,
so a fleet's contexts run side by side in threads of one process and share its imports.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from meshbook.errors import ExitCode, StorageError
from meshbook.params import RunbookName, RunbookParams, Target, load_params
from meshbook.progress import ENV_PROGRESS, ProgressFollower
from meshbook.runbook.catalogue import Runbook, select
from meshbook.runbook.environment import ENV_KUBECONFIG, ENV_RUN_DIR, ENV_RUN_ID
from meshbook.runbook.kernels import PRELOAD, IPCKernelManager, kernelspec, start_kernel, stop_kernel
from meshbook.runbook.rundir import RunDirectory, check_output_folder, create_run_directory, incomplete_on_error

if TYPE_CHECKING:
    from meshbook.runbook.execute import RunResult

Progress = Callable[[str], None]

# The kernel imports what the audit notebook imports while this process imports papermill: the
# runbooks' preload, then the audit's modules (the notebook's namespace still starts empty).
AUDIT_PRELOAD = (*PRELOAD, "import meshbook.audit.notebook", "del meshbook")


def audit_params(kubeconfig: str | None, context: str | None) -> RunbookParams:
    """A live, read-only run of the audit notebook alone."""
    base: dict[str, object] = {"target": Target.LIVE.value, "runbooks": [RunbookName.AUDIT.value]}
    if kubeconfig:
        base["kubeconfig"] = str(Path(kubeconfig).expanduser().resolve())
    if context:
        base["kube_context"] = context
    return load_params(base=base)


def audit_notebook() -> Runbook:
    (runbook,) = select([RunbookName.AUDIT])
    return runbook


@dataclass
class AuditRun:
    """One context's audit: its parameters, its run directory, and the kernel booting for it."""

    context: str | None
    params: RunbookParams
    run_dir: RunDirectory
    kernel: IPCKernelManager | None = None

    def environment(self, progress_file: Path | None) -> dict[str, str]:
        """The kernel's environment: this process's, with this run's directory and kubeconfig (the
        variables `meshbook run` sets) and the progress file the terminal follows, if any."""
        env = dict(os.environ)
        env[ENV_RUN_DIR], env[ENV_RUN_ID] = str(self.run_dir.path), self.run_dir.run_id
        if self.params.kubeconfig:
            env[ENV_KUBECONFIG] = self.params.kubeconfig
        env.pop(ENV_PROGRESS, None)
        if progress_file is not None:
            env[ENV_PROGRESS] = str(progress_file)
        return env

    def start_kernel(self, cwd: Path, progress_file: Path | None = None) -> None:
        """`kernels.start_kernel` with this run's environment and the audit's preload (inside `kernelspec()`)."""
        with incomplete_on_error(self.run_dir, "its kernel did not start"):
            self.kernel = start_kernel(cwd, AUDIT_PRELOAD, self.environment(progress_file))

    def take_kernel(self) -> IPCKernelManager | None:
        kernel, self.kernel = self.kernel, None
        return kernel


def open_run(kubeconfig: str | None, context: str | None, out: Path) -> AuditRun:
    """The run directory for one context under `out`, created with its RUNNING marker."""
    params = audit_params(kubeconfig, context)
    try:
        run_dir = create_run_directory(out)
    except OSError as exc:
        raise StorageError(exc.filename or out, exc) from None
    return AuditRun(context, params, run_dir)


@contextlib.contextmanager
def stopping_kernels(runs: Sequence[AuditRun]) -> Iterator[None]:
    """Kernels no notebook took are stopped however the block ends (an interrupt, an error before a run)."""
    try:
        yield
    finally:
        for run in runs:
            kernel = run.take_kernel()
            if kernel is not None:
                stop_kernel(kernel)


def import_ahead() -> None:
    """What this process needs once its kernels run, imported while they boot (about 2 s of CPU each):
    papermill for the notebook (without the grammar jsonschema would compile: `import_papermill`), then
    the end of a run (identity's Kubernetes API classes, the leak scan, the reports)."""
    from meshbook.kube.client import load_api_classes
    from meshbook.runbook.execute import import_papermill

    import_papermill()
    load_api_classes()

    import meshbook.runbook.finalize
    import meshbook.runbook.summary  # noqa: F401


def execute(run: AuditRun, runbook: Runbook, progress: Progress) -> RunResult:
    """The notebook in the run's kernel, then the end of `meshbook run`'s runs: cluster identity, a leak
    scan of the run directory (only what this audit wrote), reasons redacted. The notebook's own failure
    is a result, not an exception; a run directory that cannot be written is marked INCOMPLETE.

    The identity's requests go out while the leak scan reads the run directory: the audit changed
    nothing in the cluster, and the scan is this process's work, the requests the API server's."""
    from meshbook.evidence import default_redactor
    from meshbook.runbook.execute import RunResult, execute_runbook
    from meshbook.runbook.finalize import cluster_identity, gather_identity, scan_run_directory

    result = RunResult(run.run_dir)
    with incomplete_on_error(run.run_dir, "the audit stopped"):
        notebook = execute_runbook(
            runbook, run.params, run.run_dir, timeout=run.params.timeouts.notebook, kernel=run.take_kernel()
        )
        result.results.append(notebook)
        shown = default_redactor().redact(notebook.reason)  # before the leak scan: the patterns of secrets
        progress(f"      {notebook.outcome} in {notebook.seconds:.1f}s" + (f": {shown}" if shown else ""))
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="meshbook-identity") as pool:
            cluster = pool.submit(cluster_identity, run.params)
            identity = pool.submit(gather_identity, run.params, run.run_dir)
            result.leaks, known, coverage = scan_run_directory(run.run_dir, run.params)
            result.cluster, result.identity = cluster.result(), identity.result()
        result.leak_scan = coverage.as_dict()
        result.identity = known.redact_obj(result.identity)
        notebook.reason, notebook.error = known.redact(notebook.reason), known.redact(notebook.error)
        for leak in result.leaks:
            progress(f"LEAK: {leak['secret']} ({leak['encoding']}) in {leak['path']}, scrubbed: {leak['scrubbed']}")
    return result


def finish(run: AuditRun, result: RunResult) -> list[Path]:
    """summary.json, the reports and the manifest, as `meshbook run` writes them; `latest` moves here."""
    from meshbook.runbook.summary import finish_run

    with incomplete_on_error(run.run_dir, "the run's end was not written"):
        return finish_run(run.params, result)


def finding_lines(run_dir: Path) -> list[str]:
    """The run's findings as `istioctl analyze` prints them (each record's reason is that line)."""
    from meshbook.evidence import read_evidence

    evidence = run_dir / "evidence.jsonl"
    if not evidence.exists():
        return []
    return [str(r.get("reason")) for r in read_evidence(evidence) if r.get("kind") == "finding"]


def audit_one(kubeconfig: str | None, context: str | None, out: Path) -> int:
    """One context: its run's progress and summary table, then its findings, like `istioctl analyze`."""
    out = out.expanduser().resolve()
    check_output_folder(out)  # exit 2 before a kernel starts
    runbook = audit_notebook()
    with kernelspec() as kernel_dir:
        progress_file = kernel_dir / "progress.jsonl"
        run = open_run(kubeconfig, context, out)
        with stopping_kernels([run]):
            run.start_kernel(runbook.path.parent, progress_file)
            import_ahead()
            from rich.console import Console

            from meshbook.runbook.summary import print_run_end

            console = Console()
            console.print(f"[1/1] {runbook.name}: {runbook.title}")
            with ProgressFollower(progress_file, console.print):
                result = execute(run, runbook, console.print)
    reports = finish(run, result)
    print_run_end(console, result, reports)
    lines = finding_lines(result.run_dir.path)
    for line in lines:  # one line each, unwrapped, for grep and CI logs
        print(line)
    if not lines and result.exit_code is ExitCode.OK:
        print("No findings: every container that asks for a secret will get it.")
    return int(result.exit_code)
