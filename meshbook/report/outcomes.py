"""The outcome summary every report starts with: failing notebooks first, each with its reasons and fixes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshbook.evidence import Kind, RecordOutcome
from meshbook.report.advice import Advice, advise_all
from meshbook.report.rundir import NotebookRun, RunData

__all__ = ["LeakScanSummary", "NotebookOutcome", "leak_scan_summary", "notebook_outcomes", "run_settings"]

Row = dict[str, Any]

OUTCOME_ORDER = {"fail": 0, "unknown": 1, "skipped": 2, "pass": 3}
FAILING_KINDS = (Kind.POD_STATE, Kind.SECRET_DELIVERY, Kind.MESH_POLICY, Kind.VAULT_STATUS, Kind.ACTION, Kind.NAMESPACE)


@dataclass(frozen=True)
class NotebookOutcome:
    """A notebook's verdict with the failing records behind it and what to do about them."""

    notebook: NotebookRun
    failed: list[Row]
    advice: list[Advice]

    @property
    def failing(self) -> bool:
        return self.notebook.outcome == "fail" or bool(self.failed)


def notebook_outcomes(run: RunData) -> list[NotebookOutcome]:
    """One entry per notebook, failing first (then unknown, skipped, passed), run order within each."""
    items = []
    for nb in run.notebooks:
        failed = [
            r for r in run.records_of(nb.runbook) if r["outcome"] == RecordOutcome.FAIL and r["kind"] in FAILING_KINDS
        ]
        reasons = [str(r["reason"]) for r in failed] + [nb.reason, nb.error]
        items.append(NotebookOutcome(nb, failed, advise_all(reasons) if nb.outcome != "pass" or failed else []))
    position = {nb.runbook: i for i, nb in enumerate(run.notebooks)}
    return sorted(items, key=lambda o: (OUTCOME_ORDER.get(o.notebook.outcome, 1), position[o.notebook.runbook]))


_SETTINGS = (
    ("target", ("target",)),
    ("mode", ("mode",)),
    ("sidecar mode", ("istio", "sidecar_mode")),
    ("mesh mTLS", ("istio", "mesh_mtls_mode")),
    ("webhook PERMISSIVE", ("bank_vaults", "webhook_permissive")),
    ("vault PERMISSIVE", ("vault", "permissive")),
    ("webhook failure policy", ("bank_vaults", "pods_failure_policy")),
    ("Vault istioEnabled", ("vault", "istio_enabled")),
)


def run_settings(run: RunData) -> list[tuple[str, str]]:
    """The toggles that decide the scenarios' outcomes, from the first executed notebook's parameters."""
    params = next((nb.parameters for nb in run.notebooks if nb.parameters), None)
    if not params:
        return []
    out = []
    for label, path in _SETTINGS:
        value: Any = params
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            out.append((label, str(value).lower() if isinstance(value, bool) else str(value)))
    return out


@dataclass(frozen=True)
class LeakScanSummary:
    """The leak scan's scope and result as the top of a report states it: an auditor sees what was
    sought (classes, how many values each, encodings) and where anything was found; never a value."""

    headline: str
    classes: list[tuple[str, str]]  # (class, number of values)
    encodings: str
    not_read: list[str]
    leaks: list[tuple[str, str, str, str, str]]  # (path, class, encoding, count, scrubbed)


def leak_scan_summary(run: RunData) -> LeakScanSummary | None:
    """None for a run whose summary carries no scan (an older run, or one that did not finish)."""
    scope = run.leak_scan
    if not scope:
        return None
    listed = scope.get("classes")
    classes: dict[str, int] = (
        {str(k): int(v) for k, v in listed.items() if isinstance(v, int)} if isinstance(listed, dict) else {}
    )
    values = sum(classes.values())
    found = (
        "no leak found" if not run.leaks else f"{len(run.leaks)} leak(s) found, scrubbed where possible (run failed)"
    )
    headline = (
        f"Leak scan: {values} known secret values in {sum(1 for n in classes.values() if n)} classes, sought in "
        f"{len(scope.get('encodings') or [])} encodings and inside gzip members, across {scope.get('files', 0)} "
        f"files ({int(scope.get('bytes', 0)) / 1e6:.1f} MB): {found}."
    )
    leaks = [
        (str(x.get("path", "")), str(x.get("secret", "")), str(x.get("encoding", "")), str(x.get("count", "")),
         "yes" if x.get("scrubbed") else "no")
        for x in run.leaks
    ]  # fmt: skip
    return LeakScanSummary(
        headline=headline,
        classes=[(str(name), str(count)) for name, count in classes.items()],
        encodings=", ".join(str(e) for e in scope.get("encodings") or []),
        not_read=[str(x) for x in scope.get("not_read") or []],
        leaks=leaks,
    )
