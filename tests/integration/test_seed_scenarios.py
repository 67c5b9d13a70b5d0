"""The scenarios of the seed text (leaderless replication and quorums), each on a real 3-node
cluster. The keyspace keeps no hints here, so that a replica that missed a write stays stale as
the text describes; hinted handoff and sloppy quorum have their own scenarios in test_hints.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from nodes import Ringd, wait_all_up, wait_for, wait_status

from ringd.protocol.errors import Unavailable

RF3 = {"class": "SimpleStrategy", "replication_factor": 3}


@pytest.fixture
def abc(cluster_factory: Callable[..., list[Ringd]]) -> list[Ringd]:
    """Nodes A, B, C, all replicas of keyspace ``users`` (n=3), which keeps no hints."""
    nodes = cluster_factory(3)
    with nodes[0].client() as db:
        db.keyspace_create("users", replication=RF3, hinted_handoff=False)
    for n in nodes:
        wait_for(lambda n=n: _has_keyspace(n), 10, "keyspace users everywhere")
    return nodes


def _has_keyspace(node: Ringd) -> bool:
    with node.client() as db:
        return any(k["name"] == "users" for k in db.keyspace_list()["keyspaces"])


def replica_value(node: Ringd, key: str) -> object:
    """What this node's own replica holds (a ONE read coordinated by a replica reads itself)."""
    with node.client() as db:
        row = db.get("users", key, consistency="ONE")
    return None if row is None else row["columns"]


def test_write_succeeds_with_two_of_three_when_one_times_out(abc: list[Ringd]) -> None:
    a, b, c = abc
    with a.client() as db:
        # Node C "fails (network timeout)": A's messages to C are lost
        db.admin("test_filter", action="drop", to=[c.address], verbs=["mutate"])
        result = db.put("users", "1", {"name": "Alice"}, w=2)
        assert result["acks"] == 2
        assert db.admin("test_filter", action="list")["dropped"] >= 1
        db.admin("test_filter", action="clear")
    assert replica_value(a, "1") == {"name": "Alice"}
    assert replica_value(b, "1") == {"name": "Alice"}
    assert replica_value(c, "1") is None  # C missed the write


def test_read_picks_the_latest_version_among_replicas(abc: list[Ringd]) -> None:
    a, b, c = abc
    with a.client() as db:
        db.put("users", "1", {"name": "Bob"}, consistency="ALL")  # version 3 everywhere
        db.admin("test_filter", action="drop", to=[c.address], verbs=["mutate"])
        db.put("users", "1", {"name": "Alice"}, w=2)  # version 5 on A and B only
        db.admin("test_filter", action="clear")
    assert replica_value(c, "1") == {"name": "Bob"}  # stale
    for coordinator in abc:
        with coordinator.client() as db:
            assert db.get("users", "1", r=3)["columns"] == {"name": "Alice"}
            assert db.get("users", "1", r=2)["columns"] == {"name": "Alice"}


def test_w_plus_r_greater_than_n_always_sees_the_latest_write(abc: list[Ringd]) -> None:
    a, b, c = abc
    # w=2, r=2 and w=1, r=3: every read quorum overlaps every write quorum
    for i, (w, r) in enumerate([(2, 2), (1, 3), (3, 1)]):
        key = f"q{i}"
        with a.client() as db:
            db.put("users", key, {"v": "old"}, consistency="ALL")
            others = [n.address for n in abc if n is not a][: 3 - w]
            if others:
                db.admin("test_filter", action="drop", to=others, verbs=["mutate"])
            db.put("users", key, {"v": "new"}, w=w)
            db.admin("test_filter", action="clear")
        for coordinator in abc:
            with coordinator.client() as db:
                assert db.get("users", key, r=r)["columns"] == {"v": "new"}, (w, r)


def test_w1_r1_can_read_stale_data(abc: list[Ringd]) -> None:
    a, b, c = abc
    with a.client() as db:
        db.put("users", "s", {"v": 4}, consistency="ALL")
        db.admin("test_filter", action="drop", to=[b.address, c.address], verbs=["mutate"])
        db.put("users", "s", {"v": 5}, w=1)
        db.admin("test_filter", action="clear")
    with c.client() as db:
        assert db.get("users", "s", r=1)["columns"] == {"v": 4}  # eventual consistency: stale
        assert db.get("users", "s", r=3)["columns"] == {"v": 5}


def test_strict_quorum_fails_when_a_replica_is_down(abc: list[Ringd]) -> None:
    a, b, c = abc
    c.stop()
    wait_status(a, c.address, "DOWN")
    with a.client() as db:
        assert db.put("users", "1", {"name": "Alice"}, w=2)["acks"] == 2
        with pytest.raises(Unavailable) as info:
            db.put("users", "1", {"name": "Alice"}, w=3)
        assert (info.value.details["required"], info.value.details["alive"]) == (3, 2)


def test_concurrent_writes_last_write_wins_on_every_replica(abc: list[Ringd]) -> None:
    a, b, c = abc
    with a.client() as db1, c.client() as db2:
        # Client 1 writes Alice (timestamp 100) to A and B; client 2 writes Bob (101) to B and C
        db1.admin("test_filter", action="drop", to=[c.address], verbs=["mutate"])
        db2.admin("test_filter", action="drop", to=[a.address], verbs=["mutate"])
        db1.put("users", "1", {"name": "Alice"}, timestamp=100, w=2)
        db2.put("users", "1", {"name": "Bob"}, timestamp=101, w=2)
        db1.admin("test_filter", action="clear")
        db2.admin("test_filter", action="clear")
    assert replica_value(a, "1") == {"name": "Alice"}
    assert replica_value(b, "1") == {"name": "Bob"}  # received both; 101 > 100
    assert replica_value(c, "1") == {"name": "Bob"}
    for coordinator in abc:
        with coordinator.client() as db:
            assert db.get("users", "1", consistency="ALL")["columns"] == {"name": "Bob"}


def test_tombstone_beats_the_stale_copy_of_a_returning_node(abc: list[Ringd]) -> None:
    a, b, c = abc
    with a.client() as db:
        db.put("users", "1", {"name": "Alice"}, consistency="ALL")
    c.stop()
    wait_status(a, c.address, "DOWN")
    with a.client() as db:
        db.delete("users", "1", w=2)  # C is down and misses the delete
    c.start()
    wait_all_up(abc)
    assert replica_value(c, "1") == {"name": "Alice"}  # C still has the zombie copy
    for coordinator in abc:
        with coordinator.client() as db:
            # the tombstone is newer, so the row stays deleted whichever replicas answer
            assert db.get("users", "1", consistency="ALL") is None
            assert db.get("users", "1", consistency="QUORUM") is None
