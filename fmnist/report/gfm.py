"""Tables for GitHub-flavoured markdown and CSV from one column list. tabulate's github format
writes cells as they are, so a pipe in a header (`max |Δp|`) or an error message splits its row and
GitHub then shows no table at all: every cell goes through `cell` first. A long per-row table is
published twice from the same columns: in full as CSV (GitHub renders it searchable), and as its
best rows on the page."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any, Callable

from tabulate import tabulate

NO_DATA = "_No measured rows in this run for this section._"
LONG = 60  # rows: a longer per-row table goes to CSV, its page keeps the best rows


def cell(value) -> str:
    """One table cell: on one line, its pipes escaped (GFM splits cells on unescaped pipes, even
    inside code spans)."""
    return " ".join(("" if value is None else str(value)).split()).replace("|", "\\|")


def table(rows, headers) -> str:
    if not rows:
        return NO_DATA
    return tabulate([[cell(v) for v in row] for row in rows], [cell(h) for h in headers], tablefmt="github",
                    disable_numparse=True)


@dataclass(frozen=True)
class Column:
    """A column as data: its header, its raw value of a row (the CSV's) and how the page shows it."""
    header: str
    value: Callable[[dict], Any]
    show: Callable[[Any], str] = lambda v: "" if v is None else str(v)  # noqa: E731


def field(name: str, show: Callable[[Any], str] | None = None, header: str | None = None) -> Column:
    """A column of one row field (dotted for nested ones: latency_us.p50), missing fields empty."""
    def value(row: dict):
        for part in name.split("."):
            row = row.get(part) if isinstance(row, dict) else None
        return row
    return Column(header or name, value, *([show] if show else []))


def table_of(rows: list[dict], columns: list[Column]) -> str:
    return table([[c.show(v) if (v := c.value(r)) is not None else "" for c in columns] for r in rows],
                 [c.header for c in columns])


def _raw(value):
    """A CSV value: floats to 7 significant digits (no 0.12000000000000001), lists joined."""
    if isinstance(value, float):
        return float(f"{value:.7g}")
    return "; ".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def csv_of(rows: list[dict], columns: list[Column]) -> str:
    """Every row with a header row; raw values (fractions, microseconds, bytes) so a sort is numeric."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.header for c in columns])
    for r in rows:
        writer.writerow([spreadsheet_safe(_raw(c.value(r))) for c in columns])
    return out.getvalue()


def spreadsheet_safe(value):
    """A text cell a spreadsheet would run as a formula (=, +, -, @ first) is quoted by a leading
    apostrophe; numbers are left as they are."""
    return f"'{value}" if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") else value
