"""Repair of one range among three replicas (real storage engines, in-process): previews change
nothing, only differing rows move, tombstones travel, and a second repair finds nothing."""

from __future__ import annotations

from pathlib import Path

import trio

from ringd.db.cells import Cell, Row, RowTombstone
from ringd.db.engine import EngineOptions, StorageEngine
from ringd.dht.tokens import Range
from ringd.repair.participant import LocalParticipant, ReplicaRepair
from ringd.repair.session import repair_range

NOW = 1_000_000.0


def row(value: bytes, ts: int) -> Row:
    return Row({"v": Cell(ts, value, None)})


async def test_the_repair_dtest_in_miniature(tmp_path: Path) -> None:
    engines = {n: StorageEngine.open(tmp_path / n, EngineOptions(clock=lambda: NOW)) for n in "abc"}
    async with trio.open_nursery() as nursery:
        for e in engines.values():
            await nursery.start(e.run)
        for i in range(1000):  # written at ALL
            for e in engines.values():
                await e.apply("ks", b"k%d" % i, row(b"v", 10))
        for e in (engines["a"], engines["b"]):  # c was down for one write
            await e.apply("ks", b"missed", row(b"new", 20))
        await engines["b"].apply("ks", b"k5", Row({}, RowTombstone(30, int(NOW))))
        await engines["a"].apply("ks", b"k5", Row({}, RowTombstone(30, int(NOW))))
        await engines["c"].flush()

        parts = {
            n: LocalParticipant(ReplicaRepair(e, lambda ks: True), "s1") for n, e in engines.items()
        }
        preview = await repair_range("ks", Range.full(), parts, 5, preview=True)
        assert set(preview.out_of_sync) == {("a", "c"), ("b", "c")}
        assert preview.in_sync == [("a", "b")]
        assert dict(preview.rows_streamed) == {"c": 2}
        assert engines["c"].read("ks", b"missed") is None  # a preview changes nothing

        done = await repair_range("ks", Range.full(), parts, 5)
        assert dict(done.rows_streamed) == {"c": 2}  # the missed row and the delete, once each
        assert done.rows_compared < 200  # only the rows under differing leaves
        missed = engines["c"].read("ks", b"missed")
        assert missed is not None and missed.cells["v"] == Cell(20, b"new", None)
        k5 = engines["c"].read("ks", b"k5")
        assert k5 is not None and k5.tombstone == RowTombstone(30, int(NOW))

        again = await repair_range("ks", Range.full(), parts, 5)
        assert again.consistent and not again.rows_streamed
        nursery.cancel_scope.cancel()
    for e in engines.values():
        await e.close()


async def test_concurrent_versions_are_merged_both_ways(tmp_path: Path) -> None:
    engines = {n: StorageEngine.open(tmp_path / n, EngineOptions(clock=lambda: NOW)) for n in "ab"}
    async with trio.open_nursery() as nursery:
        for e in engines.values():
            await nursery.start(e.run)
        await engines["a"].apply("ks", b"k", Row({"x": Cell(10, b"1", None)}))
        await engines["b"].apply("ks", b"k", Row({"y": Cell(11, b"2", None)}))
        parts = {
            n: LocalParticipant(ReplicaRepair(e, lambda ks: True), "s1") for n, e in engines.items()
        }
        result = await repair_range("ks", Range.full(), parts, 2)
        assert dict(result.rows_streamed) == {"a": 1, "b": 1}
        for e in engines.values():
            stored = e.read("ks", b"k")
            assert stored is not None and set(stored.cells) == {"x", "y"}
        nursery.cancel_scope.cancel()
    for e in engines.values():
        await e.close()
