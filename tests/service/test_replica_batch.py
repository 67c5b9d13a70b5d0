"""The replica's ``mutate_batch``: every item applied in one pass, one answer with each item's
result in order, given once every applied item is durable; a bad item fails only itself."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from ringd.db.cells import Cell, Row
from ringd.db.engine import EngineOptions, StorageEngine
from ringd.schema import Keyspace, Schema
from ringd.service.hlc import HybridClock
from ringd.service.messages import MutateRequest
from ringd.service.replica import Replica


def item(key: bytes, ts: int, *, ks: str = "ks", trace: bool = False) -> dict[str, Any]:
    row = Row({"v": Cell(ts, b"value of " + key)})
    return MutateRequest(ks, key, row, ts, trace).to_wire()


class Answers:
    """A batch's ``reply``: keeps what it gets; :meth:`wait` for the first answer."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._event = trio.Event()

    def __call__(self, value: Any) -> None:
        self.values.append(value)
        self._event.set()

    async def wait(self) -> list[Any]:
        with trio.fail_after(10):
            await self._event.wait()
        return self.values


async def replica_on(tmp_path: Path, sync: str) -> tuple[Replica, StorageEngine]:
    engine = StorageEngine.open(tmp_path / "data", EngineOptions(commitlog_sync=sync))
    schema = Schema(tmp_path / "schema")
    schema.merge([Keyspace("ks", timestamp=1)])
    replica = Replica(engine, schema, HybridClock(), max_row_bytes=200, page_bytes=1 << 20)
    return replica, engine


@pytest.fixture
async def batch_replica(tmp_path: Path) -> AsyncIterator[tuple[Replica, StorageEngine]]:
    replica, engine = await replica_on(tmp_path, "batch")
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        yield replica, engine
        nursery.cancel_scope.cancel()
    await engine.close()


async def test_one_answer_after_the_fsync_with_each_items_result_in_order(
    batch_replica: tuple[Replica, StorageEngine],
) -> None:
    replica, engine = batch_replica
    now = replica.clock.now()
    items: list[Any] = [
        item(b"a", now),
        item(b"b", now, ks="nope"),  # no such keyspace
        "not a map",
        item(b"c", now),
        {**item(b"d", now), "row": {"c": {"v": "not a cell"}}},  # malformed row
        {"ks": "ks", "key": b"e", "row": {"c": {"v": [now, b"x" * 300, None]}}},  # too large
        item(b"f", now),
    ]
    answers = Answers()

    def reply(value: Any) -> None:
        durable = engine.commitlog.synced_pos == engine.commitlog.position()
        readable = [engine.read("ks", k) is not None for k in (b"a", b"c", b"f")]
        answers((value, durable, readable))

    replica.mutate_batch(items, reply)
    assert answers.values == [] and engine.read("ks", b"a") is None  # nothing before the fsync
    [(value, durable, readable)] = await answers.wait()
    assert durable and readable == [True, True, True]
    results = value["results"]
    assert [sorted(r) for r in results] == [["hlc"], ["error"], ["error"]] * 2 + [["hlc"]]
    assert results[0]["hlc"] >= now  # the replica's clock when the batch was durable
    errors = [r["error"] for r in results if "error" in r]
    assert errors[0] == {
        "code": "INVALID",
        "message": "keyspace 'nope' does not exist on this replica",
    }
    assert errors[1]["message"] == "mutate_batch: item 2 is not a map"
    assert errors[2]["message"].startswith("malformed mutation:")
    assert "max_row_bytes" in errors[3]["message"]
    assert [e["code"] for e in errors] == ["INVALID"] * 4


async def test_a_traced_item_answers_with_its_events(
    batch_replica: tuple[Replica, StorageEngine],
) -> None:
    replica, _ = batch_replica
    now = replica.clock.now()
    answers = Answers()
    replica.mutate_batch([item(b"a", now), item(b"b", now, trace=True)], answers)
    plain, traced = (await answers.wait())[0]["results"]
    assert sorted(plain) == ["hlc"] and sorted(traced) == ["hlc", "trace"]
    events = [event[1] for event in traced["trace"]]
    assert events[0] == "received" and "apply" in events


async def test_a_bug_fails_its_item_only(
    batch_replica: tuple[Replica, StorageEngine],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    replica, engine = batch_replica
    real = replica.check_row_size

    def buggy(ks: str, key: bytes, row: Row, **kw: Any) -> bytes:
        if key == b"bad":
            raise KeyError("a bug")
        return real(ks, key, row, **kw)

    monkeypatch.setattr(replica, "check_row_size", buggy)
    now = replica.clock.now()
    answers = Answers()
    with caplog.at_level(logging.ERROR, logger="ringd.service.replica"):
        replica.mutate_batch([item(b"bad", now), item(b"good", now)], answers)
        bad, good = (await answers.wait())[0]["results"]
    assert bad["error"]["code"] == "SERVER_ERROR" and "KeyError" in bad["error"]["message"]
    assert sorted(good) == ["hlc"] and engine.read("ks", b"good") is not None
    assert "mutate_batch: item 0 failed" in caplog.text


async def test_periodic_mode_answers_once_at_once(tmp_path: Path) -> None:
    """In periodic mode every item is durable as it is applied: the batch still answers once,
    with every item, before ``mutate_batch`` returns."""
    replica, engine = await replica_on(tmp_path, "periodic")
    try:
        now = replica.clock.now()
        answers: list[Any] = []
        replica.mutate_batch([item(b"k%d" % i, now) for i in range(5)], answers.append)
        assert len(answers) == 1 and len(answers[0]["results"]) == 5
        assert all(sorted(r) == ["hlc"] for r in answers[0]["results"])
    finally:
        await engine.close()


async def test_an_items_second_answer_is_ignored(
    batch_replica: tuple[Replica, StorageEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug after an item already answered (its write applied, then something raises) cannot
    answer the item twice, and so cannot answer the batch before its other items."""
    replica, engine = batch_replica
    real = engine.apply_then

    def answers_then_raises(ks: str, key: bytes, row: Row, token: Any, done: Any, enc: Any) -> None:
        if key != b"first":
            real(ks, key, row, token, done, enc)
            return
        done(None)
        raise RuntimeError("a bug after the answer")

    monkeypatch.setattr(engine, "apply_then", answers_then_raises)
    now = replica.clock.now()
    answers = Answers()

    def reply(value: Any) -> None:
        answers((value, engine.read("ks", b"second") is not None))

    replica.mutate_batch([item(b"first", now), item(b"second", now)], reply)
    assert answers.values == []
    [(value, second_applied)] = await answers.wait()
    assert [sorted(r) for r in value["results"]] == [["hlc"], ["hlc"]] and second_applied
