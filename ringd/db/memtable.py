"""Memtable: the in-memory, mutable part of one keyspace's data.

A dict ``key -> Row`` that every write merges into (:meth:`Row.merge_in`), with a running size
(the bytes of the commit-log payloads applied) that tells the engine when to flush. Tokens are
computed lazily, only when a sorted view is needed (flush, scan), and cached: Murmur3 in pure
Python costs microseconds per key, which the write path should not pay.

Once the engine switches a memtable out for flushing it is never written again, so a worker
thread may read it while the event loop keeps serving reads from it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator

from ringd.db.cells import Row
from ringd.dht.murmur3 import token_for


class Memtable:
    __slots__ = ("rows", "bytes", "tokens", "_sorted")

    def __init__(self) -> None:
        self.rows: dict[bytes, Row] = {}
        self.bytes = 0
        self.tokens: dict[bytes, int] = {}
        self._sorted: list[tuple[int, bytes]] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def put(self, key: bytes, update: Row, size: int) -> None:
        row = self.rows.get(key)
        if row is None:
            self.rows[key] = Row(dict(update.cells), update.tombstone)
            self._sorted = None
        else:
            row.merge_in(update)
        self.bytes += size

    def get(self, key: bytes) -> Row | None:
        return self.rows.get(key)

    def sorted_keys(self) -> list[tuple[int, bytes]]:
        """All ``(token, key)`` pairs in order (cached until a new key arrives)."""
        view = self._sorted
        if view is None:
            tokens = self.tokens
            pairs = []
            for key in list(self.rows):
                tok = tokens.get(key)
                if tok is None:
                    tok = tokens[key] = token_for(key)
                pairs.append((tok, key))
            pairs.sort()
            view = self._sorted = pairs
        return view

    def iter_sorted(
        self, after: tuple[int, bytes] | None = None, end_token: int | None = None
    ) -> Iterator[tuple[int, bytes, Row]]:
        """``(token, key, row)`` in order, strictly after ``after``, up to ``end_token``. Rows
        are the live objects: callers copy before handing them out."""
        view = self.sorted_keys()
        i = 0 if after is None else bisect_right(view, after)
        rows = self.rows
        n = len(view)
        while i < n:
            tok, key = view[i]
            if end_token is not None and tok > end_token:
                return
            yield tok, key, rows[key]
            i += 1
