"""Evidence and reports at scale: append cost per record, report time for 1 run and for 100 runs.

Targets (the audit-reports issue): < 1 ms per record appended; a 100-run report < 10 s. Runs are
synthetic (valid records written with EvidenceWriter, 1,000 each); prints figures, never asserts.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from benchmarks._util import load_line, percentile
from meshbook.evidence import EvidenceWriter, Redactor, fingerprint
from meshbook.report import build_reports

RECORDS_PER_RUN = 1000
RUNS = 100
NOTEBOOKS = ("00-prereq-istio", "01-prereq-bank-vaults", "10-scenario-1", "20-scenario-2", "30-scenario-3")
KEY = b"benchmark-fingerprint-key-32-byte"


def _write_run(path: Path, run_id: str, redactor: Redactor) -> list[float]:
    path.mkdir(parents=True)
    (path / "notebooks").mkdir()
    writer = EvidenceWriter(path / "evidence.jsonl", run_id, redactor=redactor)
    costs: list[float] = []
    for i in range(RECORDS_PER_RUN):
        notebook = NOTEBOOKS[i % len(NOTEBOOKS)]
        start = time.perf_counter()
        if i % 10 == 0:
            writer.record(
                "secret_delivery",
                "app/app/app",
                notebook=notebook,
                step="expectations",
                outcome="pass",
                expected={"delivered": True, "matches_vault": True},
                observed={
                    "container": "app",
                    "path": "secret/data/accounts/aws",
                    "key": "AWS_SECRET_ACCESS_KEY",
                    "delivered": True,
                    "matches_vault": True,
                    "fingerprint": fingerprint("value", KEY),
                },
            )
        else:
            writer.record(
                "pod_state",
                f"app/app-{i}",
                notebook=notebook,
                step="expectations",
                outcome="pass",
                expected={"ready": "2/2"},
                observed={
                    "ready": "2/2",
                    "containers": ["app", "istio-proxy"],
                    "init_containers": ["istio-init"],
                    "sidecar": True,
                    "phase": "Running",
                    "restarts": 0,
                    "status": "Running",
                },
                reason="READY 2/2, Running",
            )
        costs.append(time.perf_counter() - start)
    summary = {
        "run_id": run_id,
        "exit_code": 0,
        "leaks": [],
        "notebooks": [
            {"runbook": n, "outcome": "pass", "seconds": 1.0, "cell": None, "error": "", "reason": ""}
            for n in NOTEBOOKS
        ],
    }
    (path / "summary.json").write_text(json.dumps(summary))
    return costs


def main() -> None:
    print(f"  load: {load_line()}")
    redactor = Redactor()
    with tempfile.TemporaryDirectory(prefix="meshbook-bench-evidence-") as tmp:
        root = Path(tmp)
        costs: list[float] = []
        runs = []
        for n in range(RUNS):
            run = root / f"20261127T0000{n:02d}Z-bench{n:02d}"
            costs += _write_run(run, run.name, redactor)
            runs.append(run)
        p50, p99 = percentile(costs, 50) * 1000, percentile(costs, 99) * 1000
        print(
            f"  evidence append p50 {p50:.3f} ms  p99 {p99:.3f} ms  (target < 1 ms: {'met' if p50 < 1 else 'MISSED'};"
            " flushed and fsynced each)"
        )
        start = time.perf_counter()
        build_reports([runs[0]])
        one = time.perf_counter() - start
        print(f"  report of 1 run (1,000 records)            {one:6.2f} s")
        start = time.perf_counter()
        build_reports(runs, root / "all")
        many = time.perf_counter() - start
        print(
            f"  report of {RUNS} runs (1,000 records each)   {many:6.2f} s   (target < 10 s: "
            f"{'met' if many < 10 else 'MISSED'})"
        )


if __name__ == "__main__":
    main()
