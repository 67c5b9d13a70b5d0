"""The test_clock hook is bounded (a day either way) and reversible: a reset leaves no
timestamps in the future (docs/security.md)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from nodes import Ringd

from ringd.protocol.errors import ProtocolError

HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def test_clock_offset_is_bounded_and_reversible(ringd_factory: Callable[..., Ringd]) -> None:
    node = ringd_factory(enable_test_hooks=True)
    with node.client() as db:
        db.keyspace_create("demo")
        for offset in (DAY_MS + 1, -DAY_MS - 1, 10 * 365 * DAY_MS):
            with pytest.raises(ProtocolError, match="one day"):
                db.admin("test_clock", offset_ms=offset)
        assert db.admin("info")["clock_offset_ms"] == 0

        db.admin("test_clock", offset_ms=HOUR_MS)
        db.put("demo", b"k", {"v": b"ahead"})  # stamped an hour ahead
        ahead = db.admin("info")
        assert ahead["clock_offset_ms"] == HOUR_MS
        assert ahead["hlc_us"] > (time.time() + 3000) * 1e6

        db.admin("test_clock", offset_ms=0)
        back = db.admin("info")
        assert back["clock_offset_ms"] == 0
        assert abs(back["hlc_us"] - time.time() * 1e6) < 60e6, back["hlc_us"]
        db.admin("test_clock", offset_ms=-DAY_MS)
        db.admin("test_clock", offset_ms=DAY_MS)
        db.admin("test_clock", offset_ms=0)
        assert abs(db.admin("info")["hlc_us"] - time.time() * 1e6) < 60e6
