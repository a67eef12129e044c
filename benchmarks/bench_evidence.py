"""Evidence and reports at scale: append cost per record, report time for 1 run and for 100 runs, and
the end-of-run leak scan of a default-sized run directory and of one with 100 MB of notebooks.

Goals (issue 6, and issue 15 for the report): < 1 ms per record appended; a 100-run report < 10 s. Runs are
synthetic (valid records written with EvidenceWriter, 1,000 each; notebooks of random text and base64
outputs); the scan seeks secrets shaped like a sandbox run's (PEM keys, tokens, unseal keys).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from benchmarks._util import percentile
from benchmarks.figures import Figure
from meshbook.evidence import EvidenceWriter, Redactor, fingerprint, scan_directory
from meshbook.evidence.leakscan import values_found_by_pattern
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


def _known_values() -> dict[str, str]:
    """14 values as a sandbox run knows them: 4 private keys, tokens, 5 unseal keys, demo values."""

    def pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
        fmt = serialization.PrivateFormat.PKCS8
        return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()

    values = {pem(ec.generate_private_key(ec.SECP256R1())): f"TLS private key {n}" for n in range(3)}
    values[pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))] = "signing key"
    values[secrets.token_urlsafe(32)] = "kubeconfig bearer token"
    values["s." + secrets.token_urlsafe(18)] = "Vault root token"
    values.update({secrets.token_hex(32): f"Vault unseal key {n}" for n in range(5)})
    values.update(
        {
            "secretId": "startupSecrets",
            # a short value with a dash, which hex and base64 filler never contain: a bare 6-hex-digit
            # value turns up by chance in 100 MB of random hex and made the scan "find" a leak
            f"{secrets.token_hex(2)}-{secrets.token_hex(1)}": "startupSecrets 2",
            "eyJ" + secrets.token_urlsafe(600): "jwt",
        }
    )
    return values


def _notebooks(folder: Path, total_bytes: int) -> None:
    """Five executed notebooks of `total_bytes` together: stream text and base64 image outputs."""
    folder.mkdir(parents=True, exist_ok=True)
    each = total_bytes // 5
    for n in range(5):
        outputs: list[dict[str, Any]] = []
        size = 0
        while size < each:
            text = "pod app-7d9 READY 2/2 Running resourceVersion 123456 " + os.urandom(2048).hex()
            image = base64.b64encode(os.urandom(24 * 1024)).decode()
            outputs.append({"output_type": "stream", "name": "stdout", "text": [text]})
            outputs.append({"output_type": "display_data", "data": {"image/png": image}, "metadata": {}})
            size += len(text) + len(image) + 120
        cell = {"cell_type": "code", "source": "x", "metadata": {}, "execution_count": 1, "outputs": outputs}
        book = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        (folder / f"{n:02d}.ipynb").write_text(json.dumps(book, indent=1))


def _scan_figure(key: str, label: str, run: Path, values: dict[str, str]) -> Figure:
    start = time.perf_counter()
    result = scan_directory(run, values)
    seconds = time.perf_counter() - start
    if result.leaks:
        raise RuntimeError(f"{label}: the leak scan found {len(result.leaks)} leaks in synthetic data with none")
    return Figure.of(key, [seconds], "s", f"{label} ({result.files} files, {result.bytes / 1e6:.0f} MB)")


def _pattern_figure(key: str, label: str, run: Path, values: dict[str, str]) -> Figure:
    """The pattern pass (credential formats nobody knew), after masking the known values, as a run does."""
    known = Redactor()
    for value, name in values.items():
        known.add(value, label=name)
    start = time.perf_counter()
    found = values_found_by_pattern(run, known)
    seconds = time.perf_counter() - start
    return Figure.of(key, [seconds], "s", label, note=f"{len(found)} found")


def measure() -> list[Figure]:
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
        print(f"  evidence append p50 {p50:.3f} ms, p99 {p99:.3f} ms (flushed and fsynced each)", flush=True)
        start = time.perf_counter()
        build_reports([runs[0]])
        one = time.perf_counter() - start
        start = time.perf_counter()
        build_reports(runs, root / "all")
        many = time.perf_counter() - start
        print(f"  report of 1 run {one:.2f} s, of {RUNS} runs {many:.2f} s", flush=True)
        values = _known_values()
        _notebooks(runs[0] / "notebooks", 250_000)  # about a default run's five executed notebooks
        big = root / "big-run"
        _notebooks(big / "notebooks", 100_000_000)
        return [
            Figure.of("evidence_append_p50", [p50], "ms", note=f"n={len(costs)}"),
            Figure.of("report_100_runs", [many], "s"),
            Figure.of("evidence_append_p99", [p99], "ms", "evidence append, one record, p99 (fsynced)"),
            Figure.of("report_1_run", [one], "s", "report of 1 run (1,000 records)"),
            _scan_figure("leak_scan_default", "leak scan, default-sized run directory", runs[0], values),
            _pattern_figure("pattern_pass_default", "pattern pass, default-sized run directory", runs[0], values),
            _scan_figure("leak_scan_100mb", "leak scan, run directory with 100 MB of notebooks", big, values),
            _pattern_figure("pattern_pass_100mb", "pattern pass, run directory with 100 MB of notebooks", big, values),
        ]
