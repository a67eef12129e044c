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
    RunbookName.AUDIT: "Audit: will every container that asks for a secret get it? (read-only)",
}


# What each runbook needs done before it, in a cluster that starts empty: the scenarios build on the
# prerequisites, and scenarios 2 and 3 move the Vault and app that scenario 1 creates into the mesh.
REQUIRES: dict[RunbookName, tuple[RunbookName, ...]] = {
    RunbookName.PREREQ_ISTIO: (),
    RunbookName.PREREQ_BANK_VAULTS: (RunbookName.PREREQ_ISTIO,),
    RunbookName.SCENARIO_1: (RunbookName.PREREQ_ISTIO, RunbookName.PREREQ_BANK_VAULTS),
    RunbookName.SCENARIO_2: (RunbookName.PREREQ_ISTIO, RunbookName.PREREQ_BANK_VAULTS, RunbookName.SCENARIO_1),
    RunbookName.SCENARIO_3: (RunbookName.PREREQ_ISTIO, RunbookName.PREREQ_BANK_VAULTS, RunbookName.SCENARIO_1),
    RunbookName.AUDIT: (),  # reads whatever the cluster holds
}


@dataclass(frozen=True)
class Runbook:
    name: RunbookName
    title: str
    path: Path

    @property
    def requires(self) -> tuple[RunbookName, ...]:
        return REQUIRES[self.name]

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


def with_prerequisites(runbooks: list[Runbook]) -> tuple[list[Runbook], list[Runbook]]:
    """`runbooks` plus what they require, in catalogue order; and the ones that were added."""
    wanted = {rb.name for rb in runbooks} | {need for rb in runbooks for need in rb.requires}
    chosen = select(sorted(wanted))
    named = {rb.name for rb in runbooks}
    return chosen, [rb for rb in chosen if rb.name not in named]
