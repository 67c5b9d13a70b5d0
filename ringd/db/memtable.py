"""Memtable: the in-memory, mutable part of one keyspace's data.

A dict ``key -> row`` that every write merges into, with a running size that tells the engine
when to flush. The size estimates the memory the memtable really holds (:func:`value_size`,
:data:`ENTRY_BYTES`): the key and value objects with their Python headers plus the dict entries,
not just the bytes written, so that ``memtable_flush_mb`` bounds the process's memory.

A key written once holds the row *encoded*: the CBOR of ``Row.to_wire()`` the commit log record
already carries. Bytes cost a fraction of the memory of a ``Row`` with its dict and cells, and
the garbage collector never has to visit them, which keeps the write path cheap. The second
write to a key decodes it into a ``Row`` and merges in place from then on (:meth:`Row.merge_in`).
:meth:`get` and :meth:`iter_sorted` always hand out private ``Row`` objects.

Tokens are computed lazily, only when a sorted view is needed (flush, scan), and cached:
Murmur3 in pure Python costs microseconds per key, which the write path should not pay. The
sorted view is kept between scans: keys that arrive after it wait in a list and are merged in
by the next scan (a sort of the new keys and one linear merge, into a new list so that a scan
still iterating the old view is undisturbed). The tokens of those keys can be computed in a
worker thread first (:meth:`Memtable.tokenize`, ``StorageEngine.prepare_scan``), so that a
background scan of many new keys does not hold up the event loop for milliseconds per
thousand keys.

Once the engine switches a memtable out for flushing it is never written again, so a worker
thread may read it while the event loop keeps serving reads from it.
"""

from __future__ import annotations

import struct
import sys
from bisect import bisect_right
from collections.abc import Iterable, Iterator

import cbor2

from ringd.db.cells import Cell, Row, RowTombstone
from ringd.dht.murmur3 import token_for

_loads = cbor2.loads
_dumps = cbor2.dumps
#: the uncached function: a flush computes each key's token once, so an LRU cache only churns
_token = getattr(token_for, "__wrapped__", token_for)

_TEXT_HEADS: dict[str, bytes] = {}
_U64 = struct.Struct(">BQ")
_SMALL_UINTS = [bytes((n,)) for n in range(24)]
_sizeof = sys.getsizeof
#: memory of one new key beyond its key and value objects: its entries in ``rows``,
#: ``tokens`` and the list of keys not in the sorted view yet (amortised over growth) and the
#: token integer, measured with tracemalloc (tests/db/test_memtable.py checks the estimate)
ENTRY_BYTES = 148
_ROW_BYTES = _sizeof(Row({}, None)) + _sizeof({})
_CELL_BYTES = _sizeof(Cell(0, None, None)) + 36  # the tuple, its timestamp, a dict entry


def _uint(n: int) -> bytes:
    """CBOR of an integer, in its shortest form (as cbor2 writes it)."""
    if 0x100000000 <= n < 0x10000000000000000:  # microsecond timestamps
        return _U64.pack(0x1B, n)
    if n >= 0:
        if n < 24:
            return _SMALL_UINTS[n]
        major = 0
    else:
        n = -1 - n
        major = 0x20
    if n < 24:
        return bytes((major | n,))
    if n < 0x100:
        return bytes((major | 24, n))
    if n < 0x10000:
        return bytes((major | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((major | 26,)) + n.to_bytes(4, "big")
    if n < 0x10000000000000000:
        return bytes((major | 27,)) + n.to_bytes(8, "big")
    return _dumps(n if major == 0 else -1 - n)


def _bytes_item(b: bytes) -> bytes:
    n = len(b)
    if n < 24:
        return bytes((0x40 | n,)) + b
    return _dumps(b)


def _text_item(name: str) -> bytes:
    enc = _TEXT_HEADS.get(name)
    if enc is None:
        enc = _dumps(name)
        if len(_TEXT_HEADS) < 4096:
            _TEXT_HEADS[name] = enc
    return enc


def encode_wire(row: Row) -> bytes:
    """``cbor2.dumps(row.to_wire())``, byte for byte, without building the intermediate dicts
    (this runs once per write)."""
    cells = row.cells
    n = len(cells)
    if n == 1 and row.tombstone is None:  # the common case, in one go
        for name, (ts, value, ldt) in cells.items():
            return b"".join(
                (
                    b"\xa1\x61c\xa1",
                    _text_item(name),
                    b"\x83",
                    _uint(ts),
                    b"\xf6" if value is None else _bytes_item(value),
                    b"\xf6" if ldt is None else _uint(ldt),
                )
            )
    parts = [b"\xa1\x61c" if row.tombstone is None else b"\xa2\x61c"]
    parts.append(bytes((0xA0 | n,)) if n < 24 else _map_head(n))
    for name, (ts, value, ldt) in cells.items():
        parts.append(_text_item(name))
        parts.append(b"\x83")
        parts.append(_uint(ts))
        parts.append(b"\xf6" if value is None else _bytes_item(value))
        parts.append(b"\xf6" if ldt is None else _uint(ldt))
    t = row.tombstone
    if t is not None:
        parts.append(b"\x61t\x82")
        parts.append(_uint(t[0]))
        parts.append(_uint(t[1]))
    return b"".join(parts)


_INT64 = 1 << 64


def wire_bound(row: Row) -> int:
    """At least ``len(encode_wire(row))``, without encoding it (a size check's cheap bound):
    every head and integer counted at its largest 64-bit size."""
    size = 33  # the row's map head, "c", the cells' map head, "t" and the tombstone's list
    for name, (ts, value, ldt) in row.cells.items():
        size += len(_text_item(name)) + 28
        if value is not None:
            size += len(value)
        if not -_INT64 <= ts < _INT64:
            size += len(_uint(ts))
        if ldt is not None and not -_INT64 <= ldt < _INT64:
            size += len(_uint(ldt))
    t = row.tombstone
    if t is not None:
        for n in t:
            if not -_INT64 <= n < _INT64:
                size += len(_uint(n))
    return size


def _map_head(n: int) -> bytes:
    head = _uint(n)
    return bytes((head[0] | 0xA0,)) + head[1:]


def decode_wire(data: bytes) -> Row:
    """A ``Row`` from the CBOR of :meth:`Row.to_wire` that this process encoded itself (so no
    validation beyond what decoding does)."""
    wire = _loads(data)
    cells = {name: Cell(c[0], c[1], c[2]) for name, c in wire["c"].items()}
    t = wire.get("t")
    return Row(cells, None if t is None else RowTombstone(t[0], t[1]))


def private_row(value: Row | bytes) -> Row:
    """A ``Row`` the caller may keep and change, from a stored memtable value."""
    if type(value) is bytes:
        return decode_wire(value)
    return Row(dict(value.cells), value.tombstone)  # type: ignore[union-attr]


def value_size(value: Row | bytes) -> int:
    """Estimated memory of one stored value: the bytes object, or the ``Row`` with its dict and
    cells."""
    if type(value) is bytes:
        return _sizeof(value)
    row: Row = value  # type: ignore[assignment]
    size = _ROW_BYTES
    for name, cell in row.cells.items():
        size += _CELL_BYTES + _sizeof(name)
        if cell.value is not None:
            size += _sizeof(cell.value)
    return size


class Memtable:
    __slots__ = ("rows", "bytes", "tokens", "_sorted", "_unsorted")

    def __init__(self) -> None:
        self.rows: dict[bytes, Row | bytes] = {}
        self.bytes = 0
        self.tokens: dict[bytes, int] = {}
        self._sorted: list[tuple[int, bytes]] = []  # (token, key) of every key but _unsorted
        self._unsorted: list[bytes] = []  # keys that arrived since the sorted view was made

    def __len__(self) -> int:
        return len(self.rows)

    def put(self, key: bytes, update: Row, encoded: bytes | None) -> None:
        """Merge ``update`` into ``key``'s row. ``encoded`` is ``update.to_wire()`` as CBOR
        (kept as is when the key is new) or ``None``."""
        rows = self.rows
        old = rows.get(key)
        if old is None:
            value = encoded if encoded is not None else Row(dict(update.cells), update.tombstone)
            rows[key] = value
            self._unsorted.append(key)
            self.bytes += _sizeof(key) + value_size(value) + ENTRY_BYTES
        elif type(old) is bytes:
            row = decode_wire(old)
            row.merge_in(update)
            rows[key] = row
            self.bytes += value_size(row) - _sizeof(old)
        else:
            before = value_size(old)
            old.merge_in(update)  # type: ignore[union-attr]
            self.bytes += value_size(old) - before

    def get(self, key: bytes) -> Row | None:
        """A private copy of ``key``'s row, or ``None``."""
        value = self.rows.get(key)
        return None if value is None else private_row(value)

    def sorted_keys(self) -> list[tuple[int, bytes]]:
        """All ``(token, key)`` pairs in order. Keys that arrived since the last call are
        sorted and merged into a new list; the list returned before is left as it was."""
        new = self._unsorted
        if not new:
            return self._sorted
        self._unsorted = []
        pairs = self._in_order(new)
        if self._sorted:
            pairs = self._sorted + pairs
            pairs.sort()  # two sorted runs: one linear merge
        self._sorted = pairs
        return pairs

    def tokenize(self, keys: list[bytes]) -> None:
        """Compute and cache the tokens of ``keys`` (a copy of :meth:`untokenized`); safe in a
        worker thread while the event loop writes (it only adds entries to ``tokens``)."""
        tokens = self.tokens
        for key in keys:
            if key not in tokens:
                tokens[key] = _token(key)

    def untokenized(self) -> list[bytes]:
        """A copy of the keys not in the sorted view yet (some may have tokens already)."""
        return self._unsorted[:]

    def flush_order(self) -> list[tuple[int, bytes]]:
        """All ``(token, key)`` pairs in order, computed without caching (a flush needs them
        once; the memtable is dropped after it). Runs in a worker thread on a memtable that is
        no longer written, from ``rows`` alone: a scan in the event loop may be merging the
        sorted view meanwhile."""
        return self._in_order(self.rows)

    def _in_order(self, keys: Iterable[bytes]) -> list[tuple[int, bytes]]:
        """``(token, key)`` of ``keys``, sorted; tokens computed once and cached."""
        tokens = self.tokens
        pairs = []
        for key in keys:
            tok = tokens.get(key)
            if tok is None:
                tok = tokens[key] = _token(key)
            pairs.append((tok, key))
        pairs.sort()
        return pairs

    def iter_sorted(
        self, after: tuple[int, bytes] | None = None, end_token: int | None = None
    ) -> Iterator[tuple[int, bytes, Row]]:
        """``(token, key, row)`` in order, strictly after ``after``, up to ``end_token``; each
        row is a private copy."""
        view = self.sorted_keys()
        i = 0 if after is None else bisect_right(view, after)
        rows = self.rows
        n = len(view)
        while i < n:
            tok, key = view[i]
            if end_token is not None and tok > end_token:
                return
            yield tok, key, private_row(rows[key])
            i += 1

    def cell_counts(self) -> tuple[int, int]:
        """Live and tombstone cells (a row tombstone counts as one), as an sstable counts them.
        Decodes every row: for ``tablestats``, not for anything on the write path."""
        live = tomb = 0
        for value in self.rows.values():
            row = private_row(value)
            for cell in row.cells.values():
                if cell[1] is None:
                    tomb += 1
                else:
                    live += 1
            if row.tombstone is not None:
                tomb += 1
        return live, tomb
