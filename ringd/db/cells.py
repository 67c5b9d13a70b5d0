"""Cells, rows and the merge rules every replica follows (docs/architecture.md).

A *cell* is one column's value at one write: a timestamp in microseconds, the value as encoded
bytes (``None`` for a tombstone) and a local deletion time in seconds (``ldt``): when the
tombstone was written, or when a TTL cell expires, or ``None`` for a plain live cell.

Last write wins per cell. The order is total, so merging is commutative, associative and
idempotent: the higher timestamp wins; on equal timestamps a tombstone beats a live cell; then
the larger value by its bytes; then the later local deletion time (never-expiring counts as
latest).

A *row* is a map of column name to cell plus an optional row tombstone ``(timestamp, ldt)``,
which shadows every cell whose timestamp is not newer than it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import NamedTuple

import cbor2

_NEVER = 1 << 62


class Cell(NamedTuple):
    timestamp: int
    value: bytes | None
    ldt: int | None = None

    @property
    def is_tombstone(self) -> bool:
        return self.value is None

    def order_key(self) -> tuple[int, int, bytes, int]:
        return (
            self.timestamp,
            1 if self.value is None else 0,
            self.value or b"",
            _NEVER if self.ldt is None else self.ldt,
        )

    def is_live(self, now: int) -> bool:
        """True if the cell holds a value at wall time ``now`` (seconds)."""
        return self.value is not None and (self.ldt is None or self.ldt > now)

    def deletion_time(self) -> int | None:
        """When this cell became (or becomes) dead: the tombstone's or the TTL's time."""
        return self.ldt


class RowTombstone(NamedTuple):
    timestamp: int
    ldt: int


def merge_cells(a: Cell, b: Cell) -> Cell:
    """The winner of two versions of one cell by last-write-wins with the tie-break rules."""
    if a.timestamp != b.timestamp:
        return a if a.timestamp > b.timestamp else b
    return a if a.order_key() >= b.order_key() else b


def merge_tombstones(a: RowTombstone | None, b: RowTombstone | None) -> RowTombstone | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a >= b else b


@dataclass(slots=True)
class Row:
    """All that is known of one row: its cells and row tombstone, not yet resolved for reading."""

    cells: dict[str, Cell] = field(default_factory=dict)
    tombstone: RowTombstone | None = None

    def copy(self) -> Row:
        return Row(dict(self.cells), self.tombstone)

    def merge(self, other: Row) -> Row:
        """A new row holding the merge of this row and ``other``; neither is changed."""
        cells = dict(self.cells)
        for name, cell in other.cells.items():
            mine = cells.get(name)
            cells[name] = cell if mine is None else merge_cells(mine, cell)
        return Row(cells, merge_tombstones(self.tombstone, other.tombstone))

    def merge_in(self, other: Row) -> None:
        """Merge ``other`` into this row in place."""
        cells = self.cells
        for name, cell in other.cells.items():
            mine = cells.get(name)
            cells[name] = cell if mine is None else merge_cells(mine, cell)
        if other.tombstone is not None:
            self.tombstone = merge_tombstones(self.tombstone, other.tombstone)

    def normalized(self) -> Row:
        """The same row without cells its row tombstone shadows (reads see no difference)."""
        tomb = self.tombstone
        if tomb is None:
            return self
        cells = {n: c for n, c in self.cells.items() if c.timestamp > tomb.timestamp}
        return Row(cells, tomb)

    def live_columns(self, now: int) -> dict[str, bytes]:
        """The columns a read returns at wall time ``now`` (seconds): live, unshadowed values."""
        tomb_ts = self.tombstone.timestamp if self.tombstone is not None else None
        out: dict[str, bytes] = {}
        for name, cell in self.cells.items():
            if tomb_ts is not None and cell.timestamp <= tomb_ts:
                continue
            if cell.is_live(now):
                out[name] = cell.value  # type: ignore[assignment]
        return out

    def purged(self, now: int, gc_before: int) -> Row | None:
        """The row as compaction keeps it at ``now``: shadowed cells dropped, expired TTL cells
        turned into tombstones, and tombstones whose deletion time is before ``gc_before``
        dropped. ``None`` if nothing is left."""
        row = self.normalized()
        cells: dict[str, Cell] = {}
        for name, cell in row.cells.items():
            if cell.value is not None and cell.ldt is not None and cell.ldt <= now:
                cell = Cell(cell.timestamp, None, cell.ldt)
            if cell.value is None and cell.ldt is not None and cell.ldt < gc_before:
                continue
            cells[name] = cell
        tomb = row.tombstone
        if tomb is not None and tomb.ldt < gc_before:
            tomb = None
        if not cells and tomb is None:
            return None
        return Row(cells, tomb)

    def max_timestamp(self) -> int:
        ts = [c.timestamp for c in self.cells.values()]
        if self.tombstone is not None:
            ts.append(self.tombstone.timestamp)
        return max(ts, default=0)

    def to_wire(self) -> dict[str, object]:
        """The full row as peers exchange it: cells as ``[timestamp, value, ldt]``."""
        out: dict[str, object] = {
            "c": {n: [c.timestamp, c.value, c.ldt] for n, c in self.cells.items()}
        }
        if self.tombstone is not None:
            out["t"] = [self.tombstone.timestamp, self.tombstone.ldt]
        return out

    @classmethod
    def from_wire(cls, data: object) -> Row:
        """Parse :meth:`to_wire` output (as a CBOR decoder gives it: plain dicts, lists, bytes),
        raising ``ValueError`` on anything malformed."""
        if type(data) is not dict:
            raise ValueError("row must be a map")
        cells_in = data.get("c", {})
        if type(cells_in) is not dict:
            raise ValueError("row cells must be a map")
        cells: dict[str, Cell] = {}
        for name, raw in cells_in.items():
            if type(name) is not str or type(raw) is not list or len(raw) != 3:
                raise ValueError("cell must be [timestamp, value, ldt]")
            ts, value, ldt = raw
            if type(ts) is not int or not (value is None or type(value) is bytes):
                raise ValueError("cell timestamp must be an integer and value bytes or null")
            if not (ldt is None or type(ldt) is int):
                raise ValueError("cell ldt must be an integer or null")
            if value is None and ldt is None:
                raise ValueError("a tombstone cell needs a deletion time")
            cells[name] = Cell(ts, value, ldt)
        tomb = None
        raw_t = data.get("t")
        if raw_t is not None:
            if not (
                isinstance(raw_t, list) and len(raw_t) == 2 and all(type(x) is int for x in raw_t)
            ):
                raise ValueError("row tombstone must be [timestamp, ldt]")
            tomb = RowTombstone(raw_t[0], raw_t[1])
        return cls(cells, tomb)


def row_digest(row: Row | None) -> bytes:
    """A digest of a replica's row that equal rows share on every replica (b"" for no row):
    digest reads and Merkle-tree validation compare these."""
    if row is None:
        return b""
    wire = row.normalized().to_wire()
    return hashlib.blake2b(cbor2.dumps(wire, canonical=True), digest_size=16).digest()
