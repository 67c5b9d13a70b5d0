"""Clock skew on real processes: a session's writes stay ordered through coordinators whose
clocks disagree (``session_us``), and a node whose clock is beyond ``max_clock_offset_ms`` stops
coordinating writes until it is back (docs/consistency.md)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from nodes import Ringd, wait_for

from ringctl.client import Client
from ringd.protocol.errors import ErrorCode, ProtocolError

PAIRS = 300
RF3 = {"class": "SimpleStrategy", "replication_factor": 3}


def lost_pairs(first: Client, second: Client, reader: Client, prefix: str, cl: str) -> int:
    """One session writes v=1 through ``first`` then v=2 through ``second`` on fresh keys, and
    reads each at ALL: how many of the pairs ended with the earlier value."""
    clients = (first, second, reader)
    lost = 0
    for i in range(PAIRS):
        key = f"{prefix}-{i}"
        for db, value in ((first, 1), (second, 2)):
            db.session_us = max(c.session_us for c in clients)
            db.put("demo", key, {"v": value}, consistency=cl)
        reader.session_us = max(c.session_us for c in clients)
        row = reader.get("demo", key, consistency="ALL")
        lost += row["columns"]["v"] != 2
    return lost


def set_offset(node: Ringd, offset_ms: int) -> None:
    with node.client() as db:
        db.admin("test_clock", offset_ms=offset_ms)


@pytest.mark.parametrize("cl", ["ONE", "QUORUM"])
def test_a_session_overwrite_wins_whatever_the_coordinators_clocks(
    cluster_factory: Callable[..., list[Ringd]], cl: str
) -> None:
    # the offset bound would refuse writes on the skewed node: this tests sessions alone
    nodes = cluster_factory(3, max_clock_offset_ms=60_000)
    with nodes[0].client() as db:
        db.keyspace_create("demo", replication=RF3)
    skewed, other = nodes[2], nodes[0]
    # the second coordinator behind the first is where LWW loses without sessions; the
    # offsets ahead come last, since every node's hybrid clock keeps what it saw of them
    cases = [
        ("second-behind", other, skewed, -3000),
        ("first-behind", skewed, other, -3000),
        ("first-ahead", skewed, other, 3000),
        ("second-ahead", other, skewed, 3000),
    ]
    lost: dict[str, int] = {}
    with other.client() as a, skewed.client() as b, nodes[1].client() as reader:
        by_node = {other.address: a, skewed.address: b}
        for name, first, second, offset in cases:
            set_offset(skewed, offset)
            try:
                lost[name] = lost_pairs(
                    by_node[first.address], by_node[second.address], reader, name, cl
                )
            finally:
                set_offset(skewed, 0)
    assert lost == dict.fromkeys(lost, 0), f"lost of {PAIRS} pairs at {cl}: {lost}"


def _put(node: Ringd, key: str, value: int) -> Any:
    with node.client(timeout=10) as db:
        return db.put("demo", key, {"v": value}, consistency="ONE")


def test_a_node_beyond_the_offset_bound_refuses_writes_until_it_is_back(
    cluster_factory: Callable[..., list[Ringd]],
) -> None:
    nodes = cluster_factory(3)
    with nodes[0].client() as db:
        db.keyspace_create("demo", replication=RF3)
        _put(nodes[0], "before", 1)
    skewed = nodes[2]
    set_offset(skewed, 2000)

    def refused() -> Any:
        try:
            _put(skewed, "k", 1)
        except ProtocolError as exc:
            if exc.code == ErrorCode.UNAVAILABLE:
                return exc
            raise
        return None

    start = time.monotonic()
    exc = wait_for(refused, 30, "the skewed node to refuse writes")
    took = time.monotonic() - start
    assert "clock" in exc.message and "limit 500 ms" in exc.message, exc.message
    assert 1500 <= exc.details["clock_offset_ms"] <= 2500, exc.details
    assert exc.details["max_clock_offset_ms"] == 500
    print(f"refused after {took:.1f} s: {exc.message}")

    # the others keep coordinating writes; the skewed node still serves reads and replicates
    for i, n in enumerate(nodes[:2]):
        assert _put(n, f"other-{i}", i)["acks"] >= 1
    with skewed.client() as db:
        assert db.get("demo", "other-0", consistency="ALL")["columns"] == {"v": 0}
        info = db.admin("info")
        assert info["writes_refused_for_clock"] is True
        assert info["measured_offset_ms"] >= 1500
        assert db.admin("proxyhistograms")["counters"]["write_clock_refused"] >= 1
        assert db.admin("proxyhistograms")["counters"]["clock_offset_exceeded"] == 1

    # every node's status shows the offsets, as each node gossips its own
    def offsets_shown() -> bool:
        with nodes[0].client() as db:
            rows = {n["address"]: n["clock_offset_ms"] for n in db.admin("status")["nodes"]}
        return rows[skewed.address] >= 1500 and all(abs(rows[n.address]) < 500 for n in nodes[:2])

    wait_for(offsets_shown, 30, "status to show the skewed node's offset")

    set_offset(skewed, 0)
    wait_for(lambda: _put(skewed, "k", 2), 30, "the node to coordinate writes again")
    assert "back within 500 ms" in skewed.log()
    assert skewed.log().count("refusing to coordinate writes") == 1


def _error(call: Callable[[], Any]) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        call()
    return info.value


def test_session_us_is_observed_before_stamping_and_checked(node: Ringd) -> None:
    with node.client() as db:
        now_us = db.ping()["time_us"]
        db.session_us = now_us + 10_000_000  # 10 s ahead: within the hybrid clock's bound
        assert db.put("demo", "k", {"v": 1})["timestamp"] > now_us + 10_000_000
        for bad in (-1, 1 << 63, "soon", 1.5):
            db.session_us = bad  # type: ignore[assignment]
            exc = _error(lambda: db.put("demo", "k", {"v": 2}))
            assert exc.code == ErrorCode.INVALID and "session_us" in exc.message, exc.message
            exc = _error(lambda: db.get("demo", "k"))
            assert exc.code == ErrorCode.INVALID, exc.message

        # beyond the bound: a write the node would stamp is refused, nothing is written
        far = db.ping()["time_us"] + 120_000_000
        db.session_us = far
        exc = _error(lambda: db.put("demo", "k", {"v": 3}))
        assert exc.code == ErrorCode.INVALID
        assert exc.message.startswith("session timestamp is 1") and "limit 60000 ms" in exc.message
        assert exc.details["session_us"] == far
        exc = _error(lambda: db.delete("demo", "k"))
        assert exc.code == ErrorCode.INVALID
        # ... but a read, or a write with its own timestamp, goes ahead without moving the clock
        db.session_us = far
        assert db.get("demo", "k")["columns"] == {"v": 1}
        db.session_us = far
        assert db.put("demo", "k2", {"v": 1}, timestamp=5)["timestamp"] == 5
        assert db.ping()["time_us"] < far - 60_000_000
