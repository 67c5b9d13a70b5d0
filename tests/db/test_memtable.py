"""Memtable: the hand-rolled row encoding is exactly cbor2's, and rows merge as they should."""

from __future__ import annotations

import cbor2
from hypothesis import given
from hypothesis import strategies as st

from ringd.db.cells import Cell, Row, RowTombstone
from ringd.db.memtable import Memtable, decode_wire, encode_wire

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


@given(st.lists(st.tuples(st.sampled_from([b"a", b"b"]), rows), max_size=6))
def test_put_merges_like_row_merge(updates: list[tuple[bytes, Row]]) -> None:
    mt = Memtable()
    want: dict[bytes, Row] = {}
    for key, update in updates:
        mt.put(key, update, encode_wire(update), 10)
        want[key] = want[key].merge(update) if key in want else update.copy()
    for key in (b"a", b"b"):
        got = mt.get(key)
        assert got == want.get(key)
        if got is not None:
            got.cells.clear()  # a private copy
            assert mt.get(key) == want[key]
    assert mt.bytes == 10 * len(updates) and len(mt) == len(want)
    assert [k for _t, k, _r in mt.iter_sorted()] == [k for _t, k in mt.sorted_keys()]
