"""Storage engine: reads, scans, gc_grace purging, crash leftovers, drops, background work."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.lowlevel

from ringd.db.cells import Cell, Row, RowTombstone
from ringd.db.engine import StorageEngine
from ringd.dht.murmur3 import MAX_TOKEN, MIN_TOKEN, token_for

from .conftest import FakeClock, eventually, put

Opener = Callable[..., StorageEngine]


def live(engine: StorageEngine, key: bytes, now: float, ks: str = "ks") -> dict[str, bytes]:
    row = engine.read(ks, key)
    return {} if row is None else row.live_columns(int(now))


async def test_read_merges_memtable_and_sstables(open_engine: Opener) -> None:
    e = open_engine()
    await e.apply("ks", b"k", put(10, a=b"1", b=b"1"))
    await e.flush()
    await e.apply("ks", b"k", put(20, b=b"2"))
    await e.flush()
    await e.apply("ks", b"k", put(5, a=b"old", c=b"3"))
    assert live(e, b"k", 0) == {"a": b"1", "b": b"2", "c": b"3"}
    assert e.stats()["ks"]["sstable_count"] == 2
    assert e.read("ks", b"missing") is None and e.read("nope", b"k") is None
    row = e.read("ks", b"k")
    assert row is not None
    row.cells.clear()  # the caller's copy: the engine is unaffected
    assert live(e, b"k", 0) == {"a": b"1", "b": b"2", "c": b"3"}


async def test_scan_order_bounds_and_tombstone_rows(open_engine: Opener, clock: FakeClock) -> None:
    e = open_engine()
    keys = [b"k%d" % i for i in range(60)] + [b""]
    for i, key in enumerate(keys):
        await e.apply("ks", key, put(1, v=b"%d" % i))
        if i == 20:
            await e.flush()
    await e.flush()
    await e.apply("ks", b"k3", Row({}, RowTombstone(5, int(clock.now))))  # only a tombstone
    await e.apply("ks", b"k4", put(7, w=b"new"))
    order = sorted((token_for(k), k) for k in keys)

    def scan(after: tuple[int, bytes] | None = None, end: int | None = None) -> list:
        return [(t, k) for t, k, _r in e.scan("ks", after, end)]

    assert scan() == order
    rows = {k: r for _t, k, r in e.scan("ks")}
    assert rows[b"k3"].live_columns(0) == {} and rows[b"k3"].tombstone is not None
    assert rows[b"k4"].live_columns(0) == {"v": b"4", "w": b"new"}
    for i in (0, 1, 17, 40, len(order) - 1):
        assert scan(order[i]) == order[i + 1 :]
        assert scan(None, order[i][0]) == order[: i + 1]
        assert scan(order[0], order[i][0]) == order[1 : i + 1]
    assert scan(None, MIN_TOKEN) == [(MIN_TOKEN, b"")]  # the empty key owns the minimum token
    assert scan((MIN_TOKEN, b""), MAX_TOKEN) == order[1:]
    assert scan((MAX_TOKEN, b"")) == []
    assert list(e.scan("unknown")) == []


async def test_scan_is_lazy(open_engine: Opener) -> None:
    e = open_engine()
    for i in range(200):
        await e.apply("ks", b"k%d" % i, put(1, v=b"x"))
    await e.flush()
    it = e.scan("ks")
    first = next(it)
    await e.apply("ks", b"zzz", put(1, v=b"x"))  # writes while a scan is open are fine
    assert first[1] != b"" and len(list(it)) == 199


async def test_tombstones_are_purged_only_after_gc_grace(
    open_engine: Opener, clock: FakeClock
) -> None:
    e = open_engine(gc_grace_for=lambda ks: 100)
    t0 = int(clock.now)
    await e.apply("ks", b"row", put(1, a=b"1", b=b"2"))
    await e.apply("ks", b"col", put(1, a=b"1", b=b"2"))
    await e.flush()
    await e.apply("ks", b"row", Row({}, RowTombstone(2, t0)))
    await e.apply("ks", b"col", Row({"a": Cell(2, None, t0)}))
    await e.flush()

    clock.advance(50)
    await e.compact()
    stats = e.stats()["ks"]
    assert stats["sstable_count"] == 1 and stats["tombstone_cells"] == 2
    assert e.read("ks", b"row").tombstone == RowTombstone(2, t0)  # type: ignore[union-attr]
    assert live(e, b"col", clock.now) == {"b": b"2"}

    clock.advance(51)  # now past t0 + gc_grace
    await e.compact()
    stats = e.stats()["ks"]
    assert stats["tombstone_cells"] == 0 and stats["live_cells"] == 1
    assert e.read("ks", b"row") is None
    assert e.read("ks", b"col") == Row({"b": Cell(1, b"2")})
    assert [k for _t, k, _r in e.scan("ks")] == [b"col"]


async def test_expired_ttl_cells_become_tombstones_then_go(
    open_engine: Opener, clock: FakeClock
) -> None:
    e = open_engine(gc_grace_for=lambda ks: 100)
    now = int(clock.now)
    await e.apply("ks", b"k", Row({"t": Cell(1, b"v", now + 10), "p": Cell(1, b"keep")}))
    assert live(e, b"k", clock.now) == {"t": b"v", "p": b"keep"}
    clock.advance(20)
    assert live(e, b"k", clock.now) == {"p": b"keep"}
    await e.compact()
    assert e.read("ks", b"k").cells["t"] == Cell(1, None, now + 10)  # type: ignore[union-attr]
    assert e.stats()["ks"]["tombstone_cells"] == 1
    clock.advance(100)
    await e.compact()
    assert e.read("ks", b"k") == Row({"p": Cell(1, b"keep")})


async def test_tombstone_is_kept_while_older_data_lives_outside_the_compaction(
    open_engine: Opener, clock: FakeClock
) -> None:
    e = open_engine(gc_grace_for=lambda ks: 0)
    await e.apply("ks", b"k", put(1, v=b"old"))
    await e.flush()
    await e.apply("ks", b"k", Row({}, RowTombstone(2, int(clock.now))))
    await e.apply("ks", b"other", put(3, v=b"x"))
    await e.flush()
    clock.advance(10)
    store = e._stores["ks"]
    older, newer = store.sstables
    async with store.compaction_lock:
        await e._compact(store, [newer], major=False)
    assert live(e, b"k", clock.now) == {}  # the tombstone still shadows the old value
    assert e.stats()["ks"]["tombstone_cells"] == 1
    await e.compact()  # now everything is in one compaction: both go
    assert e.read("ks", b"k") is None and e.stats()["ks"]["tombstone_cells"] == 0


async def test_replay_does_not_resurrect_purged_data(open_engine: Opener, clock: FakeClock) -> None:
    e = open_engine(gc_grace_for=lambda ks: 0, commitlog_sync="batch")
    await e.apply("ks", b"k", put(1, v=b"old"))
    await e.flush()
    await e.apply("ks", b"k", Row({}, RowTombstone(2, int(clock.now))))
    clock.advance(10)
    await e.compact()
    assert e.read("ks", b"k") is None
    e.crash()  # the commit log still holds both records
    e = open_engine()
    assert e.read("ks", b"k") is None


async def test_interrupted_compaction_leftovers_are_removed_at_open(
    open_engine: Opener, clock: FakeClock, tmp_path: Path
) -> None:
    e = open_engine(gc_grace_for=lambda ks: 0)
    await e.apply("ks", b"k", put(1, v=b"old"))
    await e.apply("ks", b"keep", put(1, v=b"x"))
    await e.flush()
    await e.apply("ks", b"k", Row({}, RowTombstone(2, int(clock.now))))
    await e.flush()
    ks_dir = tmp_path / "data" / "sstables" / "ks"
    saved = tmp_path / "saved"
    saved.mkdir()
    for p in ks_dir.glob("*.sst"):
        shutil.copy(p, saved / p.name)
    clock.advance(10)
    await e.compact()
    await e.close()
    # crash after the new sstable was renamed in but before the old ones were deleted
    for p in saved.iterdir():
        shutil.copy(p, ks_dir / p.name)
    (ks_dir / "0000000099.sst.tmp").write_bytes(b"half written")
    e = open_engine()
    assert e.read("ks", b"k") is None
    assert live(e, b"keep", clock.now) == {"v": b"x"}
    assert sorted(p.name for p in ks_dir.iterdir()) == ["0000000003.sst"]
    await e.apply("ks", b"n", put(5, v=b"new"))
    await e.flush()  # generations keep growing past everything seen on disk
    assert sorted(p.name for p in ks_dir.iterdir()) == ["0000000003.sst", "0000000004.sst"]


async def test_drop_keyspace_survives_restart_and_crash(open_engine: Opener) -> None:
    e = open_engine(commitlog_sync="batch")
    await e.apply("gone", b"a", put(1, v=b"1"))
    await e.flush()
    await e.apply("gone", b"b", put(1, v=b"2"))
    await e.apply("kept", b"a", put(1, v=b"3"))
    e.drop_keyspace("gone")
    assert e.keyspaces() == ["kept"] and e.read("gone", b"a") is None
    e.crash()
    e = open_engine(commitlog_sync="batch")
    assert e.keyspaces() == ["kept"] and e.read("gone", b"b") is None
    await e.apply("gone", b"c", put(2, v=b"again"))  # recreated
    e.crash()
    e = open_engine()
    assert e.read("gone", b"a") is None and e.read("gone", b"b") is None
    assert live(e, b"c", 0, ks="gone") == {"v": b"again"}
    await e.close()
    e = open_engine()
    assert sorted(e.keyspaces()) == ["gone", "kept"]
    assert e.read("gone", b"a") is None and live(e, b"c", 0, ks="gone") == {"v": b"again"}


async def test_unusual_keyspace_names(open_engine: Opener) -> None:
    e = open_engine()
    for name in ("weird name/ü", ".hidden", "%x"):
        await e.apply(name, b"k", put(1, v=name.encode()))
    await e.close()
    e = open_engine()
    assert sorted(e.keyspaces()) == sorted(["weird name/ü", ".hidden", "%x"])
    assert live(e, b"k", 0, ks="weird name/ü") == {"v": "weird name/ü".encode()}


async def test_stats_and_compaction_stats(open_engine: Opener) -> None:
    e = open_engine()
    assert e.stats() == {} and e.compaction_stats() == {"pending": 0, "active": []}
    for i in range(10):
        await e.apply("ks", b"k%d" % i, put(1, v=b"x"))
    s = e.stats()["ks"]
    assert s["memtable_rows"] == 10 and s["memtable_bytes"] > 0 and s["sstable_count"] == 0
    for _ in range(4):
        await e.apply("ks", b"k", put(1, v=b"x"))
        await e.flush()
    s = e.stats()["ks"]
    assert s["sstable_count"] == 4 and s["live_cells"] == 14 and s["bytes_on_disk"] > 0
    assert s["memtable_rows"] == 0
    assert e.compaction_stats()["pending"] == 1
    await e.compact("ks")
    assert e.stats()["ks"]["sstable_count"] == 1 and e.stats()["ks"]["live_cells"] == 11
    assert e.compaction_stats() == {"pending": 0, "active": []}
    assert e.verify() == []


async def test_background_flush_and_size_tiered_compaction(open_engine: Opener) -> None:
    e = open_engine(memtable_flush_bytes=2000, background_compaction=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(e.run)
        for i in range(600):
            await e.apply("ks", b"k%d" % i, put(1, v=b"v" * 20))
            if i % 50 == 0:
                await trio.lowlevel.checkpoint()
        # flushes happened on the way; compaction keeps the sstable count down
        await eventually(lambda: e.stats()["ks"]["memtable_bytes"] < 2000)
        await eventually(lambda: e.compaction_stats() == {"pending": 0, "active": []})
        assert 1 <= e.stats()["ks"]["sstable_count"] < 8
        assert all(live(e, b"k%d" % i, 0) == {"v": b"v" * 20} for i in range(600))
        nursery.cancel_scope.cancel()
    await e.close()


async def test_close_cancels_running_compactions_cleanly(
    open_engine: Opener, tmp_path: Path
) -> None:
    e = open_engine()
    for n in range(4):
        for i in range(300):
            await e.apply("ks", b"k%d-%d" % (n, i), put(1, v=b"x"))
        await e.flush()
    with trio.move_on_after(0):
        await e.compact()  # cancelled at once: the engine stays consistent
    await e.close()
    e = open_engine()
    assert sum(1 for _ in e.scan("ks")) == 1200
    assert e.verify() == []
    assert not list((tmp_path / "data" / "sstables" / "ks").glob("*.tmp"))


@pytest.mark.parametrize("mode", ["periodic", "batch", "group"])
async def test_every_sync_mode_round_trips(open_engine: Opener, mode: str) -> None:
    e = open_engine(commitlog_sync=mode, commitlog_group_window_ms=0.5)
    for i in range(20):
        await e.apply("ks", b"k%d" % i, put(i, v=b"%d" % i))
    assert all(live(e, b"k%d" % i, 0) == {"v": b"%d" % i} for i in range(20))
    await e.close()
    e = open_engine(commitlog_sync=mode)
    assert all(live(e, b"k%d" % i, 0) == {"v": b"%d" % i} for i in range(20))


def test_bad_sync_mode_is_rejected() -> None:
    from ringd.db.engine import EngineOptions

    with pytest.raises(ValueError):
        EngineOptions(commitlog_sync="sometimes")


async def test_keys_of_every_length_class_replay(open_engine: Opener) -> None:
    e = open_engine(commitlog_sync="batch")
    keys = [b"k" * n for n in (0, 1, 23, 24, 255, 256, 65535, 65536, 70000)]
    for i, key in enumerate(keys):
        await e.apply("ks", key, put(i, v=b"%d" % i))
        await e.apply("ks", key, put(i, w=b"second write"))  # merged, not encoded, from here
    e.crash()
    e = open_engine()
    for i, key in enumerate(keys):
        assert live(e, key, 0) == {"v": b"%d" % i, "w": b"second write"}
    await e.flush()
    assert [k for _t, k, _r in e.scan("ks")] == sorted(keys, key=lambda k: (token_for(k), k))


async def test_a_quiet_keyspace_does_not_pin_the_commit_log(
    open_engine: Opener, tmp_path: Path
) -> None:
    e = open_engine(commitlog_segment_bytes=1024, commitlog_total_bytes=1500)
    await e.apply("quiet", b"k", put(1, v=b"x"))
    for i in range(40):
        await e.apply("busy", b"k%d" % i, put(1, v=b"x" * 20))
    await e.flush("busy")
    await e.sync()
    assert e.stats()["quiet"]["sstable_count"] == 0
    async with trio.open_nursery() as nursery:
        await nursery.start(e.run)
        await eventually(lambda: e.stats()["quiet"]["sstable_count"] == 1)
        await eventually(lambda: len(list((tmp_path / "data" / "commitlog").iterdir())) <= 2)
        nursery.cancel_scope.cancel()
    assert live(e, b"k", 0, ks="quiet") == {"v": b"x"}


async def test_row_bytes_bound_covers_the_merged_row(open_engine: Opener) -> None:
    """The bound ``check_row_size`` trusts to skip reading the stored row is never below the
    encoded size of the stored row merged with a new one: in a memtable (encoded and decoded),
    in sstables, with tombstones, long values and many cells."""
    from ringd.service.replica import row_bytes

    e = open_engine()
    assert e.row_bytes_bound("ks", b"k") == 0
    updates = [
        put(10, a=b"1"),
        put(11, **{f"c{i}": bytes(40 + i) for i in range(30)}),
        Row({"z": Cell(12, bytes(300), None)}, RowTombstone(11, 0)),
        put(13, a=b"x" * 1000),
    ]
    for step, update in enumerate(updates):
        for new in (put(20, a=b"2"), put(21, **{f"d{i}": b"y" * i for i in range(40)})):
            stored = e.read("ks", b"k")
            merged = new if stored is None else stored.merge(new).normalized()
            assert row_bytes(new) + e.row_bytes_bound("ks", b"k") >= row_bytes(merged)
        await e.apply("ks", b"k", update)
        if step % 2:
            await e.flush()


async def test_group_commit_applies_and_answers_each_write_after_its_fsync(
    open_engine: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    """batch mode: writes enter the memtable and get their callback after the fsync that
    covers them, in one pass; a callback that raises is logged and the others still run."""
    e = open_engine(commitlog_sync="batch")
    done: list[tuple[bytes, BaseException | None, bool]] = []

    def answer(key: bytes) -> Callable[[BaseException | None], None]:
        def callback(error: BaseException | None) -> None:
            durable = e.commitlog.synced_pos == e.commitlog.position()
            done.append((key, error, durable and live(e, key, 0) == {"v": key}))
            if key == b"k1":
                raise RuntimeError("a bug in a callback")

        return callback

    with caplog.at_level(logging.ERROR, logger="ringd.db.engine"):
        async with trio.open_nursery() as nursery:
            await nursery.start(e.run)
            for i in range(4):
                e.apply_then("ks", b"k%d" % i, put(1, v=b"k%d" % i), None, answer(b"k%d" % i))
            assert done == [] and e.read("ks", b"k0") is None  # not before the fsync
            await eventually(lambda: len(done) == 4)
            nursery.cancel_scope.cancel()
    assert done == [(b"k%d" % i, None, True) for i in range(4)]
    assert "a commit log sync callback failed" in caplog.text
    assert e.stats()["ks"]["memtable_rows"] == 4 and not e._stores["ks"].inflight
    assert e._stores["ks"].metrics.write_latency.count == 4
    await e.close()


async def test_group_commit_fsyncs_inline_while_fsyncs_are_fast(
    open_engine: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group commit fsyncs in the loop's thread (no thread hop) while recent fsyncs were
    fast, and in a worker thread once they are slow; either way the log is durable after."""
    e = open_engine(commitlog_sync="batch")
    log = e.commitlog
    hops: list[object] = []
    real = log._sync_thread.run

    async def counting(fn: Callable[..., object], *args: object) -> object:
        hops.append(fn)
        return await real(fn, *args)

    monkeypatch.setattr(log._sync_thread, "run", counting)
    e.apply_then("ks", b"k", put(1, a=b"1"), None, lambda error: None)
    await log.sync(inline=True)
    assert hops == [] and log.synced_pos == log.position()
    log.sync_seconds = 1.0  # as after slow fsyncs
    e.apply_then("ks", b"k", put(2, a=b"2"), None, lambda error: None)
    await log.sync(inline=True)
    assert len(hops) == 1 and log.synced_pos == log.position()
    assert log.sync_seconds < 1.0  # the fast fsync pulls the average down again


async def test_prepare_scan_hashes_new_keys_off_the_event_loop(
    open_engine: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repair validation first awaits ``prepare_scan``: the Murmur3 tokens of the keys that
    arrived since the last scan are computed in a worker thread, so the scan itself, in the
    event loop, hashes nothing (10,000 new keys took the loop ~25 ms)."""
    import threading

    from ringd.db import memtable

    e = open_engine()
    for i in range(800):
        await e.apply("ks", b"k%d" % i, put(1, v=b"x"))
    loop_thread = threading.current_thread()
    in_loop: list[bytes] = []
    real = memtable._token

    def spy(key: bytes) -> int:
        if threading.current_thread() is loop_thread:
            in_loop.append(key)
        return real(key)

    monkeypatch.setattr(memtable, "_token", spy)
    await e.prepare_scan("ks")
    await e.prepare_scan("nope")  # no such keyspace: nothing to do
    assert len(list(e.scan("ks"))) == 800 and in_loop == []
