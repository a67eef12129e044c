"""Rows for the renderers and pandas DataFrames for notebook users, over runs read by `meshbook.report.rundir`.

Pod, delivery and policy rows were built once when the run was read (`meshbook.report.rows`, from the
typed records); notebook rows and the evidence table come from the records as written: already
redacted, deliveries with fingerprints, never values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from meshbook.evidence.payloads import RecordOutcome
from meshbook.report.rows import EXPECTATION_KINDS, Row
from meshbook.report.rundir import RunData, read_run

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "delivery_rows",
    "evidence_rows",
    "load",
    "notebook_rows",
    "pod_rows",
    "policy_rows",
    "printable",
]


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def printable(text: object) -> str:
    """`text` without terminal colour codes, other control characters shown as `\\xNN` (valid in XML 1.0)."""
    plain = "" if text is None else str(text)
    if plain.isascii() and plain.isprintable():  # the common case: nothing to remove or show
        return plain
    cleaned = _ANSI.sub("", plain)
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group(0)):02x}", cleaned)


# -- rows ----------------------------------------------------------------------------------------------------


def notebook_rows(run: RunData) -> list[Row]:
    """One row per notebook: outcome, seconds, failing cell, error and reason, expectation counts."""
    rows = []
    for nb in run.notebooks:
        outcomes = [r["outcome"] for r in run.records_of(nb.runbook) if r["kind"] in EXPECTATION_KINDS]
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
                "passed": outcomes.count(RecordOutcome.PASS),
                "failed": outcomes.count(RecordOutcome.FAIL),
            }
        )
    return rows


def pod_rows(run: RunData) -> list[Row]:
    """One row per `pod_state` record: expected and observed READY, sidecar, phase, restarts."""
    return run.rows.pods


def delivery_rows(run: RunData) -> list[Row]:
    """One row per `secret_delivery` record: container, delivered, matches_vault, fingerprint (no value)."""
    return run.rows.deliveries


def policy_rows(run: RunData) -> list[Row]:
    """`mesh_policy` records and applied PeerAuthentications: subject, mode, deciding object, outcome."""
    return run.rows.policies


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
        "delivered", "matches_vault", "expected_fingerprint", "fingerprint", "literal_reference", "outcome", "reason",
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
