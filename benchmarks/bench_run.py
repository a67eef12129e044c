"""`meshbook run` wall time against its floor: the same five notebooks run by papermill with no cluster work.

The run: `python -m meshbook run` (all five runbooks, a fresh sandbox at speed `instant`, default
parameters) in a temporary directory, timed from outside the process, as a user or CI sees it.

The floor: copies of the five notebooks in which every code cell but the `parameters` cell keeps only its
import lines (a cell with none becomes `pass`), executed in one fresh process, one after the other, by
papermill with the same run-scoped kernelspec and IPC kernel manager as `meshbook run`
(`meshbook.runbook.execute`) and the same injected parameters. What `meshbook run` takes beyond the
floor is meshbook's own work: CLI and parameter validation, sandbox start and stop, the cluster work, the
evidence and the summary.

Targets: the whole run under 20 s, and under twice the floor. Each side is measured REPEATS times,
alternating; the best of each gives the ratio. Figures are printed, never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

from benchmarks._util import figure_line, load_line, target_line

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
REPEATS = 2
RUN_TIMEOUT = 900.0

TARGET_TOTAL_S = 20.0
TARGET_RATIO = 2.0

# Runs in a fresh interpreter: argv[1] = directory of stripped notebooks; prints per-notebook seconds as JSON.
_FLOOR_CHILD = """
import json, sys, time
from pathlib import Path
import papermill
from meshbook.params import load_params
from meshbook.runbook.execute import notebook_parameters_for
from meshbook.runbook.kernels import KERNEL_NAME, IPCKernelManager, kernelspec

src = Path(sys.argv[1])
parameters = notebook_parameters_for(load_params())
seconds = {}
with kernelspec():
    for path in sorted(src.glob("*.ipynb")):
        started = time.monotonic()
        papermill.execute_notebook(
            str(path),
            str(src / "out" / path.name),
            parameters=parameters,
            kernel_name=KERNEL_NAME,
            progress_bar=False,
            cwd=str(src),
            kernel_manager_class=IPCKernelManager,
        )
        seconds[path.stem] = time.monotonic() - started
print(json.dumps(seconds))
"""


def _import_lines(source: str) -> str:
    lines = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    return "\n".join(lines) if lines else "pass"


def strip_notebook(path: Path, dest: Path) -> dict[str, int]:
    """Copy `path` to `dest` keeping only imports in code cells (and the parameters cell as it is)."""
    nb: dict[str, Any] = json.loads(path.read_text())
    kept = replaced = 0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        cell["outputs"] = []
        cell["execution_count"] = None
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        new = _import_lines("".join(cell["source"]))
        kept += new != "pass"
        replaced += new == "pass"
        cell["source"] = new
    dest.write_text(json.dumps(nb, indent=1))
    return {"with_imports": kept, "pass": replaced}


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHBOOK_") and k != "KUBECONFIG"}
    env["XDG_STATE_HOME"] = str(home / "xdg-state")  # fresh sandbox state and fingerprint key
    return env


def time_run(home: Path) -> tuple[float, int, dict[str, float]]:
    """Wall seconds of one `meshbook run`, its exit code and its per-notebook seconds (summary.json)."""
    out = home / "runs"
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
    per_notebook: dict[str, float] = {}
    summary = out / "latest" / "summary.json"
    if summary.exists():
        per_notebook = {n["runbook"]: float(n["seconds"]) for n in json.loads(summary.read_text())["notebooks"]}
    if proc.returncode != 0:
        print(f"  meshbook run exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return wall, proc.returncode, per_notebook


def time_floor(home: Path) -> tuple[float, dict[str, float]]:
    """Wall seconds of the floor process and its per-notebook seconds."""
    src = home / "floor"
    (src / "out").mkdir(parents=True)
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        strip_notebook(path, src / path.name)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _FLOOR_CHILD, str(src)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(home),
        timeout=RUN_TIMEOUT,
        check=False,
    )
    wall = time.monotonic() - started
    if proc.returncode != 0:
        print(f"  floor exited {proc.returncode}:\n{proc.stderr[-2000:]}")
        return wall, {}
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    print(load_line())
    with tempfile.TemporaryDirectory(prefix="meshbook-bench-") as probe:
        counts = [strip_notebook(p, Path(probe) / p.name) for p in sorted(NOTEBOOKS.glob("*.ipynb"))]
    kept = sum(c["with_imports"] for c in counts)
    blank = sum(c["pass"] for c in counts)
    print(f"floor notebooks: {len(counts)}, {kept} code cells keep their imports, {blank} become `pass`")

    runs: list[float] = []
    floors: list[float] = []
    run_nb: list[dict[str, float]] = []
    floor_nb: list[dict[str, float]] = []
    codes: list[int] = []
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory(prefix="meshbook-bench-run-") as tmp:
            wall, code, per = time_run(Path(tmp))
        runs.append(wall)
        codes.append(code)
        run_nb.append(per)
        with tempfile.TemporaryDirectory(prefix="meshbook-bench-floor-") as tmp:
            wall, per = time_floor(Path(tmp))
        floors.append(wall)
        floor_nb.append(per)

    print(f"meshbook run samples (s): {', '.join(f'{s:.2f}' for s in runs)}; exit codes {codes}")
    print(f"floor samples (s):        {', '.join(f'{s:.2f}' for s in floors)}")
    best_run, best_floor = min(runs), min(floors)
    print(target_line("meshbook run, 5 runbooks, fresh sandbox (best)", best_run, "s", TARGET_TOTAL_S))
    print(figure_line("meshbook run (median)", median(runs), "s"))
    print(figure_line("floor: papermill, imports only (best)", best_floor, "s"))
    print(figure_line("floor (median)", median(floors), "s"))
    print(target_line("ratio run / floor (best / best)", best_run / best_floor, "x", TARGET_RATIO))

    best_run_nb = run_nb[runs.index(best_run)]
    best_floor_nb = floor_nb[floors.index(best_floor)]
    if best_run_nb:
        inside = sum(best_run_nb.values())
        print(figure_line("run: inside notebooks (summary.json)", inside, "s"))
        print(figure_line("run: outside notebooks (CLI, sandbox up/down)", best_run - inside, "s"))
    print(f"  {'per notebook (s)':<26} {'run':>7} {'floor':>7} {'extra':>7}")
    for name in sorted(set(best_run_nb) | set(best_floor_nb)):
        run_s = best_run_nb.get(name, float("nan"))
        floor_s = best_floor_nb.get(name, float("nan"))
        print(f"  {name:<26} {run_s:7.2f} {floor_s:7.2f} {run_s - floor_s:7.2f}")
    print(load_line())


if __name__ == "__main__":
    main()
