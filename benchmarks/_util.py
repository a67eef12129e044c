"""Shared helpers for the benchmarks: percentiles, process memory and target lines."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence


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


def target_line(label: str, value: float, unit: str, target: float) -> str:
    """One figure with its `< target` and whether it was met; benchmarks print, never assert."""
    verdict = "met" if value < target else "MISSED"
    return f"{label:<52} {value:9.2f} {unit:<3} (target < {target:g} {unit}: {verdict})"


def figure_line(label: str, value: float, unit: str) -> str:
    """One figure without a target."""
    return f"{label:<52} {value:9.2f} {unit}"
