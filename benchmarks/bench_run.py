"""`meshbook run` as a user sees it, next to five trivial papermill notebooks; what each runbook waits for its
kernel; and how much memory the sandbox and OpenBao hold meanwhile.

- The run: `python -m meshbook run` (the default runbooks, a fresh sandbox, default parameters) in a
  temporary home, timed from outside the process.
- Five trivial notebooks: one process in which papermill runs five notebooks of one `pass` cell each, in a
  kernel of this interpreter; measured right after each run, so each run has its own ratio.
- Kernel overhead per runbook, what a runbook waits that is not its own work: from the run's executed
  notebooks, its time outside the span of its cells (papermill's set-up, waiting for the kernel started
  ahead, shutdown), plus its import lines run in a kernel started ahead the way `meshbook run` starts it
  and ready (imports the preload did not cover).
- Memory: the sandbox server's and `bao server`'s VmRSS, summed, sampled every SAMPLE_INTERVAL during the
  run; the peak counts.
Goals (issue 15): run under 10 s, at most 2.5x the trivial notebooks, kernel overhead under 0.5 s,
memory under 200 MB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks._util import ROOT, proc_status_kib
from benchmarks.figures import Figure

NOTEBOOKS = ROOT / "notebooks"
REPEATS = 3
RUN_TIMEOUT = 900.0
TRIVIAL_NOTEBOOKS = 5
SAMPLE_INTERVAL = 0.2
# Processes whose resident memory counts, by a fragment of their command line (NUL-separated argv).
MEMORY_ROLES = {"sandbox server": b"meshbook.sandbox.server", "bao server": b"bao\x00server"}

# argv[1]: a directory of notebooks; runs each with papermill in a kernel of this interpreter.
_TRIVIAL_CHILD = """
import json, sys
from pathlib import Path
import papermill

src = Path(sys.argv[1])
for path in sorted(src.glob("*.ipynb")):
    papermill.execute_notebook(str(path), str(src / "out" / path.name), kernel_name="bench-python", progress_bar=False)
"""

# argv[1]: a directory of import-only notebooks. Each runs in a kernel started the way `meshbook run` starts
# the next notebook's, and given time to be ready; prints the seconds its code cells took, per notebook.
_IMPORTS_CHILD = """
import json, sys
from pathlib import Path
import nbformat, papermill
from jupyter_core.utils import run_sync
from meshbook.params import load_params
from meshbook.runbook.execute import notebook_parameters_for
from meshbook.runbook.kernels import KERNEL_NAME, IPCKernelManager, kernelspec, start_kernel, stop_kernel

src = Path(sys.argv[1])
parameters = notebook_parameters_for(load_params())
seconds = {}
with kernelspec():
    for path in sorted(src.glob("*.ipynb")):
        km = start_kernel(src)
        try:
            client = km.client()
            client.start_channels()
            run_sync(client.wait_for_ready)(timeout=120)
            client.stop_channels()
            out = src / "out" / path.name
            papermill.execute_notebook(
                str(path), str(out), parameters=parameters, kernel_name=KERNEL_NAME, progress_bar=False,
                cwd=str(src), kernel_manager_class=IPCKernelManager, km=km,
            )
        finally:
            stop_kernel(km)
        book = nbformat.read(str(out), as_version=4)
        seconds[path.stem] = sum(
            cell.metadata.get("papermill", {}).get("duration") or 0.0
            for cell in book.cells
            if cell.cell_type == "code"
            and not {"parameters", "injected-parameters"} & set(cell.metadata.get("tags", []))
        )
print(json.dumps(seconds))
"""


@dataclass
class MemoryPeak:
    """The highest sampled sum of the watched processes' RSS, and each role's own highest, in MiB."""

    total: float = 0.0
    by_role: dict[str, float] = field(default_factory=dict)
    samples: int = 0


class MemorySampler:
    """Samples, in a thread, the RSS of the sandbox server and OpenBao processes whose command line names
    `marker` (the run's temporary home), so other sandboxes on the machine do not count."""

    def __init__(self, marker: str) -> None:
        self.marker = marker.encode()
        self.peak = MemoryPeak()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _matching(self) -> dict[int, str]:
        found: dict[int, str] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if self.marker not in cmdline:
                continue
            for role, fragment in MEMORY_ROLES.items():
                if fragment in cmdline:
                    found[int(entry.name)] = role
        return found

    def sample(self) -> None:
        per_role: dict[str, float] = {}
        for pid, role in self._matching().items():
            kib = proc_status_kib(pid, "VmRSS")
            if kib > 0:
                per_role[role] = per_role.get(role, 0.0) + kib / 1024
        self.peak.samples += 1
        self.peak.total = max(self.peak.total, sum(per_role.values()))
        for role, mib in per_role.items():
            self.peak.by_role[role] = max(self.peak.by_role.get(role, 0.0), mib)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(SAMPLE_INTERVAL)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@dataclass
class RunSample:
    wall: float
    exit_code: int
    notebooks: dict[str, float]  # summary.json's seconds per runbook
    outside_cells: dict[str, float]  # of those, the seconds outside the span of the runbook's cells
    memory: MemoryPeak


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHBOOK_") and k != "KUBECONFIG"}
    env["XDG_STATE_HOME"] = str(home / "xdg-state")  # fresh sandbox state and fingerprint key
    return env


def _cells_span(executed: Path) -> float | None:
    """Seconds from the first cell's start to the last cell's end, from papermill's cell metadata."""
    book: dict[str, Any] = json.loads(executed.read_text())
    starts, ends = [], []
    for cell in book["cells"]:
        meta = cell.get("metadata", {}).get("papermill", {})
        if meta.get("start_time") and meta.get("end_time"):
            starts.append(datetime.fromisoformat(meta["start_time"]))
            ends.append(datetime.fromisoformat(meta["end_time"]))
    if not starts:
        return None
    return (max(ends) - min(starts)).total_seconds()


def outside_cells(run_dir: Path, notebooks: dict[str, float]) -> dict[str, float]:
    """Per runbook: its seconds in summary.json minus the span of its cells."""
    result: dict[str, float] = {}
    for name, seconds in notebooks.items():
        executed = run_dir / "notebooks" / f"{name}.ipynb"
        span = _cells_span(executed) if executed.exists() else None
        if span is not None:
            result[name] = max(0.0, seconds - span)
    return result


def time_run(home: Path) -> RunSample:
    """One `meshbook run` in `home`, timed from outside, its processes' memory sampled meanwhile."""
    out = home / "runs"
    with MemorySampler(str(home)) as sampler:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "meshbook", "run", "--out", str(out)],
            capture_output=True,
            text=True,
            cwd=home,
            env=_env(home),
            timeout=RUN_TIMEOUT,
            check=False,
        )
        wall = time.monotonic() - started
    if proc.returncode != 0:
        print(f"  meshbook run exited {proc.returncode}:\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    notebooks: dict[str, float] = {}
    summary = out / "latest" / "summary.json"
    if summary.exists():
        notebooks = {n["runbook"]: float(n["seconds"]) for n in json.loads(summary.read_text())["notebooks"]}
    return RunSample(wall, proc.returncode, notebooks, outside_cells(out / "latest", notebooks), sampler.peak)


def _notebook(cells: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "bench-python", "display_name": "Python", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _code_cell(index: int, source: str, tags: list[str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"tags": tags} if tags else {}
    return {
        "cell_type": "code",
        "id": f"c{index}",
        "source": source,
        "metadata": metadata,
        "outputs": [],
        "execution_count": None,
    }


def time_trivial_notebooks(home: Path) -> float:
    """Wall seconds of one process running five one-cell notebooks with papermill."""
    src = home / "trivial"
    (src / "out").mkdir(parents=True)
    spec = src / "kernels" / "bench-python"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python", "language": "python"}))
    for n in range(TRIVIAL_NOTEBOOKS):
        (src / f"{n:02d}.ipynb").write_text(json.dumps(_notebook([_code_cell(0, "pass")])))
    env = {**_env(home), "JUPYTER_PATH": str(src)}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _TRIVIAL_CHILD, str(src)],
        capture_output=True,
        text=True,
        cwd=src,
        env=env,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"the trivial notebooks failed (exit {proc.returncode}): {proc.stderr[-1500:]}")
    return wall


def _import_lines(source: str) -> str:
    lines = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    return "\n".join(lines) if lines else "pass"


def import_only_copy(path: Path, dest: Path) -> None:
    """Copy notebook `path` to `dest` keeping only the import lines of its code cells (the parameters cell
    as it is)."""
    book: dict[str, Any] = json.loads(path.read_text())
    for cell in book["cells"]:
        if cell["cell_type"] != "code":
            continue
        cell["outputs"], cell["execution_count"] = [], None
        if "parameters" not in cell.get("metadata", {}).get("tags", []):
            cell["source"] = _import_lines("".join(cell["source"]))
    dest.write_text(json.dumps(book, indent=1))


def time_imports(home: Path, runbooks: list[str]) -> dict[str, float]:
    """Per runbook: seconds its import lines take in a kernel started ahead and ready."""
    src = home / "imports"
    (src / "out").mkdir(parents=True)
    for name in runbooks:
        import_only_copy(NOTEBOOKS / f"{name}.ipynb", src / f"{name}.ipynb")
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORTS_CHILD, str(src)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(home),
        timeout=RUN_TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the import-only notebooks failed (exit {proc.returncode}): {proc.stderr[-1500:]}")
    seconds: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return seconds


def measure() -> list[Figure]:
    runs: list[RunSample] = []
    trivial: list[float] = []
    for n in range(REPEATS):
        with tempfile.TemporaryDirectory(prefix="meshbook-bench-run-") as tmp:
            run = time_run(Path(tmp))
        with tempfile.TemporaryDirectory(prefix="meshbook-bench-trivial-") as tmp:
            trivial.append(time_trivial_notebooks(Path(tmp)))
        runs.append(run)
        print(
            f"  run {n + 1}: {run.wall:.2f} s (exit {run.exit_code}), trivial notebooks {trivial[-1]:.2f} s, "
            f"memory peak {run.memory.total:.0f} MB ({run.memory.samples} samples)",
            flush=True,
        )
    runbooks = sorted({name for run in runs for name in run.notebooks})
    with tempfile.TemporaryDirectory(prefix="meshbook-bench-imports-") as tmp:
        imports = time_imports(Path(tmp), runbooks)
    overhead = [run.outside_cells[name] + imports.get(name, 0.0) for run in runs for name in run.outside_cells]
    for name in runbooks:
        waits = ", ".join(f"{run.outside_cells[name]:.2f}" for run in runs if name in run.outside_cells)
        print(f"  {name}: outside its cells {waits} s; import lines in a ready kernel {imports.get(name, 0):.2f} s")
    codes = sorted({run.exit_code for run in runs})
    exit_note = f"exit codes {codes}" if codes != [0] else ""
    inside = [sum(run.notebooks.values()) for run in runs]
    roles = sorted({role for run in runs for role in run.memory.by_role})
    return [
        Figure.of("run_total", [r.wall for r in runs], "s", note=exit_note),
        Figure.of("trivial_notebooks", trivial, "s"),
        Figure.of("run_ratio", [r.wall / t for r, t in zip(runs, trivial, strict=True)], "x"),
        Figure.of("kernel_overhead", overhead, "s", note=f"{len(runbooks)} runbooks x {len(runs)} runs"),
        Figure.of("sandbox_memory", [r.memory.total for r in runs], "MB", note=exit_note),
        Figure.of("run_inside_notebooks", inside, "s", "run: inside the notebooks (summary.json)"),
        Figure.of(
            "run_outside_notebooks",
            [r.wall - i for r, i in zip(runs, inside, strict=True)],
            "s",
            "run: outside the notebooks (CLI, sandbox, reports, leak scan)",
        ),
        Figure.of(
            "kernel_outside_cells",
            [v for r in runs for v in r.outside_cells.values()],
            "s",
            "per runbook: outside its cells (kernel wait, papermill, shutdown)",
        ),
        Figure.of("kernel_imports", list(imports.values()), "s", "per runbook: import lines in a ready kernel"),
        *(
            Figure.of(
                f"memory_{role.replace(' ', '_')}",
                [r.memory.by_role.get(role, 0.0) for r in runs],
                "MB",
                f"peak RSS during the run: {role}",
            )
            for role in roles
        ),
    ]
