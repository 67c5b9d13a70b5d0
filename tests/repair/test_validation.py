"""Validation against a real storage engine: trees of replicas with the same rows agree, through
flushes; one changed row shows as one leaf whose row diff names exactly that key."""

from __future__ import annotations

from pathlib import Path

import trio

from ringd.db.cells import Cell, Row, RowTombstone
from ringd.db.engine import EngineOptions, StorageEngine
from ringd.dht.murmur3 import token_for
from ringd.dht.tokens import Range
from ringd.repair.merkle import diff_rows
from ringd.repair.validation import build_tree, leaf_digests, rows_in


def row(value: bytes, ts: int = 10) -> Row:
    return Row({"v": Cell(ts, value, None)})


async def open_engine(path: Path) -> StorageEngine:
    return StorageEngine.open(path, EngineOptions(clock=lambda: 1_000_000.0))


async def test_equal_replicas_agree_and_one_difference_is_found(tmp_path: Path) -> None:
    a = await open_engine(tmp_path / "a")
    b = await open_engine(tmp_path / "b")
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await nursery.start(b.run)
        for i in range(500):
            key = b"key%d" % i
            await a.apply("ks", key, row(b"v%d" % i))
            await b.apply("ks", key, row(b"v%d" % i))
        await a.flush()  # one replica on disk, the other in memory: same content
        rng = Range(-(1 << 62), 1 << 62)
        assert build_tree(a, "ks", rng, 6).differences(build_tree(b, "ks", rng, 6)) == []

        await b.apply("ks", b"key7", Row({}, RowTombstone(11, 1_000_000)))  # a delete A missed
        full = Range.full()
        ta, tb = build_tree(a, "ks", full, 6), build_tree(b, "ks", full, 6)
        (leaf,) = ta.differences(tb)
        assert token_for(b"key7") in ta.leaf_range(leaf)
        send, fetch = diff_rows(
            leaf_digests(a, "ks", ta.leaf_range(leaf)), leaf_digests(b, "ks", tb.leaf_range(leaf))
        )
        assert send == fetch == [b"key7"]
        nursery.cancel_scope.cancel()
    await a.close()
    await b.close()


async def test_wrapping_ranges_see_both_ends(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path / "e")
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        keys = [b"k%d" % i for i in range(200)]
        for key in keys:
            await engine.apply("ks", key, row(b"x"))
        wrapping = Range(1 << 62, -(1 << 62))
        inside = {k for k in keys if token_for(k) in wrapping}
        assert 0 < len(inside) < len(keys)
        assert {k for _, k, _ in rows_in(engine, "ks", wrapping)} == inside
        assert {k for _, k, _ in rows_in(engine, "ks", Range.full())} == set(keys)
        assert build_tree(engine, "ks", wrapping, 4).rows == len(inside)
        nursery.cancel_scope.cancel()
    await engine.close()
