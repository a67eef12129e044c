"""Each runbook declares what it needs first; `--only` on the run's own empty sandbox runs that too."""

from __future__ import annotations

import pytest

from meshbook.runbook.catalogue import Runbook, select, with_prerequisites
from tests.runbook import Run


def _names(runbooks: list[Runbook]) -> list[str]:
    return [str(rb.name) for rb in runbooks]


def test_prerequisites_are_added_in_catalogue_order() -> None:
    chosen, added = with_prerequisites(select(["30-scenario-3"]))
    assert _names(chosen) == ["00-prereq-istio", "01-prereq-bank-vaults", "10-scenario-1", "30-scenario-3"]
    assert _names(added) == ["00-prereq-istio", "01-prereq-bank-vaults", "10-scenario-1"]


def test_nothing_is_added_when_the_prerequisites_are_named() -> None:
    chosen, added = with_prerequisites(select(["01-prereq-bank-vaults", "00-prereq-istio"]))
    assert _names(chosen) == ["00-prereq-istio", "01-prereq-bank-vaults"]
    assert added == []


@pytest.mark.slow
def test_only_a_scenario_on_a_fresh_sandbox_runs_its_prerequisites_first(scenario_1_run: Run) -> None:
    run = scenario_1_run  # the session's `run --only 10-scenario-1` on its own fresh sandbox, shared
    assert run.args[run.args.index("--only") :] == ["--only", "10-scenario-1"]
    assert run.code == 0, run.describe()
    assert "running the prerequisites first: 00-prereq-istio, 01-prereq-bank-vaults" in " ".join(run.out.split())
    assert run.outcomes() == {"00-prereq-istio": "pass", "01-prereq-bank-vaults": "pass", "10-scenario-1": "pass"}
