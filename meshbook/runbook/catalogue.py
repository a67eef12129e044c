"""The runbooks meshbook ships: one notebook per prerequisite and scenario, run in this order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshbook.errors import MeshbookError
from meshbook.params import RunbookName

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent.parent / "notebooks"

TITLES: dict[RunbookName, str] = {
    RunbookName.PREREQ_ISTIO: "Prerequisite: Istio with mesh-wide STRICT mTLS",
    RunbookName.PREREQ_BANK_VAULTS: "Prerequisite: the Bank-Vaults operator and webhook in the mesh",
    RunbookName.SCENARIO_1: "Scenario 1: Vault outside the mesh, the app inside",
    RunbookName.SCENARIO_2: "Scenario 2: Vault inside the mesh, the app outside",
    RunbookName.SCENARIO_3: "Scenario 3: both inside the mesh",
}


@dataclass(frozen=True)
class Runbook:
    name: RunbookName
    title: str
    path: Path

    def parameters(self) -> dict[str, Any]:
        """The notebook's `parameters` cell as papermill sees it (name -> inferred type and default)."""
        import papermill

        found: dict[str, Any] = papermill.inspect_notebook(str(self.path))
        return found


def notebook_dir() -> Path:
    if not NOTEBOOK_DIR.is_dir():
        raise MeshbookError(
            f"notebook directory {NOTEBOOK_DIR} is missing: meshbook runs from a checkout of its repository"
        )
    return NOTEBOOK_DIR


def catalogue() -> list[Runbook]:
    base = notebook_dir()
    return [Runbook(name, TITLES[name], base / f"{name}.ipynb") for name in RunbookName]


def select(names: list[RunbookName] | list[str]) -> list[Runbook]:
    """The runbooks to run, in catalogue order whatever order they were named in."""
    wanted = {str(n) for n in names}
    return [rb for rb in catalogue() if str(rb.name) in wanted]
