"""Read a run directory as it is on disk: `summary.json`, `evidence.jsonl`, the executed notebooks, markers.

The title and parameters of each notebook come from the executed notebook; the state (complete, running,
incomplete) from `summary.json` and the `RUNNING` / `INCOMPLETE` markers. `manifest.json` is never read:
reports are built before it is written (it hashes them), and a report rebuilt later must come out
byte-for-byte the same so `meshbook verify` still holds. Damage (a bad line, a missing file) is listed
in `RunData.problems`, never raised: a report of a broken run is when one is needed most.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshbook.evidence.reader import TruncatedEvidenceWarning, read_checked_evidence
from meshbook.evidence.records import AnyRecord
from meshbook.report.rows import KindRows, Row, kind_rows

__all__ = ["INCOMPLETE_MARKER", "RUNNING_MARKER", "NotebookRun", "RunData", "read_run"]

RUNNING_MARKER = "RUNNING"
INCOMPLETE_MARKER = "INCOMPLETE"


@dataclass(frozen=True)
class NotebookRun:
    """One notebook of a run: the summary's row plus what the executed notebook says about itself."""

    runbook: str
    outcome: str  # pass | fail | skipped | unknown (no summary: the run died or is still running)
    seconds: float
    cell: int | None
    error: str
    reason: str
    title: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class RunData:
    """Everything a report shows about one run directory."""

    path: Path
    run_id: str
    exit_code: int | None
    state: str  # complete | running | incomplete
    state_reason: str
    notebooks: list[NotebookRun]
    records: list[Row]
    """The valid evidence records as the JSON objects written, in file order."""
    rows: KindRows = field(default_factory=KindRows)
    """Pod, delivery and policy rows, built from the typed records as they were read."""
    problems: list[str] = field(default_factory=list)
    leaks: list[Mapping[str, Any]] = field(default_factory=list)
    """The end-of-run leak scan's findings (class, place, encoding; never a value), from summary.json."""
    leak_scan: Mapping[str, Any] = field(default_factory=dict)
    """What that scan covered (classes with value counts, encodings, files), from summary.json."""
    identity: Mapping[str, Any] = field(default_factory=dict)
    """meshbook, cluster and versions as observed at the run's end (`runbook.identity`); empty for older runs."""

    @property
    def outcome(self) -> str:
        """pass | fail | incomplete: the run as a whole."""
        if self.state != "complete" or self.exit_code is None:
            return "incomplete"
        return "pass" if self.exit_code == 0 else "fail"

    def records_of(self, notebook: str) -> list[Row]:
        return [r for r in self.records if r["notebook"] == notebook]

    def notebook(self, name: str) -> NotebookRun | None:
        return next((n for n in self.notebooks if n.runbook == name), None)

    @property
    def started_at(self) -> str:
        return str(self.records[0]["at"]) if self.records else ""

    @property
    def ended_at(self) -> str:
        return str(self.records[-1]["at"]) if self.records else ""


def _read_json(path: Path, problems: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name}: unreadable ({exc})")
        return None


def _notebook_meta(path: Path) -> tuple[str, Mapping[str, Any]]:
    """(title from the first markdown heading, papermill parameters) of an executed notebook."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "", {}
    title = ""
    for cell in nb.get("cells", []):  # papermill puts its own error cell (no heading) first on failure
        if cell.get("cell_type") == "markdown":
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else str(source)
            heading = next((line for line in text.splitlines() if line.startswith("# ")), "")
            if heading:
                title = heading[2:].strip()
                break
    papermill = nb.get("metadata", {}).get("papermill", {})
    parameters = papermill.get("parameters") if isinstance(papermill, dict) else None
    return title, parameters if isinstance(parameters, dict) else {}


def _read_records(path: Path, problems: list[str]) -> tuple[list[Row], list[AnyRecord]]:
    """The valid records (as written, and typed); each line is parsed and validated once, by its model."""
    evidence = path / "evidence.jsonl"
    if not evidence.exists():
        problems.append("evidence.jsonl: missing")
        return [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedEvidenceWarning)
        try:
            checked = read_checked_evidence(evidence, quiet=True)
        except ValueError as exc:
            problems.append(f"evidence.jsonl: {exc}")
            return [], []
    problems += [f"evidence.jsonl: {skipped}" for skipped in checked.skipped]
    if checked.truncated_line is not None:
        line, size = checked.truncated_line, checked.truncated_bytes
        problems.append(f"evidence.jsonl: line {line} is a partial record ({size} bytes), skipped")
    return checked.objects, checked.records


def read_run(path: Path) -> RunData:
    """Read one run directory; damage (bad lines, missing files) is listed in `problems`, not raised."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a run directory")
    problems: list[str] = []
    summary = _read_json(path / "summary.json", problems)
    summary = summary if isinstance(summary, dict) else {}
    records, typed = _read_records(path, problems)
    incomplete = _read_json(path / INCOMPLETE_MARKER, problems)
    if isinstance(incomplete, dict) or (path / INCOMPLETE_MARKER).exists():
        state = "incomplete"
        reason = str((incomplete or {}).get("reason", "")) if isinstance(incomplete, dict) else ""
    elif summary:
        state, reason = "complete", ""
    elif (path / RUNNING_MARKER).exists():
        state, reason = "running", "RUNNING marker present and no summary.json: still running, or the run died"
    else:
        state, reason = "incomplete", "no summary.json"
    run_id = str(summary.get("run_id") or (records[0]["run_id"] if records else path.name))
    exit_code = summary.get("exit_code")
    notebooks: list[NotebookRun] = []
    listed: list[Mapping[str, Any]] = [n for n in summary.get("notebooks", []) if isinstance(n, dict)]
    names = [str(n.get("runbook", "")) for n in listed]
    for extra in [str(r["notebook"]) for r in records] + sorted(p.stem for p in (path / "notebooks").glob("*.ipynb")):
        if extra not in names:
            names.append(extra)
            listed.append({"runbook": extra, "outcome": "unknown"})
    for entry in listed:
        name = str(entry.get("runbook", ""))
        title, parameters = _notebook_meta(path / "notebooks" / f"{name}.ipynb")
        cell = entry.get("cell")
        notebooks.append(
            NotebookRun(
                runbook=name,
                outcome=str(entry.get("outcome", "unknown")),
                seconds=float(entry.get("seconds") or 0.0),
                cell=int(cell) if isinstance(cell, int) else None,
                error=str(entry.get("error") or ""),
                reason=str(entry.get("reason") or ""),
                title=title,
                parameters=parameters,
            )
        )
    return RunData(
        path=path,
        run_id=run_id,
        exit_code=int(exit_code) if isinstance(exit_code, int) else None,
        state=state,
        state_reason=reason,
        notebooks=notebooks,
        records=records,
        rows=kind_rows(run_id, typed),
        problems=problems,
        leaks=[leak for leak in summary.get("leaks") or [] if isinstance(leak, dict)],
        leak_scan=summary["leak_scan"] if isinstance(summary.get("leak_scan"), dict) else {},
        identity=summary["identity"] if isinstance(summary.get("identity"), dict) else {},
    )
