"""`meshbook run`: validate parameters, bring up the cluster, execute the runbooks with papermill.

Notebooks run in order, each in a fresh kernel of this very Python (a kernelspec written for the run,
ZeroMQ over IPC sockets rather than TCP ports). The run directory and the cluster's kubeconfig reach
the kernels through the environment, never as parameters. A cell that raises ends that notebook; the
error's type decides the exit code (DESIGN: 1 expectation, 3 unreachable or kernel died, 4 timeout);
later notebooks still run after an expectation failed, but not after the cluster became unreachable.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshbook.errors import ExitCode, MeshbookError, StorageError
from meshbook.evidence import default_redactor
from meshbook.params import RunbookParams, Target, notebook_parameters
from meshbook.progress import ENV_PROGRESS, ProgressFollower
from meshbook.runbook.catalogue import Runbook, select, with_prerequisites
from meshbook.runbook.environment import ENV_KUBECONFIG, ENV_RUN_DIR, ENV_RUN_ID, PARAMETER_NAMES
from meshbook.runbook.kernels import (
    KERNEL_NAME,
    IPCKernelManager,
    kernelspec,
    start_kernel,
    stop_kernel,
    wait_until_ready,
)
from meshbook.runbook.rundir import (
    RunDirectory,
    atomic_notebook_path,
    create_run_directory,
    incomplete_on_error,
    sync_file,
)

# Exception names raised in a notebook cell -> the run's exit code.
EXIT_FOR_ERROR: dict[str, ExitCode] = {
    "ExpectationFailed": ExitCode.EXPECTATION_FAILED,
    "UnreachableError": ExitCode.UNREACHABLE,
    "WaitTimeoutError": ExitCode.TIMEOUT,
    "ParameterError": ExitCode.BAD_INPUT,
    "DeadKernelError": ExitCode.UNREACHABLE,
    "MaxRetryError": ExitCode.UNREACHABLE,
    "ConnectionRefusedError": ExitCode.UNREACHABLE,
    # The run directory became unwritable from a cell (disk full, read-only): the environment, not the scenario.
    "OSError": ExitCode.UNREACHABLE,
    "PermissionError": ExitCode.UNREACHABLE,
}


def exit_code_for(error_name: str) -> ExitCode:
    """The exit code for an exception raised in a cell: a MeshbookError's own, else the table above."""

    def subclasses(cls: type[MeshbookError]) -> list[type[MeshbookError]]:
        return [cls, *(sub for child in cls.__subclasses__() for sub in subclasses(child))]

    import meshbook.install  # noqa: F401 - its errors (ToolMissingError) declare their codes

    for cls in subclasses(MeshbookError):
        if cls.__name__ == error_name:
            return cls.exit_code
    return EXIT_FOR_ERROR.get(error_name, ExitCode.EXPECTATION_FAILED)


def import_papermill() -> None:
    """Import papermill (and nbclient, nbformat) without rfc3987_syntax: jsonschema, which nbformat
    imports, builds that package's 38 lark grammars at import (about 2 s of CPU) only to check the `iri`
    string format. Nothing in this process asks for it: nbformat validates notebooks with fastjsonschema
    and its schemas have no string formats. A `None` in sys.modules makes jsonschema's guarded import
    fail, so that format is left unchecked, as when the package is not installed."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    import papermill  # noqa: F401


STOP_AFTER = {ExitCode.UNREACHABLE, ExitCode.BAD_INPUT}
# The notebook (counted from 1) during which the run's end loads (`finalize.prepare`, ~2.5 s of CPU in
# this process): not during the first two, the prerequisites, whose cells keep the runner busy and
# whose successors' kernels are still importing (held up by its GIL, papermill's saves between cells
# stalled for a quarter second, the third kernel not ready in time), but with the first scenario, whose
# cells mostly wait for Vault's pods; with the last notebook in a shorter run.
PREPARE_THE_END_WITH = 3
KERNEL_START_TIMEOUT = 60.0  # seconds for a kernel to answer its first request


@dataclass
class NotebookResult:
    runbook: Runbook
    exit_code: ExitCode
    seconds: float
    cell: int | None = None
    error: str = ""
    reason: str = ""

    @property
    def outcome(self) -> str:
        if self.error == "skipped":
            return "skipped"
        return "pass" if self.exit_code is ExitCode.OK else "fail"


@dataclass
class RunResult:
    run_dir: RunDirectory
    results: list[NotebookResult] = field(default_factory=list)
    leaks: list[dict[str, Any]] = field(default_factory=list)
    leak_scan: dict[str, Any] = field(default_factory=dict)  # what the scan covered (ScanCoverage.as_dict)
    cluster: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)  # runbook.identity: meshbook, cluster, versions

    @property
    def exit_code(self) -> ExitCode:
        codes = [r.exit_code for r in self.results if r.exit_code is not ExitCode.OK]
        if self.leaks:
            codes.append(ExitCode.EXPECTATION_FAILED)
        # Precedence: an unreachable cluster explains later failures; then timeouts; then expectations.
        for code in (ExitCode.BAD_INPUT, ExitCode.UNREACHABLE, ExitCode.TIMEOUT, ExitCode.EXPECTATION_FAILED):
            if code in codes:
                return code
        return max(codes, default=ExitCode.OK)  # e.g. NOT_AVAILABLE


def notebook_parameters_for(params: RunbookParams) -> dict[str, Any]:
    data = notebook_parameters(params)
    return {name: data[name] for name in PARAMETER_NAMES}


def execute_runbook(
    runbook: Runbook,
    params: RunbookParams,
    run_dir: RunDirectory,
    *,
    timeout: float,
    kernel: IPCKernelManager | None = None,
) -> NotebookResult:
    """Run one notebook into the run directory; a failure of any kind becomes a result, never a hang.

    `timeout` bounds the whole notebook: each cell gets what is left of it, capped at `timeouts.cell`,
    so a frozen kernel or a stuck cell ends the notebook with exit 4 and a dead kernel with exit 3.
    `kernel`, when given, is a kernel started ahead for this notebook (`kernels.start_kernel`); it is
    shut down when the notebook ends, as papermill shuts down its own.
    """
    import_papermill()
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from meshbook.runbook.papermill_engine import ENGINE_NAME

    output = run_dir.notebooks / runbook.path.name
    started = time.monotonic()
    deadline = started + timeout
    running: dict[str, Any] = {}

    def cell_timeout(cell: Mapping[str, Any]) -> int:
        running["cell_id"] = cell.get("id")
        left = deadline - time.monotonic()
        running["limit"] = "timeouts.notebook" if left < params.timeouts.cell else "timeouts.cell"
        return max(1, math.ceil(min(params.timeouts.cell, left)))

    try:
        papermill.execute_notebook(
            str(runbook.path),
            atomic_notebook_path(output),
            parameters=notebook_parameters_for(params),
            kernel_name=KERNEL_NAME,
            engine_name=ENGINE_NAME,  # one save between two cells
            progress_bar=False,
            cwd=str(runbook.path.parent),
            start_timeout=max(1, math.ceil(min(KERNEL_START_TIMEOUT, timeout))),
            timeout_func=cell_timeout,
            kernel_manager_class=IPCKernelManager,
            km=kernel,
        )
    except PapermillExecutionError as exc:
        code = exit_code_for(exc.ename)
        cell = _failing_cell(output, exc.exec_count)
        return NotebookResult(runbook, code, time.monotonic() - started, cell, exc.ename, _first_line(exc.evalue))
    except Exception as exc:  # the kernel died, froze, or could not start
        seconds = time.monotonic() - started
        cell = _cell_index(output, running.get("cell_id"))
        name = type(exc).__name__
        where = f"cell {cell}" if cell is not None else "a cell"
        if name == "DeadKernelError":
            reason = f"the kernel died while running {where} (killed or crashed; its output up to then is kept)"
            return NotebookResult(runbook, ExitCode.UNREACHABLE, seconds, cell, name, reason)
        if name == "CellTimeoutError":
            limit = running.get("limit", "timeouts.cell")
            value = params.timeouts.notebook if limit == "timeouts.notebook" else params.timeouts.cell
            reason = f"{where} did not finish within {limit} ({value:g}s); the kernel was stopped"
            return NotebookResult(runbook, ExitCode.TIMEOUT, seconds, cell, name, reason)
        if name == "RuntimeError" and "Kernel died before replying" in str(exc):
            reason = "the kernel died while starting, before it ran any cell"
            return NotebookResult(runbook, ExitCode.UNREACHABLE, seconds, None, "DeadKernelError", reason)
        if name == "RuntimeError" and "didn't respond" in str(exc):
            return NotebookResult(runbook, ExitCode.TIMEOUT, seconds, None, "KernelStartTimeout", _first_line(str(exc)))
        code = EXIT_FOR_ERROR.get(name, ExitCode.UNREACHABLE)
        return NotebookResult(runbook, code, seconds, cell, name, _first_line(str(exc)))
    finally:
        if kernel is not None:
            stop_kernel(kernel)
        sync_file(output)  # papermill's last save, renamed into place without an fsync
    return NotebookResult(runbook, ExitCode.OK, time.monotonic() - started)


def _cell_index(executed: Path, cell_id: str | None) -> int | None:
    """The index of the cell with this id in the executed notebook (papermill adds banner cells)."""
    if cell_id is None:
        return None
    import nbformat

    try:
        book = nbformat.read(str(executed), as_version=4)  # type: ignore[no-untyped-call]
    except (OSError, ValueError):
        return None
    return next((i for i, cell in enumerate(book.cells) if cell.get("id") == cell_id), None)


def _failing_cell(executed: Path, exec_count: int | None) -> int | None:
    """The failing cell's index in the EXECUTED notebook (papermill adds banner cells before it)."""
    import nbformat

    try:
        book = nbformat.read(str(executed), as_version=4)  # type: ignore[no-untyped-call]
    except (OSError, ValueError):
        return None
    for index, cell in enumerate(book.cells):
        if cell.cell_type == "code" and any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return index
        if exec_count is not None and cell.get("execution_count") == exec_count:
            return index
    return None


def _first_line(text: str) -> str:
    """The message's first line, whole: reasons name the deciding objects at their end."""
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def run_runbooks(
    params: RunbookParams,
    out: Path,
    *,
    only: list[str] | None = None,
    keep_sandbox: bool = False,
    progress: Callable[[str], None] = print,
    finish: Callable[[RunResult], None] | None = None,
) -> RunResult:
    """Execute the selected runbooks into a new run directory under `out`; never raises for notebook errors.

    `finish` (the summary, reports and manifest) is called once the leak scan is done, while the run's
    sandbox stops in a thread: the server's shutdown overlaps the run's last writes. Either way the
    sandbox has ended (or was kept) when this returns or raises."""
    runbooks = select(only or [str(n) for n in params.runbooks])
    if not runbooks:
        raise MeshbookError("no runbook selected: check --only and the `runbooks` parameter")
    added: list[Runbook] = []
    if params.target is Target.SANDBOX and not params.sandbox.state_dir:
        # The run's own sandbox starts empty: what the named runbooks build on must run first.
        runbooks, added = with_prerequisites(runbooks)
    # Absolute: notebooks run with their own directory as cwd, and read the run directory from the environment.
    try:
        run_dir = create_run_directory(out.expanduser().resolve())
    except OSError as exc:
        raise StorageError(exc.filename or out, exc) from None
    result = RunResult(run_dir)
    env_before = {k: os.environ.get(k) for k in (ENV_RUN_DIR, ENV_KUBECONFIG, ENV_RUN_ID, ENV_PROGRESS)}
    sandbox_state: Path | None = None
    started_sandbox = False
    stopping: threading.Thread | None = None
    shown_redactor = default_redactor()
    try:
        with incomplete_on_error(run_dir):
            os.environ[ENV_RUN_DIR] = str(run_dir.path)
            os.environ[ENV_RUN_ID] = run_dir.run_id
            state = _sandbox_state_dir(params, run_dir) if params.target is Target.SANDBOX else None
            if state is not None:
                # Where the sandbox writes its kubeconfig: kernels started before it is up read it later.
                os.environ[ENV_KUBECONFIG] = str(state / "kubeconfig")
            elif params.kubeconfig:
                os.environ[ENV_KUBECONFIG] = str(Path(params.kubeconfig).expanduser().resolve())
            with kernelspec() as kernel_dir, ProgressFollower(kernel_dir / "progress.jsonl", progress) as follower:
                os.environ[ENV_PROGRESS] = str(follower.path)
                # The first kernel and papermill's import overlap the sandbox's start, which mostly waits.
                ahead: list[IPCKernelManager] = [start_kernel(runbooks[0].path.parent)]
                ending = threading.Thread(target=_prepare_the_end, name="prepare the run's end", daemon=True)
                importing = threading.Thread(target=import_papermill, name="import papermill", daemon=True)
                importing.start()
                try:
                    if state is not None:
                        sandbox_state, kubeconfig, started_sandbox = _start_sandbox(
                            params, state, progress, keep=keep_sandbox
                        )
                        if kubeconfig != os.environ[ENV_KUBECONFIG]:  # a reused sandbox elsewhere: restart with its own
                            os.environ[ENV_KUBECONFIG] = kubeconfig
                            for started in ahead:
                                stop_kernel(started)
                            ahead = [start_kernel(runbooks[0].path.parent)]
                    if added:
                        names = ", ".join(str(rb.name) for rb in added)
                        progress(f"the run's sandbox starts empty: running the prerequisites first: {names}")
                    importing.join()
                    for index, runbook in enumerate(runbooks):
                        progress(f"[{index + 1}/{len(runbooks)}] {runbook.name}: {runbook.title}")
                        kernel = ahead.pop(0) if ahead else None
                        # The next notebook's kernel starts while this one runs: its start and imports are hidden.
                        # When this notebook starts it, the one after starts too once this notebook's kernel is
                        # up, so at most two boot at once on two cores: a short notebook next (the second
                        # prerequisite) leaves the kernel after it too little time to boot (the first
                        # scenario waited 1.2 s for its kernel).
                        if index + 1 < len(runbooks) and not ahead:
                            ahead.append(start_kernel(runbooks[index + 1].path.parent))
                            if (
                                index + 2 < len(runbooks)
                                and kernel is not None
                                and wait_until_ready(kernel, min(KERNEL_START_TIMEOUT, params.timeouts.notebook))
                            ):
                                ahead.append(start_kernel(runbooks[index + 2].path.parent))
                        if index == min(PREPARE_THE_END_WITH, len(runbooks)) - 1:
                            ending.start()
                        notebook = execute_runbook(
                            runbook, params, run_dir, timeout=params.timeouts.notebook, kernel=kernel
                        )
                        result.results.append(notebook)
                        shown = shown_redactor.redact(notebook.reason)  # before the leak scan: the patterns of secrets
                        progress(
                            f"      {notebook.outcome} in {notebook.seconds:.1f}s" + (f": {shown}" if shown else "")
                        )
                        if notebook.exit_code in STOP_AFTER:
                            reason = f"not run: {runbook.name} ended the run"
                            result.results += [
                                NotebookResult(r, ExitCode.OK, 0.0, None, "skipped", reason)
                                for r in runbooks[index + 1 :]
                            ]
                            break
                finally:
                    for started in ahead:  # started for notebooks the run did not reach
                        stop_kernel(started)
            if ending.is_alive():
                ending.join()
            from meshbook.runbook.finalize import cluster_identity, gather_identity, scan_run_directory

            result.cluster = cluster_identity(params)
            result.identity = gather_identity(params, run_dir)
            result.leaks, known, coverage = scan_run_directory(run_dir, params)
            result.leak_scan = coverage.as_dict()
            result.identity = known.redact_obj(result.identity)
            for item in result.results:  # reasons reach summary.json, the reports and the terminal: no secret
                item.reason, item.error = known.redact(item.reason), known.redact(item.error)
            for leak in result.leaks:
                progress(f"LEAK: {leak['secret']} ({leak['encoding']}) in {leak['path']}, scrubbed: {leak['scrubbed']}")
        # Outside the block above: the run's end marks its own failures INCOMPLETE, in its words.
        if sandbox_state is not None and started_sandbox and not keep_sandbox and finish is not None:
            stopping = threading.Thread(
                target=_stop_sandbox,
                args=(sandbox_state,),
                kwargs={"ephemeral": not params.sandbox.state_dir, "progress": progress},
                name="stop the sandbox",
            )
            stopping.start()
        if finish is not None:
            finish(result)
    finally:
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if sandbox_state is not None and keep_sandbox:
            progress(f"sandbox kept running: export KUBECONFIG={sandbox_state / 'kubeconfig'}")
            progress(f"  stop it with: meshbook sandbox down --state {sandbox_state}")
        if stopping is not None:
            stopping.join()
        elif sandbox_state is not None and started_sandbox and not keep_sandbox:
            _stop_sandbox(sandbox_state, ephemeral=not params.sandbox.state_dir, progress=progress)
    return result


def _prepare_the_end() -> None:
    from meshbook.runbook.finalize import prepare

    prepare()


def _stop_sandbox(state: Path, *, ephemeral: bool, progress: Callable[[str], None]) -> None:
    """Stop the run's sandbox without hiding how the run ended; an ephemeral one's state (keys included)
    goes even when the server had to be killed before it could remove it itself."""
    from meshbook.sandbox import control

    try:
        control.down(state)
    except MeshbookError as exc:
        progress(f"warning: {exc}")
    finally:
        if ephemeral:
            shutil.rmtree(state, ignore_errors=True)


def _sandbox_state_dir(params: RunbookParams, run_dir: RunDirectory) -> Path:
    """The run's sandbox state directory: `sandbox.state_dir`, else the run's own.

    It holds Vault's keys and secrets: it lives in the user's state directory, never under the run
    directory that is shared as evidence."""
    from meshbook.sandbox import control

    if params.sandbox.state_dir:
        return Path(params.sandbox.state_dir).expanduser().resolve()
    return control.runs_state_root().resolve() / run_dir.run_id


def _start_sandbox(
    params: RunbookParams, state: Path, progress: Callable[[str], None], *, keep: bool
) -> tuple[Path, str, bool]:
    """The run's sandbox: a fresh one, or the one already serving `sandbox.state_dir` (left running).

    Unless kept, a sandbox the run starts is owned by it (it ends with the run, even a killed one) and,
    when its state directory is the run's own, ephemeral (deleted with its keys when it stops).
    """
    from meshbook.sandbox import control

    info, started = control.up(
        state,
        params.sandbox.speed,
        params.sandbox.kubernetes_version,
        owned=not keep,
        ephemeral=not keep and not params.sandbox.state_dir,
    )
    progress(f"sandbox {'started' if started else 'reused'} at {info.server} (state {state})")
    return state, str(info.kubeconfig), started
