"""Compaction building blocks: merging streams, purge rules, size-tiered buckets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ringd.db.cells import Cell, Row, RowTombstone
from ringd.db.compaction import (
    estimate_pending,
    merge_rows,
    pick_compaction,
    purge_row,
    size_tiered_buckets,
)

MB = 1024 * 1024

streams = st.lists(
    st.lists(
        st.tuples(st.integers(-5, 5), st.sampled_from([b"a", b"b", b"c"]), st.integers(0, 9)),
        max_size=8,
    ),
    max_size=4,
)


@given(streams)
def test_merge_rows_is_sorted_and_merges_equal_keys(
    raw: list[list[tuple[int, bytes, int]]],
) -> None:
    sources = []
    expected: dict[tuple[int, bytes], Row] = {}
    for stream in raw:
        items = {}
        for tok, key, ts in stream:
            items[(tok, key)] = ts
        rows = []
        for (tok, key), ts in sorted(items.items()):
            rows.append((tok, key, Row({"c": Cell(ts, b"%d" % ts)})))
            prev = expected.get((tok, key))
            expected[(tok, key)] = (
                Row({"c": Cell(ts, b"%d" % ts)})
                if prev is None
                else prev.merge(Row({"c": Cell(ts, b"%d" % ts)}))
            )
        sources.append(iter(rows))
    merged = list(merge_rows(sources))
    assert [(t, k) for t, k, _ in merged] == sorted(expected)
    assert {(t, k): r for t, k, r in merged} == expected


def test_purge_row_respects_the_overlap_bound() -> None:
    row = Row({"a": Cell(5, None, 10), "b": Cell(6, b"v", 12)}, RowTombstone(4, 10))
    # gc_before 11: both tombstones are old enough; the TTL cell (expired at 12 <= now) turns
    # into a tombstone that is not yet old enough to drop
    assert purge_row(row, 20, 11, None) == Row({"b": Cell(6, None, 12)})
    # data as old as timestamp 5 may exist elsewhere: the cell tombstone at 5 must stay (it may
    # shadow that data); the row tombstone at 4 cannot shadow anything that new, so it goes
    assert purge_row(row, 20, 11, 5) == Row({"a": Cell(5, None, 10), "b": Cell(6, None, 12)})
    assert purge_row(row, 20, 11, 4) == Row(
        {"a": Cell(5, None, 10), "b": Cell(6, None, 12)}, RowTombstone(4, 10)
    )
    assert purge_row(row, 20, 11, 6) == Row({"b": Cell(6, None, 12)})
    assert purge_row(Row({"a": Cell(1, None, 1)}), 20, 11, None) is None


def test_size_tiered_buckets_group_similar_sizes() -> None:
    sizes = [60 * MB, 70 * MB, 65 * MB, 200 * MB, 210 * MB, 1, 2, 3]
    buckets = size_tiered_buckets((s, s) for s in sizes)
    assert sorted(sorted(x for _s, x in b) for b in buckets) == [
        [1, 2, 3],
        [60 * MB, 65 * MB, 70 * MB],
        [200 * MB, 210 * MB],
    ]


def test_pick_compaction_prefers_the_smallest_full_bucket() -> None:
    small = [(10 + i, f"s{i}") for i in range(5)]
    big = [(100 * MB + i, f"b{i}") for i in range(4)]
    assert pick_compaction(small + big, 4, 32) == [f"s{i}" for i in range(5)]
    assert pick_compaction(small + big, 4, 3) == ["s0", "s1", "s2"]
    assert pick_compaction(small[:3], 4, 32) == []
    assert estimate_pending(small + big, 4, 32) == 2
    assert estimate_pending(small + big, 4, 2) == 5
