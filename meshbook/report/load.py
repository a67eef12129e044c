"""Read run directories into plain rows (for the renderers) and pandas DataFrames (for notebook users).

Everything comes from the run directory as it is on disk: `summary.json`, `evidence.jsonl`, the executed
notebooks (title, parameters) and the `RUNNING` / `INCOMPLETE` markers. `manifest.json` is never read:
reports are built before it is written (it hashes them), and a report rebuilt later must come out
byte-for-byte the same so `meshbook verify` still holds.
"""

from __future__ import annotations

import functools
import json
import re
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshbook.evidence.records import TruncatedEvidenceWarning, check_record, load_evidence

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "NotebookRun",
    "RunData",
    "delivery_rows",
    "load",
    "notebook_rows",
    "pod_rows",
    "policy_rows",
    "printable",
    "read_run",
    "workload_of",
]

Row = dict[str, Any]

RUNNING_MARKER = "RUNNING"
INCOMPLETE_MARKER = "INCOMPLETE"
EXPECTATION_KINDS = ("pod_state", "secret_delivery", "mesh_policy")

# Deployment pods: <name>-<pod-template-hash>-<5 chars>; StatefulSet pods: <name>-<ordinal>.
_DEPLOYMENT_POD = re.compile(r"^(?P<name>.+)-[a-z0-9]{6,10}-[a-z0-9]{5}$")
_STATEFUL_POD = re.compile(r"^(?P<name>.+)-[0-9]+$")


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def printable(text: object) -> str:
    """`text` without terminal colour codes, other control characters shown as `\\xNN` (valid in XML 1.0)."""
    cleaned = _ANSI.sub("", "" if text is None else str(text))
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group(0)):02x}", cleaned)


def workload_of(pod: str) -> str:
    """The workload a pod name belongs to (`app-7d9f8c6b5-x2x9z` -> `app`, `vault-0` -> `vault`)."""
    for pattern in (_DEPLOYMENT_POD, _STATEFUL_POD):
        match = pattern.match(pod)
        if match:
            return match.group("name")
    return pod


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
    problems: list[str] = field(default_factory=list)

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


def _read_records(path: Path, problems: list[str]) -> list[Row]:
    evidence = path / "evidence.jsonl"
    if not evidence.exists():
        problems.append("evidence.jsonl: missing")
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedEvidenceWarning)
        try:
            loaded = load_evidence(evidence, quiet=True)
        except ValueError as exc:
            problems.append(f"evidence.jsonl: {exc}")
            return []
    if loaded.truncated_line is not None:
        line, size = loaded.truncated_line, loaded.truncated_bytes
        problems.append(f"evidence.jsonl: line {line} is a partial record ({size} bytes), skipped")
    records: list[Row] = []
    for obj in loaded.records:
        issues = check_record(obj)
        if issues:
            problems.append(f"evidence.jsonl: record seq {obj.get('seq', '?')} skipped: {'; '.join(issues[:3])}")
            continue
        records.append(dict(obj))
    return records


def read_run(path: Path) -> RunData:
    """Read one run directory; damage (bad lines, missing files) is listed in `problems`, not raised."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a run directory")
    problems: list[str] = []
    summary = _read_json(path / "summary.json", problems)
    summary = summary if isinstance(summary, dict) else {}
    records = _read_records(path, problems)
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
        problems=problems,
    )


# -- rows ----------------------------------------------------------------------------------------------------


def _per_run(build: Callable[[RunData], list[Row]]) -> Callable[[RunData], list[Row]]:
    """Rows are derived once per run: every notebook section and report format reads them again."""
    cache: dict[int, list[Row]] = {}  # by id(run); an entry goes when its run is collected

    @functools.wraps(build)
    def rows(run: RunData) -> list[Row]:
        key = id(run)
        if key not in cache:
            cache[key] = build(run)
            weakref.finalize(run, cache.pop, key, None)
        return cache[key]

    return rows


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def notebook_rows(run: RunData) -> list[Row]:
    """One row per notebook: outcome, seconds, failing cell, error and reason, expectation counts."""
    rows = []
    for nb in run.notebooks:
        records = [r for r in run.records_of(nb.runbook) if r["kind"] in EXPECTATION_KINDS]
        rows.append(
            {
                "run_id": run.run_id,
                "runbook": nb.runbook,
                "title": nb.title,
                "outcome": nb.outcome,
                "seconds": nb.seconds,
                "cell": nb.cell,
                "error": nb.error,
                "reason": nb.reason,
                "passed": sum(1 for r in records if r["outcome"] == "pass"),
                "failed": sum(1 for r in records if r["outcome"] == "fail"),
            }
        )
    return rows


@_per_run
def pod_rows(run: RunData) -> list[Row]:
    """One row per `pod_state` record: expected and observed READY, sidecar, phase, restarts."""
    rows = []
    for r in run.records:
        if r["kind"] != "pod_state":
            continue
        observed, expected = _obj(r["observed"]), _obj(r["expected"])
        namespace, _, pod = str(r["subject"]).partition("/")
        rows.append(
            {
                "run_id": run.run_id,
                "seq": r["seq"],
                "at": r["at"],
                "notebook": r["notebook"],
                "step": r["step"],
                "namespace": namespace if pod else "",
                "pod": pod or namespace,
                "workload": workload_of(pod or namespace),
                "expected_ready": expected.get("ready"),
                "ready": observed.get("ready"),
                "status": observed.get("status", observed.get("phase")),
                "sidecar": observed.get("sidecar"),
                "containers": list(observed.get("containers") or []),
                "init_containers": list(observed.get("init_containers") or []),
                "restarts": observed.get("restarts"),
                "outcome": r["outcome"],
                "reason": r["reason"],
            }
        )
    return rows


@_per_run
def delivery_rows(run: RunData) -> list[Row]:
    """One row per `secret_delivery` record: container, delivered, matches_vault, fingerprint (no value)."""
    rows = []
    for r in run.records:
        if r["kind"] != "secret_delivery":
            continue
        observed = _obj(r["observed"])
        parts = str(r["subject"]).split("/")
        rows.append(
            {
                "run_id": run.run_id,
                "seq": r["seq"],
                "at": r["at"],
                "notebook": r["notebook"],
                "step": r["step"],
                "subject": r["subject"],
                "namespace": parts[0] if len(parts) > 1 else "",
                "workload": parts[1] if len(parts) > 2 else parts[-1],
                "container": observed.get("container", parts[-1] if len(parts) > 2 else ""),
                "path": observed.get("path"),
                "key": observed.get("key"),
                "delivered": observed.get("delivered"),
                "matches_vault": observed.get("matches_vault"),
                "fingerprint": observed.get("fingerprint"),
                "outcome": r["outcome"],
                "reason": r["reason"],
            }
        )
    return rows


@_per_run
def policy_rows(run: RunData) -> list[Row]:
    """`mesh_policy` records and applied PeerAuthentications: subject, mode, deciding object, outcome."""
    rows = []
    for r in run.records:
        observed, expected = _obj(r["observed"]), _obj(r["expected"])
        if r["kind"] == "mesh_policy":
            mode, source = observed.get("mode"), "observed"
            deciding = observed.get("deciding_object") or ""
        elif r["kind"] == "action" and observed.get("kind") == "PeerAuthentication":
            applied = str(observed.get("applied", ""))
            mode = "PERMISSIVE" if "permissive" in applied else "STRICT" if "mtls" in applied else None
            source, deciding = "applied", f"PeerAuthentication {r['subject']} ({applied})"
        else:
            continue
        rows.append(
            {
                "run_id": run.run_id,
                "seq": r["seq"],
                "at": r["at"],
                "notebook": r["notebook"],
                "step": r["step"],
                "subject": r["subject"],
                "source": source,
                "expected_mode": expected.get("mode"),
                "mode": mode,
                "deciding_object": deciding,
                "scope": observed.get("scope"),
                "outcome": r["outcome"],
                "reason": r["reason"],
            }
        )
    return rows


def evidence_rows(run: RunData) -> list[Row]:
    """The records themselves, one row each (expected/observed kept as JSON objects)."""
    return [
        {"run_id": run.run_id, **{k: v for k, v in r.items() if k not in ("run_id", "schema")}} for r in run.records
    ]


# -- DataFrames --------------------------------------------------------------------------------------------

_COLUMNS: dict[str, Sequence[str]] = {
    "evidence": (
        "run_id", "seq", "at", "notebook", "step", "kind", "subject", "expected", "observed", "outcome", "reason",
    ),
    "notebooks": ("run_id", "runbook", "title", "outcome", "seconds", "cell", "error", "reason", "passed", "failed"),
    "pods": (
        "run_id", "seq", "at", "notebook", "step", "namespace", "pod", "workload", "expected_ready", "ready", "status",
        "sidecar", "containers", "init_containers", "restarts", "outcome", "reason",
    ),
    "deliveries": (
        "run_id", "seq", "at", "notebook", "step", "subject", "namespace", "workload", "container", "path", "key",
        "delivered", "matches_vault", "fingerprint", "outcome", "reason",
    ),
    "policies": (
        "run_id", "seq", "at", "notebook", "step", "subject", "source", "expected_mode", "mode", "deciding_object",
        "scope", "outcome", "reason",
    ),
}  # fmt: skip


def load(run_dirs: Iterable[Path | str] | Path | str) -> dict[str, pd.DataFrame]:
    """DataFrames over one or many run directories: evidence, notebooks, pods, deliveries, policies.

    Every frame has a `run_id` column; `at` is a UTC timestamp in `evidence`, `pods`, `deliveries`
    and `policies`. Records are read as written (already redacted; fingerprints, never values).
    """
    import pandas as pd

    dirs = [run_dirs] if isinstance(run_dirs, str | Path) else list(run_dirs)
    runs = [read_run(Path(d)) for d in dirs]
    builders = {
        "evidence": evidence_rows,
        "notebooks": notebook_rows,
        "pods": pod_rows,
        "deliveries": delivery_rows,
        "policies": policy_rows,
    }
    frames: dict[str, pd.DataFrame] = {}
    for name, build in builders.items():
        rows = [row for run in runs for row in build(run)]
        frame = pd.DataFrame(rows, columns=list(_COLUMNS[name]))
        if "at" in frame.columns:
            frame["at"] = pd.to_datetime(frame["at"], utc=True, format="ISO8601")
        frames[name] = frame
    return frames
