"""Disk failures at the engine's file layer, injected at the system-call boundary (ENOSPC from
``posix_fallocate`` or from opening an sstable, EMFILE from the directory fsync), so that any
machine covers the logic of ``disk_failure_policy``. The real thing, a full tmpfs under a real
ringd process, is tests/integration/test_disk_full.py (it skips where mounting is not allowed).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

import ringd.db.commitlog as commitlog_module
import ringd.db.engine as engine_module
import ringd.db.sstable as sstable_module
from ringd.db.commitlog import CommitLog
from ringd.db.diskhealth import DiskFailure, WritesStopped
from ringd.db.engine import StorageEngine
from ringd.protocol.errors import ErrorCode

from .conftest import eventually, put

Opener = Callable[..., StorageEngine]


def enospc(*_args: object, **_kw: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def emfile(*_args: object, **_kw: object) -> None:
    raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))


@pytest.fixture(autouse=True)
def fast_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "DISK_RETRY_S", 0.02)


def value(engine: StorageEngine, key: bytes) -> bytes | None:
    row = engine.read("ks", key)
    return None if row is None else row.cells["v"].value


async def test_segments_are_allocated_not_sparse(tmp_path: Path) -> None:
    log = CommitLog(tmp_path, 4 * 1024 * 1024, 1, [])
    log.ensure_active()
    assert log.active is not None
    st = os.stat(log.active.path)
    assert st.st_blocks * 512 >= st.st_size == 4 * 1024 * 1024
    await log.close()


async def test_full_disk_at_segment_allocation_stops_writes_until_space_returns(
    open_engine: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = open_engine(commitlog_segment_bytes=64 * 1024)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        monkeypatch.setattr(os, "posix_fallocate", enospc)
        acked = 0
        with pytest.raises(WritesStopped) as err:
            for i in range(10_000):  # fills the reserved segment, then needs a new one
                await engine.apply("ks", b"k%d" % i, put(1, v=b"x" * 100))
                acked += 1
        assert err.value.code == ErrorCode.OVERLOADED
        assert "No space left on device" in err.value.message
        assert str(engine.data_dir) in err.value.message and " free" in err.value.message
        assert 0 < acked < 10_000
        # reads go on, and every acknowledged write is there
        assert all(value(engine, b"k%d" % i) == b"x" * 100 for i in range(acked))
        with pytest.raises(WritesStopped):
            await engine.apply("ks", b"again", put(1, v=b"y"))
        monkeypatch.undo()  # space is back
        monkeypatch.setattr(engine_module, "DISK_RETRY_S", 0.02)
        await eventually(lambda: engine.writes_stopped is None)
        await engine.apply("ks", b"again", put(1, v=b"y"))
        nursery.cancel_scope.cancel()
    await engine.close()
    engine = open_engine()
    assert value(engine, b"again") == b"y"
    assert all(value(engine, b"k%d" % i) == b"x" * 100 for i in range(acked))
    await engine.close()


async def test_full_disk_at_open_starts_with_writes_stopped(
    open_engine: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = open_engine()
    await engine.apply("ks", b"a", put(1, v=b"1"))
    engine.crash()  # leaves the record in the commit log
    monkeypatch.setattr(os, "posix_fallocate", enospc)
    engine = open_engine()
    assert engine.writes_stopped is not None
    assert value(engine, b"a") == b"1"
    with pytest.raises(WritesStopped):
        await engine.apply("ks", b"b", put(1, v=b"2"))
    await engine.close()  # a clean shutdown on a full disk, no exception
    monkeypatch.undo()
    engine = open_engine()
    assert engine.writes_stopped is None and value(engine, b"a") == b"1"
    await engine.close()


async def test_failed_flush_is_retried_and_never_fatal(
    open_engine: Opener, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "ringd.db")
    engine = open_engine(memtable_flush_bytes=16 * 1024)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        monkeypatch.setattr(sstable_module, "open", enospc, raising=False)
        acked = 0
        with pytest.raises(WritesStopped) as err:
            for i in range(10_000):
                await engine.apply("ks", b"k%d" % i, put(1, v=b"x" * 100))
                acked += 1
                await trio.lowlevel.checkpoint()  # let the flusher run
        assert "flush of keyspace ks failed" in err.value.message
        assert engine.stats()["ks"]["sstable_count"] == 0
        assert all(value(engine, b"k%d" % i) == b"x" * 100 for i in range(acked))
        # close on the still-full disk is clean; the data stays in the commit log
        monkeypatch.undo()
        monkeypatch.setattr(engine_module, "DISK_RETRY_S", 0.02)
        await eventually(lambda: engine.writes_stopped is None)
        assert engine.stats()["ks"]["sstable_count"] >= 1
        assert any("flushed keyspace ks" in r.getMessage() for r in caplog.records)
        await engine.apply("ks", b"after", put(1, v=b"y"))
        nursery.cancel_scope.cancel()
    await engine.close()
    engine = open_engine()
    assert all(value(engine, b"k%d" % i) == b"x" * 100 for i in range(acked))
    assert value(engine, b"after") == b"y"
    await engine.close()


async def test_close_with_a_failing_flush_keeps_the_commit_log(
    open_engine: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = open_engine()
    for i in range(50):
        await engine.apply("ks", b"k%d" % i, put(1, v=b"v"))
    monkeypatch.setattr(sstable_module, "open", enospc, raising=False)
    await engine.close()  # no exception
    monkeypatch.undo()
    engine = open_engine()
    assert all(value(engine, b"k%d" % i) == b"v" for i in range(50))
    await engine.close()


async def test_emfile_in_periodic_sync_is_survived(
    open_engine: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = open_engine(commitlog_sync_period_ms=10, commitlog_segment_bytes=64 * 1024)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        await engine.apply("ks", b"a", put(1, v=b"1"))
        monkeypatch.setattr(commitlog_module, "fsync_dir", emfile)
        for i in range(2000):  # roll segments so that the directory needs an fsync
            try:
                await engine.apply("ks", b"k%d" % i, put(1, v=b"x" * 100))
            except WritesStopped as exc:
                assert "Too many open files" in exc.message
                break
            await trio.lowlevel.checkpoint()
        await eventually(lambda: engine.writes_stopped is not None)
        monkeypatch.undo()
        monkeypatch.setattr(engine_module, "DISK_RETRY_S", 0.02)
        await eventually(lambda: engine.writes_stopped is None)
        await engine.apply("ks", b"b", put(1, v=b"2"))
        nursery.cancel_scope.cancel()
    await engine.close()


async def test_die_policy_stops_the_engine(
    open_engine: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = open_engine(memtable_flush_bytes=4 * 1024, disk_failure_policy="die")
    monkeypatch.setattr(sstable_module, "open", enospc, raising=False)
    with pytest.raises(BaseException) as caught:  # noqa: PT011 - trio may wrap it in a group
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            with trio.fail_after(10):
                for i in range(10_000):
                    try:
                        await engine.apply("ks", b"k%d" % i, put(1, v=b"x" * 100))
                    except WritesStopped:
                        pass
                    await trio.sleep(0.001)
    exc = caught.value
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    assert isinstance(exc, DiskFailure), exc
    assert "flush of keyspace ks failed: No space left on device" in str(exc)
    await engine.close()
