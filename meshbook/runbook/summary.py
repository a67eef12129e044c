"""What `meshbook run` and `meshbook inspect` print: progress, the summary table, the catalogue."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from meshbook.errors import ExitCode, ParameterError
from meshbook.evidence.manifest import write_manifest
from meshbook.params import RunbookParams, notebook_parameters
from meshbook.runbook.catalogue import catalogue
from meshbook.runbook.execute import RunResult, run_runbooks
from meshbook.runbook.rundir import check_output_folder, incomplete_on_error, write_text_atomically


def print_catalogue() -> None:
    console = Console()
    table = Table(title="meshbook runbooks (run in this order)")
    for column in ("runbook", "title", "needs first", "parameters"):
        table.add_column(column)
    for runbook in catalogue():
        names = ", ".join(runbook.parameters())
        table.add_row(str(runbook.name), runbook.title, ", ".join(str(n) for n in runbook.requires), names)
    console.print(table)
    console.print("Parameter values: `meshbook params` (defaults) and `meshbook params --schema`.")
    console.print(
        "`meshbook run --only NAME` on the run's own (empty) sandbox runs what NAME needs first; on a live "
        "cluster or a reused sandbox (`sandbox.state_dir`) it runs exactly what is named."
    )


def summary_table(result: RunResult) -> Table:
    table = Table(title=f"run {result.run_dir.run_id}")
    for column in ("runbook", "outcome", "seconds", "reason"):
        table.add_column(column)
    for item in result.results:
        style = {"pass": "green", "fail": "red"}.get(item.outcome, "yellow")
        where = f" (cell {item.cell})" if item.cell is not None and f"cell {item.cell}" not in item.reason else ""
        table.add_row(
            str(item.runbook.name), f"[{style}]{item.outcome}[/{style}]", f"{item.seconds:.1f}", item.reason + where
        )
    return table


def _versions(params: RunbookParams, result: RunResult) -> dict[str, Any]:
    from meshbook import __version__
    from meshbook.evidence import read_evidence

    versions: dict[str, Any] = {
        "meshbook": __version__,
        "istio": params.istio.version,
        "vault-operator chart": params.bank_vaults.operator_chart_version,
        "vault-secrets-webhook chart": params.bank_vaults.webhook_chart_version,
        "kubernetes": result.cluster.get("version"),
        "meshbook commit": result.identity.get("meshbook", {}).get("commit"),
        "observed": result.identity.get("observed", {}),
    }
    evidence = result.run_dir.evidence
    if evidence.exists():
        for record in read_evidence(evidence):
            if record.get("kind") == "vault_status" and isinstance(record.get("observed"), dict):
                versions["vault"] = record["observed"].get("version")
                versions["vault cluster_id"] = record["observed"].get("cluster_id")
    return versions


def run_and_summarize(params: RunbookParams, out: Path, *, only: list[str], keep_sandbox: bool) -> int:
    console = Console(stderr=False)
    unknown = sorted(set(only) - {str(r.name) for r in catalogue()})
    if unknown:
        names = ", ".join(str(r.name) for r in catalogue())
        raise ParameterError([f"--only {', '.join(unknown)}: expected one of {names}"])
    check_output_folder(out.expanduser().resolve())  # exit 2 before a sandbox or kernel starts
    reports: list[Path] = []

    def finish(result: RunResult) -> None:  # while the run's sandbox stops
        with incomplete_on_error(result.run_dir, "the run's end was not written"):
            reports.extend(finish_run(params, result))

    result = run_runbooks(
        params, out, only=only or None, keep_sandbox=keep_sandbox, progress=console.print, finish=finish
    )
    print_run_end(console, result, reports)
    return int(result.exit_code)


def print_run_end(console: Console, result: RunResult, reports: list[Path]) -> None:
    """The terminal's last words on a run or an audit: the summary table, where things are, the exit."""
    console.print(summary_table(result))
    console.print(f"run directory: {result.run_dir.path}")
    for path in reports:
        console.print(f"  {path.name}: {path}")
    if result.exit_code is not ExitCode.OK:
        console.print(f"exit {int(result.exit_code)}: see the failing notebook in {result.run_dir.notebooks}")


def finish_run(params: RunbookParams, result: RunResult) -> list[Path]:
    """summary.json, the reports and manifest.json (last); `latest` moves to this run once they exist."""
    summary = {
        "run_id": result.run_dir.run_id,
        "exit_code": int(result.exit_code),
        "leaks": result.leaks,
        "leak_scan": result.leak_scan,
        "identity": result.identity,
        "notebooks": [
            {
                "runbook": str(r.runbook.name),
                "outcome": r.outcome,
                "seconds": round(r.seconds, 2),
                "cell": r.cell,
                "error": r.error,
                "reason": r.reason,
            }
            for r in result.results
        ],
    }
    write_text_atomically(result.run_dir.path / "summary.json", json.dumps(summary, indent=2) + "\n")
    from meshbook.report import build_reports

    reports = build_reports([result.run_dir.path])
    result.run_dir.finish()  # RUNNING goes just before the manifest, which lists every file but it
    write_manifest(
        result.run_dir.path,
        params=notebook_parameters(params),
        cluster={**result.cluster, **result.identity.get("cluster", {})},
        versions=_versions(params, result),
        started_at=result.run_dir.started_at,
        ended_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        outcome="pass" if result.exit_code is ExitCode.OK else "fail",
        leaks=result.leaks,
        leak_scan=result.leak_scan,
    )
    result.run_dir.publish_as_latest()
    return reports
