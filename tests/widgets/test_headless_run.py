"""`meshbook run` executes the runbooks with the panel cell in them: the panel stays inert, the run passes."""

from __future__ import annotations

import nbformat
import pytest

from tests.runbook import UP_TO_SCENARIO_1, Run, run_dirs

pytestmark = pytest.mark.slow

NOTEBOOKS = list(UP_TO_SCENARIO_1)


@pytest.mark.timeout(1200)
def test_meshbook_run_with_the_panel_present(scenario_1_run: Run) -> None:
    proc = scenario_1_run  # the session's run of NOTEBOOKS, shared: only read here
    assert proc.code == 0, proc.out[-3000:] + proc.err[-3000:]
    assert proc.run_dir is not None
    (run,) = run_dirs(proc.run_dir.parent)
    for name in NOTEBOOKS:
        nb = nbformat.read(run / "notebooks" / f"{name}.ipynb", as_version=4)
        (cell,) = [c for c in nb.cells if c.cell_type == "code" and "panel(rb)" in c.source]
        assert [o.get("data", {}).get("text/plain") for o in cell.outputs] == [
            "meshbook panel: off (headless run: MESHBOOK_RUN_DIR is set by `meshbook run`)"
        ]
        assert not any("widget-view" in key for o in cell.outputs for key in o.get("data", {}))
