"""What a replica checks of a peer's mutation before it applies it: every timestamp (cells, row
tombstone, the sender's clock) non-negative and at most ``max_future_timestamp_ms`` ahead."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringd.db.cells import Cell, Row, RowTombstone
from ringd.db.engine import EngineOptions, StorageEngine
from ringd.protocol.errors import InvalidRequest
from ringd.schema import Schema
from ringd.service.hlc import HybridClock
from ringd.service.messages import MutateRequest
from ringd.service.replica import Replica

NOW = 1_000_000_000  # µs: the replica's wall clock reads 1000 s
LIMIT = NOW + 60_000_000  # max_future_timestamp_ms = 60 s


def cells(*stamps: int) -> Row:
    return Row({f"c{i}": Cell(ts, b"x") for i, ts in enumerate(stamps)})


@pytest.mark.parametrize(
    ("row", "hlc", "refusal"),
    [
        (cells(NOW), NOW, None),
        (cells(0, LIMIT), LIMIT, None),  # the bounds themselves
        (Row({}, RowTombstone(LIMIT, 5)), 0, None),
        (cells(NOW, LIMIT + 1), NOW, "ahead of this node's clock"),
        (cells(LIMIT + 1, 5), NOW, "ahead of this node's clock"),
        (Row({}, RowTombstone(LIMIT + 1, 5)), NOW, "ahead of this node's clock"),
        (cells(NOW), LIMIT + 1, "ahead of this node's clock"),
        (cells(NOW, -1), NOW, "timestamps must be non-negative"),
        (cells(-1, NOW), 0, "timestamps must be non-negative"),
        (Row({}, RowTombstone(-1, 5)), NOW, "timestamps must be non-negative"),
    ],
)
async def test_a_peer_mutations_timestamps_are_checked(
    tmp_path: Path, row: Row, hlc: int, refusal: str | None
) -> None:
    engine = StorageEngine.open(tmp_path / "data", EngineOptions(commitlog_sync="periodic"))
    try:
        clock = HybridClock(wall=lambda: NOW / 1e6)
        replica = Replica(
            engine, Schema(tmp_path / "schema"), clock, max_row_bytes=1 << 20, page_bytes=1 << 20
        )
        req = MutateRequest("ks", b"k", row, hlc)
        if refusal is None:
            replica.check_timestamps(req)
        else:
            with pytest.raises(InvalidRequest, match=refusal):
                replica.check_timestamps(req)
    finally:
        await engine.close()
