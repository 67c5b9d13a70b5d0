"""Shared helpers for the storage engine tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from ringd.db.cells import Cell, Row
from ringd.db.engine import EngineOptions, StorageEngine


class FakeClock:
    """An injectable wall clock (seconds) for TTL expiry and gc_grace."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def eventually(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    with trio.fail_after(timeout):
        for _ in itertools.count():
            if condition():
                return
            await trio.sleep(0.01)


def put(ts: int, **cols: bytes) -> Row:
    return Row({name: Cell(ts, value) for name, value in cols.items()})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def open_engine(tmp_path: Path, clock: FakeClock) -> Callable[..., StorageEngine]:
    """``open_engine(**options)`` opens an engine on ``tmp_path / "data"`` with the fake clock
    and background compaction off unless asked for."""

    def opener(**kw: object) -> StorageEngine:
        kw.setdefault("clock", clock)
        kw.setdefault("background_compaction", False)
        return StorageEngine.open(tmp_path / "data", EngineOptions(**kw))  # type: ignore[arg-type]

    return opener
