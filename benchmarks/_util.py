"""Shared helpers for the benchmarks: percentiles, process memory, the machine a run measured on."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def percentile(samples: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile (`pct` in 0..100) of `samples`; NaN when there are none."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def proc_status_kib(pid: int, field: str) -> int:
    """A `kB` figure from /proc/PID/status (`VmRSS`, `VmHWM`...), in KiB; -1 when it is absent."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return -1


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_line() -> str:
    """The 1/5/15-minute load averages and CPU count: how busy the machine was while measuring."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (MiB), from VmRSS."""
    return proc_status_kib(pid, "VmRSS") / 1024


def commit(root: Path = ROOT) -> str:
    """The checkout's commit (short), `-dirty` with uncommitted changes; `unknown` outside git."""

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False, timeout=30)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    head = git("rev-parse", "--short=12", "HEAD")
    if not head:
        return "unknown"
    return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine_info() -> dict[str, Any]:
    """What results.json says about where and when it was measured (figures from a busy machine are noisy)."""
    return {
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cores": os.cpu_count(),
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "meshbook_commit": commit(),
    }


def busy_warning(load_one_minute: float, cores: int | None) -> str | None:
    """A warning when the machine was already busier than its cores when the benchmarks started."""
    if cores and load_one_minute > cores:
        return (
            f"warning: load average {load_one_minute:.2f} is above the {cores} cores at start: "
            "other processes compete for the CPUs, figures are noisy (compare runs made under like load)"
        )
    return None
