"""Commit log: durability per sync mode, replay, torn tails, corruption, segment lifecycle."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from ringd.db.commitlog import HEADER_SIZE, REC_HEADER, list_segments
from ringd.db.engine import StorageEngine
from ringd.db.errors import StorageCorruption

from .conftest import eventually, put

Opener = Callable[..., StorageEngine]
MARKER_SIZE = REC_HEADER + 8


def segments(engine_dir: Path) -> list[Path]:
    return [p for _, p in list_segments(engine_dir / "commitlog")]


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))


def truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


async def write_n(engine: StorageEngine, n: int, ks: str = "ks") -> None:
    for i in range(n):
        await engine.apply(ks, b"k%03d" % i, put(i + 1, v=b"value-%d" % i))


def present(engine: StorageEngine, n: int) -> list[bool]:
    return [engine.read("ks", b"k%03d" % i) is not None for i in range(n)]


async def test_batch_writes_survive_a_crash(open_engine: Opener, tmp_path: Path) -> None:
    e = open_engine(commitlog_sync="batch")
    await write_n(e, 50)
    e.crash()
    e = open_engine(commitlog_sync="batch")
    assert all(present(e, 50))
    assert e.read("ks", b"k007").live_columns(0) == {"v": b"value-7"}  # type: ignore[union-attr]
    await e.close()


async def test_group_writes_survive_a_crash(open_engine: Opener) -> None:
    e = open_engine(commitlog_sync="group", commitlog_group_window_ms=1.0)
    async with trio.open_nursery() as nursery:
        for i in range(30):
            nursery.start_soon(e.apply, "ks", b"k%03d" % i, put(1, v=b"x"))
    e.crash()
    e = open_engine()
    assert all(present(e, 30))


async def test_periodic_writes_survive_a_killed_process(open_engine: Opener) -> None:
    e = open_engine()
    await write_n(e, 10)
    e.crash()  # no sync, no close: the records were handed to the OS before apply returned
    e = open_engine()
    assert all(present(e, 10))


async def test_power_loss_in_periodic_mode_loses_only_unsynced_writes(
    open_engine: Opener, tmp_path: Path
) -> None:
    e = open_engine()
    await write_n(e, 10)
    await e.sync()
    seg_id, synced_end = e.commitlog.position()
    for i in range(10, 20):
        await e.apply("ks", b"k%03d" % i, put(1, v=b"x"))
    e.crash()
    [seg] = segments(tmp_path / "data")
    truncate(seg, synced_end + 7)  # the page cache never reached the disk
    e = open_engine()
    assert present(e, 20) == [True] * 10 + [False] * 10


async def test_flipped_byte_mid_segment_names_file_and_offset(
    open_engine: Opener, tmp_path: Path
) -> None:
    e = open_engine(commitlog_sync="batch")
    await write_n(e, 60)
    size = e.commitlog.position()[1]  # the segment file itself is preallocated
    e.crash()
    [seg] = segments(tmp_path / "data")
    for where in (HEADER_SIZE + 3, size // 3, size // 2, 2 * size // 3):
        flip(seg, where)
        with pytest.raises(StorageCorruption) as info:
            open_engine()
        assert info.value.path == str(seg)
        assert HEADER_SIZE <= info.value.offset <= where
        assert str(seg) in str(info.value) and f"offset {info.value.offset}" in str(info.value)
        flip(seg, where)  # undo
    open_engine()  # healthy again


async def test_flipped_byte_in_an_earlier_segment_raises(
    open_engine: Opener, tmp_path: Path
) -> None:
    e = open_engine(commitlog_segment_bytes=1024)
    await write_n(e, 100)
    await e.sync()
    e.crash()
    segs = segments(tmp_path / "data")
    assert len(segs) > 2
    size = segs[0].stat().st_size  # full segments are trimmed and end with a sync marker
    flip(segs[0], size - MARKER_SIZE - 5)  # inside the last record
    with pytest.raises(StorageCorruption) as info:
        open_engine()
    assert info.value.path == str(segs[0])


async def test_torn_last_record_is_skipped_with_a_warning(
    open_engine: Opener, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    e = open_engine(commitlog_sync="batch")
    await write_n(e, 20)
    size = e.commitlog.position()[1]
    e.crash()
    [seg] = segments(tmp_path / "data")
    truncate(seg, size - MARKER_SIZE - 5)  # into the last write (a sync marker follows it)
    with caplog.at_level(logging.WARNING, logger="ringd.db.commitlog"):
        e = open_engine(commitlog_sync="batch")
    assert "torn" in caplog.text and str(seg) in caplog.text
    assert present(e, 20) == [True] * 19 + [False]
    # the torn bytes were cut off: more writes, another crash, and the log still replays
    await e.apply("ks", b"k019", put(5, v=b"again"))
    e.crash()
    e = open_engine()
    assert all(present(e, 20))


async def test_damage_in_unsynced_tail_is_a_torn_tail(open_engine: Opener, tmp_path: Path) -> None:
    e = open_engine()
    await write_n(e, 10)
    await e.sync()
    synced_end = e.commitlog.position()[1]
    for i in range(10, 30):
        await e.apply("ks", b"k%03d" % i, put(1, v=b"x" * 20))
    assert e.commitlog.synced_pos[1] == synced_end
    size = e.commitlog.position()[1]
    e.crash()
    [seg] = segments(tmp_path / "data")
    assert size > synced_end + 100
    flip(seg, synced_end + 60)  # a power loss persisted these pages out of order
    e = open_engine()
    assert present(e, 10) == [True] * 10


async def test_garbage_after_the_last_record_is_ignored(
    open_engine: Opener, tmp_path: Path
) -> None:
    e = open_engine(commitlog_sync="batch")
    await write_n(e, 5)
    e.crash()
    [seg] = segments(tmp_path / "data")
    append(seg, b"\x00" * 100)
    e = open_engine()
    assert all(present(e, 5))
    e.crash()
    append(seg, os.urandom(7))
    e = open_engine()
    assert all(present(e, 5))


async def test_segments_roll_and_are_deleted_once_flushed(
    open_engine: Opener, tmp_path: Path
) -> None:
    e = open_engine(commitlog_segment_bytes=2048)
    await write_n(e, 200)
    await write_n(e, 20, ks="other")
    await e.sync()
    assert len(segments(tmp_path / "data")) >= 4
    await e.flush("ks")
    # segments holding unflushed records of "other" stay
    assert len(segments(tmp_path / "data")) >= 1
    await e.flush("other")
    assert len(segments(tmp_path / "data")) <= 1
    await e.close()
    assert segments(tmp_path / "data") == []
    e = open_engine()
    assert e.stats()["ks"]["memtable_rows"] == 0
    assert all(present(e, 200))


async def test_close_then_open_replays_nothing(open_engine: Opener, tmp_path: Path) -> None:
    e = open_engine()
    await write_n(e, 30)
    await e.close()
    assert segments(tmp_path / "data") == []
    e = open_engine()
    assert e.stats()["ks"]["memtable_rows"] == 0 and e.stats()["ks"]["sstable_count"] == 1
    assert all(present(e, 30))


@pytest.mark.parametrize("mode", ["batch", "group"])
async def test_concurrent_writers_share_fsyncs(
    open_engine: Opener, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    calls = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    e = open_engine(commitlog_sync=mode, commitlog_group_window_ms=20.0)
    async with trio.open_nursery() as nursery:
        for i in range(40):
            nursery.start_soon(e.apply, "ks", b"k%03d" % i, put(1, v=b"x"))
    assert 1 <= len(calls) <= 10
    assert all(present(e, 40))


async def test_periodic_mode_syncs_in_the_background(open_engine: Opener) -> None:
    e = open_engine(commitlog_sync_period_ms=10)
    async with trio.open_nursery() as nursery:
        await nursery.start(e.run)
        await write_n(e, 5)
        target = e.commitlog.position()
        await eventually(lambda: e.commitlog.synced_pos >= target)
        nursery.cancel_scope.cancel()
    e.crash()
    e = open_engine()
    assert all(present(e, 5))


async def test_repeated_syncs_without_writes_do_not_fill_a_segment(open_engine: Opener) -> None:
    e = open_engine(commitlog_segment_bytes=256)
    for i in range(30):
        await e.apply("ks", b"k%03d" % i, put(1, v=b"x" * (i % 7)))
        for _ in range(i % 4):
            await e.sync()
    for _ in range(20):
        await e.sync()
    e.crash()
    e = open_engine()
    assert all(present(e, 30))
    await e.close()


def zero_from(path: Path, offset: int) -> None:
    """A power loss: nothing the page cache held from ``offset`` on reached the disk."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(bytes(size - offset))


@pytest.mark.parametrize("kept", [1, 5, HEADER_SIZE - 1])
async def test_a_torn_unsynced_segment_header_is_a_torn_tail(
    open_engine: Opener, tmp_path: Path, caplog: pytest.LogCaptureFixture, kept: int
) -> None:
    """A power loss before the first fsync of the newest segment left only part of its header
    (found by the simulated cluster, seed 9: the node refused to start with "bad commit log
    segment header at byte offset 0"). Nothing in it was durable: the node starts, with what
    was synced."""
    e = open_engine(commitlog_segment_bytes=1024)
    await write_n(e, 40)
    await e.sync()
    before = len(segments(tmp_path / "data"))
    i = 40
    while len(segments(tmp_path / "data")) == before:  # roll into a segment never synced
        await e.apply("ks", b"k%03d" % i, put(1, v=b"x" * 20))
        i += 1
    e.crash()
    newest = segments(tmp_path / "data")[-1]
    zero_from(newest, kept)
    with caplog.at_level(logging.WARNING, logger="ringd.db.commitlog"):
        e = open_engine(commitlog_segment_bytes=1024)
    assert "torn" in caplog.text and str(newest) in caplog.text
    assert all(present(e, 40))
    await write_n(e, 5)  # and the log goes on
    e.crash()
    assert all(present(open_engine(commitlog_segment_bytes=1024), 40))


async def test_a_damaged_header_of_a_synced_segment_still_stops_the_node(
    open_engine: Opener, tmp_path: Path
) -> None:
    e = open_engine(commitlog_segment_bytes=1024)
    await write_n(e, 100)
    await e.sync()
    await e.apply("ks", b"k000", put(200, v=b"y"))
    await e.sync()  # appends the marker of the previous sync to the newest segment
    e.crash()
    segs = segments(tmp_path / "data")
    assert len(segs) > 2
    for seg in (segs[0], segs[-1]):  # an older segment; the newest, whose marker says synced
        flip(seg, 3)
        with pytest.raises(StorageCorruption) as info:
            open_engine(commitlog_segment_bytes=1024)
        assert info.value.path == str(seg) and info.value.offset == 0
        assert "bad commit log segment header" in str(info.value)
        flip(seg, 3)
    open_engine(commitlog_segment_bytes=1024)


async def test_sync_thread_runs_jobs_raises_their_errors_and_restarts_after_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    from ringd.db import syncthread

    monkeypatch.setattr(syncthread, "IDLE_S", 0.01)
    worker = syncthread.SyncThread()
    assert await worker.run(lambda a, b: (a + b, threading.current_thread().name), 1, 2) == (
        3,
        worker.name,
    )

    def boom() -> None:
        raise OSError(5, "EIO")

    with pytest.raises(OSError, match="EIO"):
        await worker.run(boom)
    await eventually(lambda: not worker._running)  # idle: it exits; the next job starts one
    assert await worker.run(lambda: 7) == 7
