"""Tables that fit a narrow terminal: identifiers stay whole on one line, other cells fold.

Rich shrinks a table that is wider than the console by wrapping its cells. Ids (host ids,
addresses, keyspace names) must never be cut or split, so their columns are ``no_wrap`` with a
``min_width`` of their longest value; every other column may wrap at spaces and fold long words.
Columns are separated by one space without borders, as nodetool prints them, which leaves the
most room for the ids. Cells are ``Text``, never markup: what a node returns is shown as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from rich.table import Table
from rich.text import Text


class Col(NamedTuple):
    header: str
    whole: bool = False  # an id: never wrapped, folded or cut
    justify: str = "left"
    min_width: int | None = None  # for a column that folds: keep at least this much


def compact_table(columns: Sequence[Col], rows: Sequence[Sequence[Any]]) -> Table:
    """A borderless table whose ``whole`` columns keep every value on one line."""
    t = Table(
        box=None,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        header_style="bold",
    )
    cells = [["" if v is None else str(v) for v in r] for r in rows]
    for i, col in enumerate(columns):
        if col.whole:
            longest = max([len(col.header), *(len(r[i]) for r in cells)])
            t.add_column(
                col.header,
                no_wrap=True,
                overflow="ignore",
                min_width=longest,
                justify=col.justify,  # type: ignore[arg-type]
            )
        else:
            t.add_column(
                col.header,
                overflow="fold",
                justify=col.justify,  # type: ignore[arg-type]
                min_width=col.min_width,
            )
    for r in cells:
        t.add_row(*(Text(v, justify=c.justify) for v, c in zip(r, columns, strict=True)))  # type: ignore[arg-type]
    return t
