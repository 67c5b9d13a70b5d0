"""Memtable: the hand-rolled row encoding is exactly cbor2's, rows merge as they should, the
accounted size tracks real memory, and the sorted view takes in new keys without disturbing
scans of the old one."""

from __future__ import annotations

import os
import sys
import threading
import tracemalloc

import cbor2
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ringd.db import memtable as memtable_module
from ringd.db.cells import Cell, Row, RowTombstone
from ringd.db.memtable import ENTRY_BYTES, Memtable, decode_wire, encode_wire
from ringd.dht.murmur3 import token_for

ints = st.integers(-(2**70), 2**70)
cells = st.builds(Cell, ints, st.none() | st.binary(max_size=300), st.none() | ints).filter(
    lambda c: c.value is not None or c.ldt is not None
)
rows = st.builds(
    Row,
    st.dictionaries(st.text(max_size=30), cells, max_size=30),
    st.none() | st.builds(RowTombstone, ints, ints),
)


@given(rows)
def test_encode_wire_is_cbor2_of_to_wire(row: Row) -> None:
    data = encode_wire(row)
    assert data == cbor2.dumps(row.to_wire())
    assert decode_wire(data) == row == Row.from_wire(cbor2.loads(data))


# one-cell rows with microsecond timestamps, the shape a plain overwrite merges without decoding;
# few timestamps, so that ties (the tie-break decodes) come up, and names of every head size
one_cell_rows = st.builds(
    lambda name, ts, value, ldt: Row({name: Cell(ts, value, ldt)}),
    st.sampled_from(["v", "w", "x" * 23, "y" * 24, "\u0103" * 3, "z" * 300]),
    st.integers(2**40, 2**40 + 3) | st.sampled_from([2**64 - 1, 2**32 - 1, 5]),
    st.none() | st.sampled_from([b"a", b"b", b"\x83\x1b" * 20]),
    st.none() | st.integers(0, 2**40),
).filter(lambda r: all(c.value is not None or c.ldt is not None for c in r.cells.values()))


@given(st.lists(st.tuples(st.sampled_from([b"a", b"b"]), one_cell_rows | rows), max_size=8))
@example([(b"a", Row({"v": Cell(2**40, b"b")})), (b"a", Row({"v": Cell(2**40, b"a")}))])
@example([(b"a", Row({"v": Cell(2**40 + 1, b"a")})), (b"a", Row({"v": Cell(2**40, b"b")}))])
@example([(b"a", Row({"v": Cell(2**40, b"a")})), (b"a", Row({"w": Cell(2**40 + 1, b"b")}))])
def test_put_merges_like_row_merge(updates: list[tuple[bytes, Row]]) -> None:
    """Whether the stored row is decoded or not, the memtable holds the encoding of the merge."""
    mt = Memtable()
    want: dict[bytes, Row] = {}
    for key, update in updates:
        mt.put(key, update, encode_wire(update))
        want[key] = want[key].merge(update) if key in want else update.copy()
        assert mt.rows[key] == encode_wire(want[key])
    for key in (b"a", b"b"):
        got = mt.get(key)
        assert got == want.get(key)
        if got is not None:
            got.cells.clear()  # a private copy
            assert mt.get(key) == want[key]
    accounted = sum(sys.getsizeof(k) + sys.getsizeof(v) + ENTRY_BYTES for k, v in mt.rows.items())
    assert mt.bytes == accounted and len(mt) == len(want)
    assert [k for _t, k, _r in mt.iter_sorted()] == [k for _t, k in mt.sorted_keys()]


def test_a_plain_overwrite_merges_without_decoding(monkeypatch) -> None:
    """One cell of the same column written again: the later timestamp's encoding is kept as
    is; a tie, another column or a row tombstone decodes and merges."""
    decoded: list[bytes] = []
    real = memtable_module.decode_wire
    monkeypatch.setattr(
        memtable_module, "decode_wire", lambda data: decoded.append(data) or real(data)
    )
    mt = Memtable()
    t = 1_700_000_000_000_000
    first, later, older = (
        Row({"v": Cell(ts, v)}) for ts, v in ((t, b"a"), (t + 2, b"b"), (t, b"c"))
    )
    for row in (first, later, older):
        mt.put(b"k", row, encode_wire(row))
    assert decoded == [] and mt.rows[b"k"] == encode_wire(later)
    tie = Row({"v": Cell(t + 2, b"z")})
    other = Row({"w": Cell(t + 3, b"w")})
    deleted = Row({}, RowTombstone(t + 4, 1))
    for n, row in enumerate((tie, other, deleted), 1):
        mt.put(b"k", row, encode_wire(row))
        assert len(decoded) == n
    assert mt.rows[b"k"] == encode_wire(later.merge(tie).merge(other).merge(deleted))


@pytest.mark.parametrize(
    ("value_len", "columns", "rewrites"),
    [(10, 1, 0), (100, 1, 0), (1000, 1, 0), (20, 5, 0), (10, 1, 1), (20, 5, 2)],
)
def test_accounted_size_tracks_real_memory(value_len: int, columns: int, rewrites: int) -> None:
    """The size that decides a flush is within 0.7-1.5x of the memory the memtable really
    holds (tracemalloc), for new keys and rewritten ones (rows that grow)."""
    mt = Memtable()
    n = 20_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for round_ in range(1 + rewrites):
            for i in range(n):
                key = b"key%08d" % i
                # each round writes new columns, so rewritten rows grow
                ts = 1_700_000_000_000_000 + round_
                row = Row(
                    {f"c{c}-{round_}": Cell(ts, os.urandom(value_len)) for c in range(columns)}
                )
                mt.put(key, row, encode_wire(row))
                mt.tokens[key] = (1 << 62) + i
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert 0.7 <= mt.bytes / grown <= 1.5, (mt.bytes, grown)


@given(st.lists(st.lists(st.binary(max_size=12), max_size=40), max_size=6))
def test_the_sorted_view_merges_new_keys_and_leaves_old_views_alone(
    batches: list[list[bytes]],
) -> None:
    """Keys arrive between scans: each view is every key so far in (token, key) order, and a
    view handed out earlier (a scan still iterating it) is not changed by a later merge."""
    mt = Memtable()
    row = Row({"v": Cell(1, b"x", None)}, None)
    seen: set[bytes] = set()
    views: list[tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]] = []
    for batch in batches:
        for key in batch:
            mt.put(key, row, encode_wire(row))
            seen.add(key)
        view = mt.sorted_keys()
        want = sorted((token_for(k), k) for k in seen)
        assert view == want
        views.append((view, list(want)))
    for view, copy in views:
        assert view == copy
    assert mt.flush_order() == sorted((token_for(k), k) for k in seen)


def test_tokenize_in_a_thread_leaves_the_scan_nothing_to_hash(monkeypatch) -> None:
    """``tokenize`` (run by ``StorageEngine.prepare_scan`` in a worker thread) computes the
    tokens of the keys not in the view yet; the next ``sorted_keys`` in the event loop then
    hashes only the keys that arrived after it."""
    mt = Memtable()
    row = Row({"v": Cell(1, b"x", None)}, None)
    for i in range(1000):
        mt.put(b"k%d" % i, row, encode_wire(row))
    hashed: list[str] = []
    real = memtable_module._token
    monkeypatch.setattr(
        memtable_module,
        "_token",
        lambda key: hashed.append(threading.current_thread().name) or real(key),
    )
    worker = threading.Thread(target=mt.tokenize, args=(mt.untokenized(),), name="worker")
    worker.start()
    worker.join()
    mt.put(b"late", row, encode_wire(row))
    view = mt.sorted_keys()
    assert len(view) == 1001 and view == sorted(view)
    assert hashed.count("worker") == 1000
    assert hashed.count(threading.current_thread().name) == 1  # only b"late"
