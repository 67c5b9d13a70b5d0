"""Streaming ranges between two real storage engines in-process (the network is the boundary):
only the asked ranges move, with timestamps and tombstones; damaged chunks are refused and asked
for again; a session stopped midway resumes with the ranges still missing; the throttle holds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from ringd.db.cells import Cell, Row, RowTombstone
from ringd.db.engine import EngineOptions, StorageEngine
from ringd.dht.murmur3 import MAX_TOKEN, token_for
from ringd.dht.tokens import Range
from ringd.streaming.received import ReceivedRanges
from ringd.streaming.service import StreamFailed, StreamService
from ringd.streaming.throttle import Throttle

NOW = 1_000_000.0
KS = "ks"


def row(value: bytes, ts: int) -> Row:
    return Row({"v": Cell(ts, value, None)})


class Pair:
    """A source and a target node; ``call`` reaches the source's ``pull`` as the wire would
    (``tamper`` may change or fail an answer)."""

    def __init__(self, source: StorageEngine, target: StorageEngine, received: Path) -> None:
        self.source_engine, self.target_engine = source, target
        self.pulls = 0
        self.tamper: Callable[[int, dict[str, Any]], dict[str, Any]] = lambda n, a: a
        self.source = StreamService(
            source, lambda ks: True, self.call, ReceivedRanges(None), local_address="s", mb_per_s=0
        )
        self.target = self.make_target(received)

    def make_target(self, received: Path) -> StreamService:
        return StreamService(
            self.target_engine,
            lambda ks: True,
            self.call,
            ReceivedRanges(received),
            local_address="t",
            mb_per_s=0,
            chunk_bytes=4096,
        )

    async def call(self, address: str, verb: str, args: dict[str, Any], timeout: float) -> Any:
        assert (address, verb) == ("s", "stream_pull")
        self.pulls += 1
        await trio.lowlevel.checkpoint()
        return self.tamper(self.pulls, self.source.pull(args))


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    opts = EngineOptions(clock=lambda: NOW)
    source = StorageEngine.open(tmp_path / "source", opts)
    target = StorageEngine.open(tmp_path / "target", opts)
    async with trio.open_nursery() as nursery:
        await nursery.start(source.run)
        await nursery.start(target.run)
        for i in range(600):
            await source.apply(KS, b"k%d" % i, row(b"x" * 50, 10 + i))
        await source.apply(KS, b"gone", Row({}, RowTombstone(99, int(NOW))))
        await source.flush()
        for i in range(600, 700):  # some still in the memtable
            await source.apply(KS, b"k%d" % i, row(b"y", 5))
        yield Pair(source, target, tmp_path / "streams.cbor")
        nursery.cancel_scope.cancel()
    await source.close()
    await target.close()


def keys(engine: StorageEngine) -> set[bytes]:
    return {k for _, k, _ in engine.scan(KS)}


async def test_only_the_asked_ranges_move_with_timestamps_and_tombstones(pair: Pair) -> None:
    ranges = [Range(-(1 << 61), 0), Range(1 << 62, -(1 << 62))]  # the second wraps
    session = await pair.target.fetch("bootstrap", "s", KS, ranges)
    want = {k for k in keys(pair.source_engine) if any(r.contains(token_for(k)) for r in ranges)}
    assert keys(pair.target_engine) == want and 0 < len(want) < 701
    for key in want:
        assert pair.target_engine.read(KS, key) == pair.source_engine.read(KS, key)
    assert session.state == "COMPLETED" and session.rows == len(want)
    assert session.ranges_done == 2 and session.bytes > 0
    assert pair.pulls > 3  # 4 KiB chunks
    views = {s["direction"]: s for s in pair.target.view() + pair.source.view()}
    assert views["in"]["progress"] == 1.0 and views["out"]["rows"] == len(want)
    assert views["out"]["peer"] == "t" and views["in"]["peer"] == "s"


async def test_a_tombstone_is_streamed(pair: Pair) -> None:
    t = token_for(b"gone")
    await pair.target.fetch("bootstrap", "s", KS, [Range(t - 1, t)])
    got = pair.target_engine.read(KS, b"gone")
    assert got is not None and got.tombstone == RowTombstone(99, int(NOW))


async def test_a_damaged_chunk_is_refused_and_asked_for_again(pair: Pair) -> None:
    def flip_first(n: int, answer: dict[str, Any]) -> dict[str, Any]:
        if n == 1:
            data = bytearray(answer["data"])
            data[len(data) // 2] ^= 0xFF
            return {**answer, "data": bytes(data)}
        return answer

    pair.tamper = flip_first
    await pair.target.fetch("bootstrap", "s", KS, [Range.full()])
    assert keys(pair.target_engine) == keys(pair.source_engine)


async def test_always_damaged_fails_the_session_and_records_nothing(pair: Pair) -> None:
    pair.tamper = lambda n, a: {**a, "crc": a["crc"] ^ 1}
    with pytest.raises(StreamFailed, match="CRC mismatch"):
        await pair.target.fetch("bootstrap", "s", KS, [Range.full()])
    assert pair.target.view()[0]["state"] == "FAILED"
    assert keys(pair.target_engine) == set()
    assert pair.target.received.count("bootstrap") == 0


async def test_a_stopped_session_resumes_with_the_missing_ranges(
    pair: Pair, tmp_path: Path
) -> None:
    ranges = Range.full().split(8)

    def die_later(n: int, answer: dict[str, Any]) -> dict[str, Any]:
        if n > 12:
            raise OSError("connection reset")
        return answer

    pair.tamper = die_later
    with pytest.raises(StreamFailed, match="connection reset"):
        await pair.target.fetch("bootstrap", "s", KS, ranges)
    done = pair.target.received.count("bootstrap")
    assert 0 < done < 8
    # a restart: a new service reads what was received from system/streams.cbor
    pair.target = pair.make_target(tmp_path / "streams.cbor")
    pair.tamper = lambda n, a: a
    before = pair.pulls
    session = await pair.target.fetch("bootstrap", "s", KS, ranges)
    assert session.ranges_skipped == done and session.ranges_done == 8
    assert keys(pair.target_engine) == keys(pair.source_engine)
    full_run = 8 + 0  # at least one pull per range
    assert pair.pulls - before < 12 + full_run  # fewer than streaming everything again
    pair.target.received.forget("bootstrap")
    assert ReceivedRanges(tmp_path / "streams.cbor").count("bootstrap") == 0


async def test_the_source_refuses_bad_pulls(pair: Pair) -> None:
    from ringd.protocol.errors import InvalidRequest

    good = {"ks": KS, "hi": MAX_TOKEN, "after": None, "max_bytes": 4096}
    good |= {"session": "x", "peer": "t", "plan": "p"}
    assert pair.source.pull(good)["rows"] > 0
    for bad in ({"hi": "x"}, {"after": [1]}, {"max_bytes": 10}, {"session": ""}):
        with pytest.raises(InvalidRequest):
            pair.source.pull(good | bad)


async def test_throttle_holds_the_rate(autojump_clock: trio.testing.MockClock) -> None:
    throttle = Throttle(1.0)  # 1 MiB/s
    start = trio.current_time()
    for _ in range(10):
        await throttle.consume(512 * 1024)
    assert trio.current_time() - start >= 5.0
    free = Throttle(0)
    start = trio.current_time()
    await free.consume(1 << 30)
    assert trio.current_time() == start
