"""Cell and row merge: commutative, associative, idempotent, with the tie-break of ringd/db/cells.py."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ringd.db.cells import Cell, Row, RowTombstone, merge_cells

timestamps = st.integers(0, 5)  # small range: ties are common
cells = st.builds(
    Cell,
    timestamps,
    st.none() | st.binary(max_size=3),
    st.none() | st.integers(0, 5),
).filter(lambda c: c.value is not None or c.ldt is not None)
rows = st.builds(
    Row,
    st.dictionaries(st.sampled_from("abc"), cells, max_size=3),
    st.none() | st.builds(RowTombstone, timestamps, st.integers(0, 5)),
)


@given(cells, cells)
def test_cell_merge_commutes(a: Cell, b: Cell) -> None:
    assert merge_cells(a, b) == merge_cells(b, a)


@given(cells, cells, cells)
def test_cell_merge_associates(a: Cell, b: Cell, c: Cell) -> None:
    assert merge_cells(merge_cells(a, b), c) == merge_cells(a, merge_cells(b, c))


@given(cells)
def test_cell_merge_idempotent(a: Cell) -> None:
    assert merge_cells(a, a) == a


@given(cells, cells)
def test_tie_break(a: Cell, b: Cell) -> None:
    winner = merge_cells(a, b)
    if a.timestamp != b.timestamp:
        assert winner.timestamp == max(a.timestamp, b.timestamp)
    elif a.is_tombstone != b.is_tombstone:
        assert winner.is_tombstone  # a tombstone beats a live cell on equal timestamps
    elif not a.is_tombstone and a.value != b.value:
        assert winner.value == max(a.value or b"", b.value or b"")  # larger value bytes win


@given(rows, rows)
def test_row_merge_commutes(a: Row, b: Row) -> None:
    assert a.merge(b) == b.merge(a)


@given(rows, rows, rows)
def test_row_merge_associates(a: Row, b: Row, c: Row) -> None:
    assert a.merge(b).merge(c) == a.merge(b.merge(c))


@given(rows)
def test_row_merge_idempotent(a: Row) -> None:
    assert a.merge(a) == a


@given(rows, rows, st.integers(0, 10))
def test_reads_see_the_same_whatever_the_order(a: Row, b: Row, now: int) -> None:
    assert a.merge(b).live_columns(now) == b.merge(a).live_columns(now)
    assert a.merge(b).normalized().live_columns(now) == a.merge(b).live_columns(now)


def test_row_tombstone_shadows_older_and_equal_cells_only() -> None:
    row = Row(
        {"old": Cell(5, b"x"), "tie": Cell(6, b"y"), "new": Cell(7, b"z")}, RowTombstone(6, 100)
    )
    assert row.live_columns(0) == {"new": b"z"}


def test_concurrent_writes_to_different_columns_both_survive() -> None:
    a = Row({"name": Cell(10, b"Alice")})
    b = Row({"email": Cell(11, b"a@example.com")})
    assert a.merge(b).live_columns(0) == {"name": b"Alice", "email": b"a@example.com"}


def test_expired_ttl_cell_reads_as_absent_and_purges_to_a_tombstone() -> None:
    row = Row({"c": Cell(1, b"v", 50)})
    assert row.live_columns(49) == {"c": b"v"}
    assert row.live_columns(50) == {}
    purged = row.purged(now=60, gc_before=0)
    assert purged is not None and purged.cells["c"] == Cell(1, None, 50)
    assert row.purged(now=60, gc_before=51) is None


@given(rows)
def test_wire_round_trip(a: Row) -> None:
    assert Row.from_wire(a.to_wire()) == a
