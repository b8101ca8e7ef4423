"""A rendered-format-neutral table: the leaderboard builds these, the Markdown, CSV, HTML and terminal writers print them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TableSection:
    """One leaderboard group: a table of methods x columns with its heading, caption and notes.

    `rows[i][j]` is the cell text as shown (e.g. "80.6 ± 1.2 (n=3)"); `sort_values[i][j]` is the number
    a column sorts by (None where the cell has none, e.g. "–" or a method name).
    """

    title: str
    caption: str
    columns: list[str]
    rows: list[list[str]]
    sort_values: list[list[float | None]]
    notes: list[str] = field(default_factory=list)
    # per row: (label, path) of each saved student's model card, linked from the row's first cell in HTML
    links: list[list[tuple[str, str]]] = field(default_factory=list)
