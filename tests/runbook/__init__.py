"""End-to-end tests of `meshbook run`: the runbooks executed by papermill against the sandbox.

Shared helpers: run `meshbook` as a subprocess with a hermetic environment (state, fingerprint key and
sandbox state under the test's temporary directory) and read back what the run left on disk.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

RUN_TIMEOUT = 420  # seconds: a bound on one `meshbook run`; the default run takes well under a minute

SCENARIOS = ("10-scenario-1", "20-scenario-2", "30-scenario-3")
ALL_RUNBOOKS = ("00-prereq-istio", "01-prereq-bank-vaults", *SCENARIOS)
UP_TO_SCENARIO_1 = ("00-prereq-istio", "01-prereq-bank-vaults", "10-scenario-1")


def hermetic_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a `meshbook` subprocess: nothing of an outer run, state under `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHBOOK_") and k != "KUBECONFIG"}
    env["XDG_STATE_HOME"] = str(home / "xdg-state")
    env.update(extra)
    return env


@dataclass
class Run:
    """One `meshbook` invocation and, when it made one, its run directory."""

    args: list[str]
    code: int
    out: str
    err: str
    run_dir: Path | None
    summary: dict[str, Any] = field(default_factory=dict)
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def notebook(self, name: str) -> dict[str, Any]:
        """The summary entry of runbook `name`."""
        found = [n for n in self.summary["notebooks"] if n["runbook"] == name]
        assert len(found) == 1, f"{name} not in summary: {self.summary}"
        return found[0]

    def outcomes(self) -> dict[str, str]:
        return {n["runbook"]: n["outcome"] for n in self.summary["notebooks"]}

    def records(self, kind: str, notebook: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.evidence if r["kind"] == kind and (notebook is None or r["notebook"] == notebook)]

    def deliveries(self, notebook: str) -> dict[str, list[dict[str, Any]]]:
        """secret_delivery records of one notebook by container (the subject's last part)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for record in self.records("secret_delivery", notebook):
            out.setdefault(record["subject"].rsplit("/", 1)[1], []).append(record)
        return out

    def verdict(self, notebook: str, container: str) -> dict[str, Any]:
        """The delivery verdict (the record with an `observed` payload) for one container."""
        found = [r for r in self.deliveries(notebook).get(container, []) if r["observed"] is not None]
        assert len(found) == 1, f"{notebook}/{container}: {found}"
        return found[0]

    def describe(self) -> str:
        return (
            f"meshbook {' '.join(self.args)} -> {self.code}\nstdout:\n{self.out[-4000:]}\nstderr:\n{self.err[-4000:]}"
        )


def run_dirs(out: Path) -> list[Path]:
    """Run directories under `out` (everything but the `latest` link and hidden files)."""
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))


def meshbook(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = RUN_TIMEOUT) -> Run:
    """`python -m meshbook ARGS...` with `home` for state; reads the run directory it created, if any."""
    out = Path(args[args.index("--out") + 1]) if "--out" in args else None
    before = set(run_dirs(out)) if out is not None else set()
    proc = subprocess.run(
        [sys.executable, "-m", "meshbook", *args],
        capture_output=True,
        text=True,
        cwd=home,
        env=env or hermetic_env(home),
        timeout=timeout,
        check=False,
    )
    created = [p for p in run_dirs(out) if p not in before] if out is not None else []
    assert len(created) <= 1, created
    return _read(Run(list(args), proc.returncode, proc.stdout, proc.stderr, created[0] if created else None))


def _read(run: Run) -> Run:
    """`run` with its summary and evidence read from its run directory, where it has them."""
    if run.run_dir is not None and (run.run_dir / "summary.json").exists():
        run.summary = json.loads((run.run_dir / "summary.json").read_text())
    if run.run_dir is not None and (run.run_dir / "evidence.jsonl").exists():
        lines = (run.run_dir / "evidence.jsonl").read_text().splitlines()
        run.evidence = [json.loads(line) for line in lines if line.strip()]
    return run


def shared_run(base: Path, name: str, *args: str) -> Run:
    """One `meshbook run` for every test module, and every xdist worker, that only looks at what it made.

    `base` is the directory all workers of this session share. The first caller runs `meshbook ARGS...`
    under an exclusive lock and records the result; later callers (the other worker waits on the lock)
    read that record. A module that changes the run directory works on its own `copy_run` of it.
    """
    home = base / name
    home.mkdir(parents=True, exist_ok=True)
    record = home / "result.json"
    with (base / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this worker dies
        if not record.exists():
            run = meshbook(home, *args)
            fields = {"args": run.args, "code": run.code, "out": run.out, "err": run.err}
            record.write_text(json.dumps({**fields, "run_dir": str(run.run_dir) if run.run_dir else None}))
    saved = json.loads(record.read_text())
    run_dir = Path(saved["run_dir"]) if saved["run_dir"] else None
    return _read(Run(saved["args"], saved["code"], saved["out"], saved["err"], run_dir))


def session_base(factory: pytest.TempPathFactory) -> Path:
    """The temporary directory every xdist worker of this session shares (the base itself without xdist)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def copy_run(run_dir: Path, into: Path) -> Path:
    """A copy of a shared run directory, under `into/runs/`, for a test that writes to it."""
    copy = into / "runs" / run_dir.name
    shutil.copytree(run_dir, copy, symlinks=True)
    return copy


def run_args(out: Path, *sets: str, only: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> list[str]:
    """`run --out OUT [--set S]... [--only N]... [EXTRA...]`."""
    args = ["run", "--out", str(out)]
    for item in sets:
        args += ["--set", item]
    for name in only:
        args += ["--only", name]
    return [*args, *extra]


def pod_ready_by_workload(run: Run, notebook: str) -> dict[str, list[str]]:
    """READY of each pod_state record of one scenario notebook, keyed vault-0 / configurer / app."""
    out: dict[str, list[str]] = {}
    for record in run.records("pod_state", notebook):
        subject = record["subject"]
        if subject == "vault/vault-0":
            key = "vault-0"
        elif subject.startswith("vault/vault-configurer-"):
            key = "configurer"
        elif subject.startswith("app/app-"):
            key = "app"
        else:
            key = subject
        out.setdefault(key, []).append(record["observed"]["ready"])
    return out


def error_cell(notebook_path: Path) -> tuple[int, int | None, str]:
    """(index, execution count, ename) of the one code cell with an error output in an executed notebook."""
    nb = json.loads(notebook_path.read_text())
    found = [
        (index, cell.get("execution_count"), output["ename"])
        for index, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert len(found) == 1, f"{notebook_path.name}: error cells {found}"
    return found[0]
