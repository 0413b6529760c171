"""A plain-text table that fits the terminal: kubectl's look, columns kept by importance.

Why not rich's ``Table``: short of space it shrinks every column with "…", so "$5.67" became
"$…" and "Placed" "Pla…" at 80 columns. Here no cell is ever cut. With a width, the columns
that matter most stay on the row (those marked ``keep`` always do); the others fold into
indented lines under the row, so everything is still there, only taller. Without a width
(``-o wide``, or output that is not a terminal) every column is on one line, at its natural
width, and the output depends on nothing but the data: stable for scripts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Column", "render"]

GAP = "   "  # between columns, as kubectl prints them
FOLD_INDENT = "    "
FOLD_SEPARATOR = " · "
EMPTY = ("", "-")  # cells a fold line leaves out: nothing to say


@dataclass(frozen=True)
class Column:
    header: str
    rank: int = 0
    """Importance: with too little room, higher ranks fold first (ties: the later column)."""
    keep: bool = False
    """Never folded: the row's name, its phase, its money."""
    right: bool = False
    """Right-aligned (numbers)."""
    fold: str = "{}"
    """How the cell reads on a fold line, where no header names it (e.g. ``"tier {}"``)."""


def render(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None) -> str:
    """The table as text (no trailing newline); ``width=None`` puts every column on the row."""
    widths = [max([len(c.header)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    on_row = _columns_that_fit(columns, widths, width)
    folded = sorted(set(range(len(columns))) - on_row, key=lambda i: (columns[i].rank, i))
    lines = [_line([c.header for c in columns], columns, widths, on_row)]
    for row in rows:
        lines.append(_line(row, columns, widths, on_row))
        items = [columns[i].fold.format(row[i]) for i in folded if row[i] not in EMPTY]
        lines += _fold(items, width)
    return "\n".join(lines)


def _columns_that_fit(columns: Sequence[Column], widths: list[int], width: int | None) -> set[int]:
    everything = set(range(len(columns)))
    if width is None:
        return everything
    chosen = {i for i, c in enumerate(columns) if c.keep}
    used = sum(widths[i] for i in chosen) + len(GAP) * (len(chosen) - 1)
    for i in sorted(everything - chosen, key=lambda i: (columns[i].rank, i)):
        if used + len(GAP) + widths[i] > width:
            break  # importance stays monotonic: no less important column jumps the queue
        chosen.add(i)
        used += len(GAP) + widths[i]
    return chosen


def _line(cells: Sequence[str], columns: Sequence[Column], widths: list[int], on: set[int]) -> str:
    parts = [
        cells[i].rjust(widths[i]) if c.right else cells[i].ljust(widths[i])
        for i, c in enumerate(columns)
        if i in on
    ]
    return GAP.join(parts).rstrip()


def _fold(items: list[str], width: int | None) -> list[str]:
    """Items packed into indented lines of at most ``width`` (one longer item gets its own)."""
    lines: list[str] = []
    current = ""
    for item in items:
        candidate = f"{current}{FOLD_SEPARATOR}{item}" if current else item
        if current and width is not None and len(FOLD_INDENT + candidate) > width:
            lines.append(FOLD_INDENT + current)
            current = item
        else:
            current = candidate
    if current:
        lines.append(FOLD_INDENT + current)
    return lines
