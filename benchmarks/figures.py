"""What a benchmark module returns: figures as data (samples and their unit), never only printed lines.

Each module has `measure() -> list[Figure]`. A figure whose key is a goal's (`goals.GOALS`) is judged against
it; any other figure is a detail shown under the goals with no goal of its own (`title` names it).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """One measured quantity: every sample taken (one per run), its unit, and what the samples mean."""

    key: str
    samples: tuple[float, ...]
    unit: str
    title: str = ""  # for a figure without a goal; a goal's figure takes the goal's title
    note: str = ""  # what a reader needs next to the number: exit codes, states skipped, sample size

    @classmethod
    def of(cls, key: str, samples: Iterable[float], unit: str, title: str = "", note: str = "") -> Figure:
        return cls(key, tuple(float(s) for s in samples), unit, title, note)

    def summary(self, statistic: str) -> float:
        """The samples' median, min or max (what a goal judges)."""
        if not self.samples:
            raise ValueError(f"figure {self.key!r} has no samples; a benchmark returns only what it measured")
        if statistic == "median":
            return float(statistics.median(self.samples))
        if statistic == "min":
            return min(self.samples)
        if statistic == "max":
            return max(self.samples)
        raise ValueError(f"figure {self.key!r}: unknown statistic {statistic!r}; expected median, min or max")
