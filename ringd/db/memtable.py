"""Memtable: the in-memory, mutable part of one keyspace's data.

A dict ``key -> row`` that every write merges into, with a running size that tells the engine
when to flush. The size estimates the memory the memtable really holds (the key and value
objects with their Python headers plus the dict entries, :data:`ENTRY_BYTES`), not just the
bytes written, so that ``memtable_flush_mb`` bounds the process's memory.

Every row is held *encoded*: the CBOR of ``Row.to_wire()`` (:func:`encode_wire`), which the
commit log record already carries. Bytes cost a fraction of the memory of a ``Row`` with its
dict and cells, the encoded size bounds ``max_row_bytes`` checks without walking the row, and
the garbage collector never visits them: a memtable of ``Row`` objects made every collection of
the older generations walk each row (a pause that grew with the memtable). A write to a key
already held merges without decoding when both rows are one cell of the same column (a plain
overwrite: the later timestamp wins, :func:`_overwrite`); otherwise the stored row is decoded,
merged and encoded again. :meth:`get` and :meth:`iter_sorted` hand out private ``Row`` objects.

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
_ONE_CELL = b"\xa1\x61c\xa1"  # {"c": {one cell}}: how encode_wire starts a one-cell row
_SMALL_UINTS = [bytes((n,)) for n in range(24)]
_sizeof = sys.getsizeof
#: memory of one new key beyond its key and value objects: its entries in ``rows``,
#: ``tokens`` and the list of keys not in the sorted view yet (amortised over growth) and the
#: token integer, measured with tracemalloc (tests/db/test_memtable.py checks the estimate)
ENTRY_BYTES = 148


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


_U64_AT = struct.Struct(">Q").unpack_from


def _overwrite(old: bytes, new: bytes) -> bytes | None:
    """The merge of two encoded rows without decoding them, when both are one cell of the same
    column with a 64-bit timestamp and no row tombstone (a plain overwrite, the common case):
    the one with the later timestamp. ``None`` when that does not apply (equal timestamps
    included: the tie-break needs the cells)."""
    # encode_wire's one-cell row: a1 61 63 a1 <name> 83 1b <8-byte timestamp> <value> <ldt>
    if new[:4] != _ONE_CELL:
        return None
    head = new[4]
    if 0x60 <= head < 0x78:  # a name of up to 23 bytes
        at = 5 + head - 0x60
    elif head == 0x78:
        at = 6 + new[5]
    else:
        return None
    if new[at : at + 2] != b"\x83\x1b" or old[: at + 2] != new[: at + 2]:
        return None
    mine = _U64_AT(old, at + 2)[0]
    theirs = _U64_AT(new, at + 2)[0]
    if theirs > mine:
        return new
    if theirs < mine:
        return old
    return None


class Memtable:
    __slots__ = ("rows", "bytes", "tokens", "_sorted", "_unsorted")

    def __init__(self) -> None:
        self.rows: dict[bytes, bytes] = {}
        self.bytes = 0
        self.tokens: dict[bytes, int] = {}
        self._sorted: list[tuple[int, bytes]] = []  # (token, key) of every key but _unsorted
        self._unsorted: list[bytes] = []  # keys that arrived since the sorted view was made

    def __len__(self) -> int:
        return len(self.rows)

    def put(self, key: bytes, update: Row, encoded: bytes | None) -> None:
        """Merge ``update`` into ``key``'s row. ``encoded`` is ``update.to_wire()`` as CBOR
        (``encode_wire(update)``), or ``None`` to have it encoded here."""
        if encoded is None:
            encoded = encode_wire(update)
        rows = self.rows
        old = rows.get(key)
        if old is None:
            rows[key] = encoded
            self._unsorted.append(key)
            self.bytes += _sizeof(key) + _sizeof(encoded) + ENTRY_BYTES
            return
        merged = _overwrite(old, encoded)
        if merged is None:
            row = decode_wire(old)
            row.merge_in(update)
            merged = encode_wire(row)
        rows[key] = merged
        self.bytes += _sizeof(merged) - _sizeof(old)

    def get(self, key: bytes) -> Row | None:
        """A private copy of ``key``'s row, or ``None``."""
        value = self.rows.get(key)
        return None if value is None else decode_wire(value)

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
            yield tok, key, decode_wire(rows[key])
            i += 1

    def cell_counts(self) -> tuple[int, int]:
        """Live and tombstone cells (a row tombstone counts as one), as an sstable counts them.
        Decodes every row: for ``tablestats``, not for anything on the write path."""
        live = tomb = 0
        for value in self.rows.values():
            row = decode_wire(value)
            for cell in row.cells.values():
                if cell[1] is None:
                    tomb += 1
                else:
                    live += 1
            if row.tombstone is not None:
                tomb += 1
        return live, tomb
