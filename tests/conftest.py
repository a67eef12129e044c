"""Shared fixtures: the project root, a way to run the `meshbook` command in-process, and the one run of the
prerequisites and scenario 1 that several modules inspect."""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshbook.cli import main
from tests.runbook import UP_TO_SCENARIO_1, Run, run_args, session_base, shared_run

ROOT = Path(__file__).resolve().parent.parent

# Collection imports nbformat (several test modules), hence jsonschema, which would build rfc3987_syntax's
# lark grammars (over a second of CPU per worker) for a string format no test asks it to check: left out
# as `meshbook run` leaves it out (meshbook.runbook.execute.import_papermill).
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run `meshbook ARGS...` in this process and capture its exit code and output."""

    def run(*args: str) -> CliResult:
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse errors and --version
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session", autouse=True)
def worker_tmpdir() -> Iterator[Path]:
    """A temporary directory of this worker's own for it and every process it starts (TMPDIR), removed at
    the end; short, as kernels' IPC sockets go below it (a socket path has at most 107 bytes).

    The official client's dynamic discovery cache is a file in the temporary directory named by the API
    server's URL only; sandboxes reuse ports, so a fresh sandbox was once read with the discovery another
    one (another session's, with Istio) had left: PeerAuthentication served, and its list answered 404.

    IPython's directory (IPYTHONDIR) is the worker's own too: in-process shells of some tests hold the
    history database open for the worker's life, and JupyterLab's kernels write to it; sharing the user's
    one `history.sqlite` between workers locked it, and corrupted it (IPython then moves it aside).
    kubectl's discovery and HTTP cache (KUBECACHEDIR) as well, by default: it is keyed by host and port,
    which sandboxes reuse (a sandbox's own fixture gives it a cache of its own), and it had filled the
    user's `~/.kube/cache` with hundreds of sandboxes' discovery."""
    path = Path(tempfile.mkdtemp(prefix="meshbook-tests-"))
    patch = pytest.MonkeyPatch()
    patch.setenv("TMPDIR", str(path))
    patch.setenv("IPYTHONDIR", str(path / "ipython"))
    patch.setenv("KUBECACHEDIR", str(path / "kubectl-cache"))
    patch.setattr(tempfile, "tempdir", str(path))
    try:
        yield path
    finally:
        patch.undo()
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def sigint_handler_kept() -> Iterator[None]:
    """Every test leaves SIGINT's handler as it found it: a worker left with SIGINT ignored hands SIG_IGN to
    every process it starts later, and a `meshbook run` started so once ignored `kill -INT`."""
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before:
        signal.signal(signal.SIGINT, before)
        pytest.fail(f"the test left SIGINT's handler {after!r} (it was {before!r}): restore it where it changes it")


@pytest.fixture(scope="session")
def scenario_1_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """`meshbook run --only 10-scenario-1` (default parameters, fresh sandbox: the run adds the prerequisites,
    so it executes UP_TO_SCENARIO_1), made once for the whole session and shared by the modules that read
    its run directory (copy_run to write). Naming the prerequisites explicitly is run by test_variants."""
    base = session_base(tmp_path_factory)
    out = base / "scenario-1-run" / "runs"
    return shared_run(base, "scenario-1-run", *run_args(out, only=UP_TO_SCENARIO_1[-1:]))


# -- scheduling: the costliest modules first -------------------------------------------------------------
# `-n 3 --dist loadfile` (make test) hands whole modules to workers in collection order (once xdist's own
# reordering, by number of tests, is off: it would send a one-test module that runs `meshbook run` last and
# leave one worker alone with it). Longest first keeps every worker busy to the end. Measured totals per module
# (setup included), costliest first; the order changes when a module runs, never what it checks.
COSTLIEST_MODULES = (
    "tests/runbook/test_variants.py",
    "tests/runbook/test_process_cleanup.py",
    "tests/sandbox/test_scenario_failures.py",
    "tests/runbook/test_check_mode.py",
    "tests/widgets/test_browser.py",
    "tests/widgets/test_headless_run.py",  # the first to ask for scenario_1_run: it makes the shared run
    "tests/test_quality.py",
    "tests/runbook/test_kernel_faults.py",
    "tests/sandbox/test_rbac_scenario.py",
    "tests/runbook/test_run.py",
    "tests/sandbox/test_lifecycle.py",
    "tests/runbook/test_relative_paths.py",
    "tests/sandbox/test_istio_enabled.py",
    "tests/sandbox/test_scenarios.py",
    "tests/sandbox/test_openbao_crash.py",
    "tests/audit/test_states.py",
    "tests/runbook/test_notebook_html.py",  # late enough that the shared run is there, not awaited
    "tests/runbook/test_output_folder.py",
    "tests/sandbox/test_kubectl.py",
    "tests/sandbox/test_jobs.py",
    "tests/sandbox/test_kubectl_portforward.py",
    "tests/sandbox/test_exec.py",
    "tests/report/test_real_run.py",
)


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist is installed
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Costliest modules first (a stable sort: every other module, and every test within a module, keeps
    its order); the same on every worker, as xdist requires."""
    rank = {path: index for index, path in enumerate(COSTLIEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))
