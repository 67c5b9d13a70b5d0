"""Multi-node behaviour on real ringd processes: quorum arithmetic, failure detection, placement,
schema convergence, datacenters and clock skew (issue: cluster)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from bisect import bisect_left
from collections.abc import Callable

import pytest
from nodes import Ringd, statuses, wait_all_up, wait_for, wait_status
from nodes import create_keyspace as nodes_create_keyspace

from ringctl.client import Client
from ringd.dht.murmur3 import token_for
from ringd.protocol.errors import Unavailable

RF3 = {"class": "SimpleStrategy", "replication_factor": 3}


def create_keyspace(
    node: Ringd, name: str, replication: dict, nodes: list[Ringd], **options: object
) -> None:
    nodes_create_keyspace(nodes, name, replication, via=node, **options)


def local_value(node: Ringd, ks: str, key: str) -> object:
    """What ``node``'s own replica holds (a ONE read coordinated by a replica reads itself)."""
    with node.client() as db:
        row = db.get(ks, key, consistency="ONE")
    return None if row is None else row["columns"]


def test_quorum_arithmetic_with_nodes_stopped(cluster_factory: Callable[..., list[Ringd]]) -> None:
    nodes = cluster_factory(3)
    create_keyspace(nodes[0], "q", RF3, nodes)
    coordinator = nodes[0]
    with coordinator.client() as db:
        db.put("q", "seed", {"v": 0}, consistency="ALL")
    for stopped in range(3):
        if stopped:
            victim = nodes[3 - stopped]
            victim.stop()
            wait_status(coordinator, victim.address, "DOWN")
        alive = 3 - stopped
        with coordinator.client() as db:
            for w, r in itertools.product(range(1, 4), repeat=2):
                key = f"k-{stopped}-{w}-{r}"
                if w <= alive:
                    assert db.put("q", key, {"w": w}, w=w)["acks"] >= w
                else:
                    with pytest.raises(Unavailable) as info:
                        db.put("q", key, {"w": w}, w=w)
                    assert info.value.details["required"] == w
                    assert info.value.details["alive"] == alive
                    # nothing was written anywhere
                    for n in nodes:
                        if n.running:
                            assert local_value(n, "q", key) is None
                if r <= alive:
                    assert db.get("q", "seed", r=r)["columns"] == {"v": 0}
                else:
                    with pytest.raises(Unavailable) as info:
                        db.get("q", "seed", r=r)
                    assert (info.value.details["required"], info.value.details["alive"]) == (
                        r,
                        alive,
                    )
    # through the command line: exit 3 and a one-line message naming the counts
    env = {**os.environ, "RINGCTL_HOST": coordinator.address}
    result = subprocess.run(
        [sys.executable, "-m", "ringctl", "put", "q", "x", "1", "-c", "QUORUM"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 3
    assert "2 replicas required but only 1 alive" in result.stderr


def test_quorum_read_sees_write_made_while_a_replica_was_down(
    cluster_factory: Callable[..., list[Ringd]],
) -> None:
    nodes = cluster_factory(3)
    create_keyspace(nodes[0], "q", RF3, nodes, hinted_handoff=False)  # C stays stale
    with nodes[0].client() as db:
        db.put("q", "user:1", {"name": "Bob"}, w=3)
    nodes[2].stop()
    wait_status(nodes[0], nodes[2].address, "DOWN")
    with nodes[0].client() as db:
        db.put("q", "user:1", {"name": "Alice"}, w=2)
    nodes[2].start()
    wait_all_up(nodes)
    assert local_value(nodes[2], "q", "user:1") == {"name": "Bob"}  # stale, as in the seed text
    for n in nodes:
        with n.client() as db:
            assert db.get("q", "user:1", r=2)["columns"] == {"name": "Alice"}


def test_failure_detection_within_ten_seconds(cluster_factory: Callable[..., list[Ringd]]) -> None:
    nodes = cluster_factory(3)
    victim = nodes[1]
    victim.kill()
    start = time.monotonic()
    for observer in (nodes[0], nodes[2]):
        wait_status(observer, victim.address, "DOWN", timeout=10 - (time.monotonic() - start))
    victim.start()
    start = time.monotonic()
    for observer in (nodes[0], nodes[2]):
        wait_status(observer, victim.address, "UP", timeout=10 - (time.monotonic() - start))


def _replicas_from_ring(ring: list[dict], token: int, rf: int) -> list[str]:
    """SimpleStrategy computed here from the ring: walk clockwise from the key's token."""
    tokens = [t["token"] for t in ring]
    start = bisect_left(tokens, token) % len(tokens)
    out: list[str] = []
    for i in range(len(tokens)):
        address = ring[(start + i) % len(tokens)]["address"]
        if address not in out:
            out.append(address)
        if len(out) == rf:
            break
    return out


def test_getendpoints_agrees_with_the_ring(cluster_factory: Callable[..., list[Ringd]]) -> None:
    nodes = cluster_factory(3, num_tokens=4)
    create_keyspace(nodes[0], "p", {"class": "SimpleStrategy", "replication_factor": 2}, nodes)
    with nodes[1].client() as db:
        ring = db.admin("ring")["tokens"]
        assert len(ring) == 12
        for i in range(50):
            key = f"key-{i}"
            found = db.admin("getendpoints", keyspace="p", key=key)
            assert found["token"] == token_for(key.encode())
            assert found["endpoints"] == _replicas_from_ring(ring, found["token"], 2)
    env = {**os.environ, "RINGCTL_HOST": nodes[2].address}
    out = subprocess.run(
        [sys.executable, "-m", "ringctl", "getendpoints", "p", "key-7", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    data = json.loads(out.stdout)
    assert data["token"] == str(token_for(b"key-7"))  # tokens are strings in --json
    assert data["endpoints"] == _replicas_from_ring(ring, int(data["token"]), 2)


def test_keyspace_spreads_and_status_lists_every_node(
    cluster_factory: Callable[..., list[Ringd]],
) -> None:
    nodes = cluster_factory(3)
    create_keyspace(nodes[2], "spread", RF3, nodes)
    for n in nodes:
        with n.client() as db:
            db.put("spread", f"from-{n.port}", {"v": n.port}, consistency="ALL")
    with nodes[0].client() as db:
        status = db.admin("status")
        # schema versions travel by gossip: they converge within a few rounds
        wait_for(
            lambda: len(db.admin("describecluster")["schema_versions"]) == 1,
            10,
            "one schema version",
        )
    assert sorted(x["address"] for x in status["nodes"]) == sorted(n.address for n in nodes)
    for entry in status["nodes"]:
        assert set(entry) >= {
            "address",
            "dc",
            "rack",
            "host_id",
            "status",
            "state",
            "load",
            "tokens",
            "owns",
        }
        assert entry["status"] == "UP" and entry["state"] == "NORMAL"
        assert entry["owns"] == pytest.approx(1.0)


def test_two_datacenters(cluster_factory: Callable[..., list[Ringd]]) -> None:
    nodes = cluster_factory(4, dcs=["dc1", "dc1", "dc2", "dc2"])
    create_keyspace(
        nodes[0], "geo", {"class": "NetworkTopologyStrategy", "dc1": 2, "dc2": 2}, nodes
    )
    dc_of = {n.address: dc for n, dc in zip(nodes, ["dc1", "dc1", "dc2", "dc2"], strict=True)}
    with nodes[0].client() as db:
        for i in range(20):
            endpoints = db.admin("getendpoints", keyspace="geo", key=f"k{i}")["endpoints"]
            assert sorted(dc_of[e] for e in endpoints) == ["dc1", "dc1", "dc2", "dc2"]
    nodes[3].stop()
    wait_status(nodes[0], nodes[3].address, "DOWN")
    with nodes[0].client() as db:
        assert db.put("geo", "a", {"v": 1}, consistency="LOCAL_QUORUM")["acks"] >= 2
        assert db.put("geo", "b", {"v": 1}, consistency="QUORUM")["acks"] >= 3
        with pytest.raises(Unavailable) as info:
            db.put("geo", "c", {"v": 1}, consistency="EACH_QUORUM")
        assert (info.value.details["required"], info.value.details["alive"]) == (2, 1)
        assert db.get("geo", "a", consistency="LOCAL_QUORUM")["columns"] == {"v": 1}
        with pytest.raises(Unavailable):
            db.get("geo", "a", consistency="EACH_QUORUM")
    wait_status(nodes[2], nodes[3].address, "DOWN")
    with nodes[2].client() as db:  # dc2 has one live replica of its two
        with pytest.raises(Unavailable) as info:
            db.put("geo", "d", {"v": 1}, consistency="LOCAL_QUORUM")
        assert (info.value.details["required"], info.value.details["alive"]) == (2, 1)
        assert db.put("geo", "d", {"v": 1}, consistency="LOCAL_ONE")["acks"] >= 1


def test_a_lagging_clock_still_orders_writes_after_what_it_has_seen(
    ringd_factory: Callable[..., Ringd],
) -> None:
    from nodes import free_port

    ports = [free_port(), free_port()]
    seeds = [f"127.0.0.1:{ports[0]}"]
    # the HLC alone: the offset bound would refuse writes on two nodes 5 s apart
    ahead = ringd_factory("ahead", port=ports[0], seeds=seeds, max_clock_offset_ms=60000)
    behind = ringd_factory(
        "behind", port=ports[1], seeds=seeds, clock_offset_ms=-5000, max_clock_offset_ms=60000
    )
    wait_all_up([ahead, behind])
    create_keyspace(
        ahead, "clock", {"class": "SimpleStrategy", "replication_factor": 2}, [ahead, behind]
    )
    with Client(ahead.address) as a, Client(behind.address) as b:
        first = a.put("clock", "k", {"v": "first"}, consistency="ALL")["timestamp"]
        second = b.put("clock", "k", {"v": "second"}, consistency="ALL")["timestamp"]
        assert second > first
        assert a.get("clock", "k", consistency="ALL")["columns"] == {"v": "second"}
        assert b.get("clock", "k", consistency="ALL")["columns"] == {"v": "second"}


def test_dump_covers_every_row_once_across_the_cluster(
    cluster_factory: Callable[..., list[Ringd]],
) -> None:
    nodes = cluster_factory(3, num_tokens=8)
    create_keyspace(nodes[0], "d", {"class": "SimpleStrategy", "replication_factor": 2}, nodes)
    keys = [f"row{i}" for i in range(400)]
    with nodes[0].client() as db:
        for k in keys:
            db.put("d", k, {"k": k})
    env = {**os.environ, "RINGCTL_HOST": nodes[1].address}
    out = subprocess.run(
        [sys.executable, "-m", "ringctl", "dump", "d", "--page-size", "37", "-c", "QUORUM"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(r["key"] for r in rows) == sorted(keys)
    tokens = [token_for(r["key"].encode()) for r in rows]
    assert tokens == sorted(tokens)
    assert statuses(nodes[0])


def test_a_cleanly_stopped_node_is_down_at_once_and_back_on_restart(
    cluster_factory: Callable[..., list[Ringd]],
) -> None:
    nodes = cluster_factory(3)
    nodes[2].stop()  # SIGTERM: the node announces its shutdown through gossip
    for observer in nodes[:2]:
        took = wait_status(observer, nodes[2].address, "DOWN", timeout=10)
        assert took < 2.0, f"took {took:.1f}s: the shutdown announcement did not arrive"
    with nodes[0].client() as db:
        ring = db.admin("ring")["tokens"]
    assert {t["address"] for t in ring} == {n.address for n in nodes}  # still owns its tokens
    nodes[2].start()
    wait_all_up(nodes)


def test_keyspace_alter_and_drop_through_any_node_converge(
    cluster_factory: Callable[..., list[Ringd]],
) -> None:
    nodes = cluster_factory(3)
    create_keyspace(nodes[0], "life", {"class": "SimpleStrategy", "replication_factor": 1}, nodes)

    def settings(node: Ringd) -> dict | None:
        with node.client() as db:
            found = [k for k in db.keyspace_list()["keyspaces"] if k["name"] == "life"]
        return found[0] if found else None

    with nodes[1].client() as db:
        db.keyspace_alter("life", replication=RF3, gc_grace_seconds=60)
    wait_for(
        lambda: all(
            (s := settings(n))
            and s["replication"]["replication_factor"] == 3
            and s["gc_grace_seconds"] == 60
            for n in nodes
        ),
        10,
        "the altered keyspace on every node",
    )
    with nodes[0].client() as db:
        db.put("life", "k", {"v": 1}, consistency="ALL")  # rf=3 now: all three acknowledge
    with nodes[2].client() as db:
        db.keyspace_drop("life")
    wait_for(
        lambda: all(settings(n) is None for n in nodes), 10, "the keyspace gone from every node"
    )
    with nodes[0].client() as db:
        db.keyspace_create("life")  # a new keyspace of the same name starts empty
        assert db.get("life", "k", consistency="ONE") is None


def test_reads_go_to_another_replica_when_one_fails_before_it_is_known_down(
    cluster_factory: Callable[..., list[Ringd]],
) -> None:
    nodes = cluster_factory(3)
    create_keyspace(nodes[0], "spare", RF3, nodes)
    keys = [f"k{i}" for i in range(30)]
    with nodes[0].client() as db:
        for k in keys:
            db.put("spare", k, {"k": k}, consistency="ALL")
    nodes[2].kill()  # killed: its port refuses at once, but gossip still thinks it is up
    with nodes[0].client() as db:
        assert statuses(nodes[0])[nodes[2].address] == "UP"
        for k in keys:  # some of these plans pick node 3 for the digest: node 2 answers instead
            assert db.get("spare", k, consistency="QUORUM")["columns"] == {"k": k}
        assert db.admin("proxyhistograms")["counters"]["read_timeout"] == 0
