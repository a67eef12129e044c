"""Figures next to their goals: the rows, the printed table, the JSON document and the before/after comparison.

Pure functions over `Figure`s and `Goal`s, so they are tested on fabricated figures (tests/test_benchmarks.py)
and nothing here times anything.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.figures import Figure
from benchmarks.goals import GOALS, Goal

SCHEMA = 1


@dataclass(frozen=True)
class Row:
    """One line of the table and one entry of results.json."""

    key: str
    title: str
    unit: str
    goal: str  # as printed: `< 10 s`, `reference`, or `-` for a detail with no goal
    comparison: str | None
    target: float | None
    statistic: str
    value: float | None  # the statistic the goal judges; None when not measured
    median: float | None
    min: float | None
    max: float | None
    samples: tuple[float, ...]
    met: bool | None
    source: str
    before: float | None
    note: str

    @property
    def measured(self) -> bool:
        return self.value is not None


def _row(key: str, title: str, unit: str, figure: Figure | None, goal: Goal | None, note: str) -> Row:
    statistic = goal.statistic if goal else "median"
    value = figure.summary(statistic) if figure else None
    return Row(
        key=key,
        title=title,
        unit=unit,
        goal=goal.describe() if goal else "-",
        comparison=goal.comparison if goal else None,
        target=goal.target if goal else None,
        statistic=statistic,
        value=value,
        median=figure.summary("median") if figure else None,
        min=figure.summary("min") if figure else None,
        max=figure.summary("max") if figure else None,
        samples=figure.samples if figure else (),
        met=goal.met(value) if goal and value is not None else None,
        source=goal.source if goal else "",
        before=goal.before if goal else None,
        note=note,
    )


def _goal_row(goal: Goal, figure: Figure | None, reason: str) -> Row:
    """A goal's row: its figure judged, or `reason` (why it was not measured, how to measure it)."""
    if figure is not None and figure.unit != goal.unit:
        raise ValueError(
            f"figure {figure.key!r} is in {figure.unit!r} but its goal is in {goal.unit!r}: "
            "return the figure in the goal's unit"
        )
    row = _row(goal.key, goal.title, goal.unit, figure, goal, figure.note if figure else reason)
    if row.met is False and goal.blocked:
        row = replace(row, note="; ".join(n for n in (f"blocked {goal.blocked}", row.note) if n))
    return row


def _detail_row(figure: Figure) -> Row:
    return _row(figure.key, figure.title or figure.key, figure.unit, figure, None, figure.note)


def _merged(figures: Sequence[Figure]) -> dict[str, Figure]:
    """Figures by key, samples of the same key joined (a module may report one figure per run)."""
    merged: dict[str, Figure] = {}
    for figure in figures:
        known = merged.get(figure.key)
        if known is None:
            merged[figure.key] = figure
        elif known.unit != figure.unit:
            raise ValueError(f"figure {figure.key!r} reported in {known.unit!r} and in {figure.unit!r}")
        else:
            note = "; ".join(n for n in (known.note, figure.note) if n)
            merged[figure.key] = Figure(figure.key, known.samples + figure.samples, known.unit, known.title, note)
    return merged


def not_measured_reason(goal: Goal, ran: Sequence[str], failed: Mapping[str, str]) -> str:
    """Why a goal has no figure, and how to get one."""
    if goal.benchmark in failed:
        return f"not measured: {goal.benchmark} failed: {failed[goal.benchmark]}"
    if goal.benchmark in ran:
        return f"not measured: {goal.benchmark} returned no {goal.key!r} figure"
    if goal.how.startswith("not run by default"):
        return f"not measured: {goal.how}"
    return f"not measured: run `python -m benchmarks {goal.benchmark}`"


def build_rows(
    figures: Sequence[Figure],
    *,
    ran: Sequence[str] = (),
    failed: Mapping[str, str] | None = None,
    goals: Sequence[Goal] = GOALS,
) -> list[Row]:
    """Every goal as a row (measured or saying why not), then the figures without a goal, as details."""
    by_key = _merged(figures)
    failed = failed or {}
    rows = [_goal_row(g, by_key.get(g.key), not_measured_reason(g, ran, failed)) for g in goals]
    goal_keys = {g.key for g in goals}
    rows += [_detail_row(f) for key, f in by_key.items() if key not in goal_keys]
    return rows


def number(value: float | None) -> str:
    """A figure as printed: three significant digits or so, integers without decimals."""
    if value is None or math.isnan(value):
        return "-"
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _with_unit(value: float | None, unit: str) -> str:
    text = number(value)
    return f"{text} {unit}".rstrip() if value is not None else text


def _measured(row: Row) -> str:
    if row.value is None:
        return "not measured"
    text = _with_unit(row.value, row.unit)
    if row.statistic != "median":
        text += f" ({row.statistic})"
    if len(row.samples) > 1:
        text += f"  [median {number(row.median)}, {number(row.min)}..{number(row.max)}, n={len(row.samples)}]"
    return text


def _met(row: Row) -> str:
    return {True: "yes", False: "NO", None: "-"}[row.met]


def _grid(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *lines]]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def render(rows: Sequence[Row]) -> str:
    """The table `make bench` prints: every goal, then the details; notes (and reasons) in the last column."""
    header = ("figure", "measured", "goal", "met", "before", "source", "note")
    lines = [
        (r.title, _measured(r), r.goal, _met(r), _with_unit(r.before, r.unit), r.source, r.note)
        for r in rows
        if r.goal != "-"
    ]
    details = [(r.title, _measured(r), "-", "-", "", "", r.note) for r in rows if r.goal == "-"]
    text = _grid(header, lines)
    if details:
        text += "\n\ndetails (no goal of their own)\n" + _grid(
            header[:2] + header[-1:], [(d[0], d[1], d[6]) for d in details]
        )
    missed = [r.title for r in rows if r.met is False]
    unmeasured = [r.title for r in rows if r.goal != "-" and not r.measured]
    text += f"\n\ngoals met: {sum(r.met is True for r in rows)}, missed: {len(missed)}, not measured: {len(unmeasured)}"
    return text


def document(
    rows: Sequence[Row], machine: Mapping[str, Any], failed: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """results.json: the machine, every row with its samples, and the benchmarks that failed."""
    return {
        "schema": SCHEMA,
        "machine": dict(machine),
        "failed": dict(failed or {}),
        "rows": [{**asdict(r), "samples": list(r.samples)} for r in rows],
    }


def load_document(path: Path) -> dict[str, Any]:
    """A results.json written by `python -m benchmarks`; a precise error for anything else."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path} is not JSON ({exc.msg} at line {exc.lineno}); expected a benchmarks results.json"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ValueError(f"{path} has no `rows` list; expected a results.json written by `python -m benchmarks`")
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path} has schema {data.get('schema')!r}, this version reads {SCHEMA}")
    return data


def _change(old: float | None, new: float | None) -> str:
    if old is None or new is None:
        return "-"
    delta = new - old
    sign = "+" if delta >= 0 else "-"
    percent = f" ({sign}{abs(delta) / abs(old) * 100:.0f} %)" if old else ""
    return f"{sign}{number(abs(delta))}{percent}"


def _machine_line(label: str, machine: Mapping[str, Any]) -> str:
    load = machine.get("load_at_start") or []
    load_text = " ".join(f"{x:.2f}" for x in load) if load else "?"
    return (
        f"{label}: commit {machine.get('meshbook_commit', '?')}, {machine.get('started_at', '?')}, "
        f"{machine.get('cores', '?')} cores, load at start {load_text}"
    )


def compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """Before / after per row (the figure each goal judges), in the new document's order, then rows only the
    old one has."""
    old_rows = {r["key"]: r for r in old["rows"]}
    new_rows = {r["key"]: r for r in new["rows"]}
    keys = list(new_rows) + [k for k in old_rows if k not in new_rows]
    header = ("figure", "before", "after", "change", "goal", "met before", "met after")
    lines = []
    for key in keys:
        before, after = old_rows.get(key), new_rows.get(key)
        either = after or before
        assert either is not None
        unit = either["unit"]
        old_value = before["value"] if before else None
        new_value = after["value"] if after else None
        lines.append(
            (
                either["title"],
                _with_unit(old_value, unit) if old_value is not None else "not measured",
                _with_unit(new_value, unit) if new_value is not None else "not measured",
                _change(old_value, new_value),
                either["goal"],
                {True: "yes", False: "NO", None: "-"}[before["met"] if before else None],
                {True: "yes", False: "NO", None: "-"}[after["met"] if after else None],
            )
        )
    machines = "\n".join((_machine_line("before", old["machine"]), _machine_line("after ", new["machine"])))
    return machines + "\n" + _grid(header, lines)
