"""`meshbook run` executes the runbooks with the panel cell in them: the panel stays inert, the run passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

NOTEBOOKS = ["00-prereq-istio", "01-prereq-bank-vaults", "10-scenario-1"]


@pytest.mark.timeout(1200)
def test_meshbook_run_with_the_panel_present(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    only = [arg for name in NOTEBOOKS for arg in ("--only", name)]
    proc = subprocess.run(
        [sys.executable, "-m", "meshbook", "run", *only, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1100,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = [p for p in out.iterdir() if p.is_dir() and not p.is_symlink()]
    for name in NOTEBOOKS:
        nb = nbformat.read(run / "notebooks" / f"{name}.ipynb", as_version=4)
        (cell,) = [c for c in nb.cells if c.cell_type == "code" and "panel(rb)" in c.source]
        assert [o.get("data", {}).get("text/plain") for o in cell.outputs] == [
            "meshbook panel: off (headless run: MESHBOOK_RUN_DIR is set by `meshbook run`)"
        ]
        assert not any("widget-view" in key for o in cell.outputs for key in o.get("data", {}))
