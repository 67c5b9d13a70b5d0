"""Rows stay readable: writes that would make a row larger than ``max_row_bytes`` are INVALID,
and scan pages are bounded in bytes as well as rows (issue 8, item 4)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from nodes import Ringd

from ringctl.client import Client
from ringd.protocol.errors import ErrorCode, ProtocolError

MB = 1000 * 1000


def test_write_that_would_overgrow_a_row_is_invalid(node: Ringd) -> None:
    with node.client(timeout=60) as db:
        # one put over the limit (8 MiB by default), though it fits in a frame
        with pytest.raises(ProtocolError) as big:
            db.put("demo", "big", {"a": "x" * (10 * MB)})
        assert big.value.code == ErrorCode.INVALID
        assert "max_row_bytes" in big.value.message
        assert db.get("demo", "big") is None
        # two legal puts whose merge would be over it: the second is refused, nothing written
        db.put("demo", "r", {"a": "x" * (5 * MB)})
        with pytest.raises(ProtocolError) as second:
            db.put("demo", "r", {"b": "y" * (5 * MB)})
        assert second.value.code == ErrorCode.INVALID
        assert "max_row_bytes" in second.value.message
        row = db.get("demo", "r")
        assert set(row["columns"]) == {"a"} and len(row["columns"]["a"]) == 5 * MB
        # overwriting the same column does not count the old value
        db.put("demo", "r", {"a": "z" * (5 * MB)})
        assert db.get("demo", "r")["columns"]["a"][0] == "z"


def test_dump_of_large_rows_returns_each_row_once(node: Ringd) -> None:
    keys = [f"big{i}" for i in range(6)]
    with node.client(timeout=60) as db:
        for key in keys:  # 6 x 3 MB: more than one 16 MiB frame
            db.put("demo", key, {"v": key * (3 * MB // len(key))})
        seen = _scan_all(db, "demo")
    assert sorted(seen) == sorted(keys)


def test_scan_pages_bounded_across_replicas(cluster_factory: Callable[..., list[Ringd]]) -> None:
    """Replica-side pages (scan_local) are bounded too, and the cursor stays correct."""
    nodes = cluster_factory(2, max_frame_bytes=1024 * 1024, max_row_bytes=300 * 1000)
    keys = [f"k{i}" for i in range(30)]
    with nodes[0].client(timeout=60) as db:
        db.keyspace_create("rf2", replication={"class": "SimpleStrategy", "replication_factor": 2})
        for key in keys:  # 30 x 200 kB = 6 MB, frames of 1 MiB
            db.put("rf2", key, {"v": "x" * (200 * 1000)}, consistency="ALL")
        seen = _scan_all(db, "rf2", consistency="ALL")
    assert sorted(seen) == sorted(keys)


def _scan_all(db: Client, keyspace: str, **kwargs: str) -> list[str]:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = db.scan(keyspace, cursor, limit=500, **kwargs)
        pages += 1
        seen += [r["key"] for r in page["rows"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert pages > 1, "expected the byte budget to split the scan into pages"
    assert len(seen) == len(set(seen)), json.dumps(seen)
    return seen
