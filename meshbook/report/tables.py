"""The tables report.html shows: cells, rows and tables as plain data the templates render."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    """One table cell: plain text, an outcome badge, or an in-page link; `css` is the cell's class."""

    text: str
    css: str = ""
    badge: bool = False
    href: str = ""


@dataclass(frozen=True)
class TableRow:
    cells: list[Cell]
    css: str = ""  # the row's outcome, which colours it


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[TableRow]
