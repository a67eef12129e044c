"""Every runbook shows the panel right after `runbook.start`, and the panel's steps are the notebook's own."""

from __future__ import annotations

import re

import nbformat
import pytest

from meshbook.params import RunbookName
from meshbook.runbook.catalogue import Runbook, catalogue
from meshbook.widgets import default_steps
from tests.widgets import offline_session

PANEL_CELL = "from meshbook.widgets import panel\n\npanel(rb)"


@pytest.mark.parametrize("runbook", catalogue(), ids=lambda r: str(r.name))
def test_panel_cell_follows_the_start_cell(runbook: Runbook) -> None:
    path = runbook.path
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    start = next(i for i, c in enumerate(nb.cells) if "runbook.start(" in c.source)
    assert nb.cells[start + 1].cell_type == "code"
    assert nb.cells[start + 1].source == PANEL_CELL
    assert sum("meshbook.widgets" in c.source for c in nb.cells) == 1
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"{path.name} is not clean"


@pytest.mark.parametrize("runbook", catalogue(), ids=lambda r: str(r.name))
def test_panel_steps_are_the_notebooks_steps(runbook: Runbook) -> None:
    path = runbook.path
    nb = nbformat.read(path, as_version=4)
    in_notebook = [m for c in nb.cells if c.cell_type == "code" for m in re.findall(r'rb\.step\("([^"]+)"\)', c.source)]
    actions = [name for name in in_notebook if name != "mTLS posture"]  # a view, not a step that changes things
    steps = default_steps(offline_session(str(runbook.name)))
    assert list(steps) == actions


def test_every_runbook_has_steps() -> None:
    for name in RunbookName:
        assert default_steps(offline_session(str(name)))
