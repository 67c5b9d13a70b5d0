"""Repair on real ringd processes: Merkle-tree repair (the Cassandra repair dtest), zombies and
gc_grace, blocking read repair, -pr / -st -et / a participant killed, background anti-entropy
(issue 11; docs/repair.md)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from nodes import Ringd, create_keyspace, ringctl, wait_all_up, wait_for

from ringd.protocol.errors import ProtocolError

RF3 = {"class": "SimpleStrategy", "replication_factor": 3}


def create(nodes: list[Ringd], name: str, **options: Any) -> None:
    create_keyspace(nodes, name, RF3, hinted_handoff=False, **options)


def local_value(node: Ringd, ks: str, key: str) -> Any:
    """What ``node``'s own replica holds (RF 3 on 3 nodes: a ONE read there reads itself)."""
    with node.client() as db:
        row = db.get(ks, key, consistency="ONE")
    return None if row is None else row["columns"]


def repair(node: Ringd, timeout: float = 120.0, **args: Any) -> dict[str, Any]:
    """Start a repair session on ``node`` and wait until it ends."""
    with node.client(timeout=30) as db:
        session = db.admin("repair_start", **args)
        deadline = time.monotonic() + timeout
        while session["state"] == "RUNNING":
            assert time.monotonic() < deadline, f"repair session still running: {session}"
            time.sleep(0.1)
            session = db.admin("repair_session", id=session["id"])
    return session


def validations(node: Ringd) -> int:
    with node.client() as db:
        return int(db.admin("repair_state")["validations"])


def pair(a: Ringd, b: Ringd) -> str:
    x, y = sorted([a.address, b.address])
    return f"{x} <-> {y}"


def test_the_cassandra_repair_dtest(cluster_factory: Callable[..., list[Ringd]]) -> None:
    nodes = cluster_factory(3, commitlog_sync="batch")
    n1, n2, n3 = nodes
    create(nodes, "rep")
    with n1.client() as db:
        for i in range(1000):
            db.put("rep", f"k{i}", {"v": i}, consistency="ALL")
    assert n3.stop() == 0
    with n1.client() as db:
        db.put("rep", "lonely", {"v": -1}, w=2)
    n3.start()
    wait_all_up(nodes)
    with n1.client() as db:
        for i in range(1000, 2000):
            db.put("rep", f"k{i}", {"v": i}, consistency="ALL")
    assert local_value(n3, "rep", "lonely") is None

    preview = ringctl(n1, "repair", "rep", "--preview", "--json")
    assert preview.returncode == 0, preview.stderr
    p = json.loads(preview.stdout)
    assert p["state"] == "COMPLETED" and p["preview"] is True
    assert p["keyspaces"]["rep"]["out_of_sync"] == {pair(n1, n3): 1, pair(n2, n3): 1}
    assert p["rows_streamed"] == 1
    assert local_value(n3, "rep", "lonely") is None  # the preview changed nothing

    first = repair(n1, keyspace="rep")
    assert first["state"] == "COMPLETED", first
    assert first["rows_streamed"] == 1
    assert local_value(n3, "rep", "lonely") == {"v": -1}

    second = repair(n1, keyspace="rep")
    assert second["state"] == "COMPLETED" and second["rows_streamed"] == 0
    assert second["keyspaces"]["rep"]["out_of_sync"] == {}

    # node 3 alone holds all 2,001 rows
    n1.stop()
    n2.stop()
    with n3.client() as db:
        for i in range(2000):
            assert db.get("rep", f"k{i}", consistency="ONE")["columns"] == {"v": i}
        assert db.get("rep", "lonely", consistency="ONE")["columns"] == {"v": -1}


def counters(node: Ringd) -> dict[str, int]:
    with node.client() as db:
        return dict(db.admin("proxyhistograms")["counters"])


def write_missing_on(coordinator: Ringd, stale: Ringd, ks: str, key: str, value: Any) -> None:
    """Write ``key`` at QUORUM through ``coordinator`` with its mutations to ``stale`` dropped."""
    with coordinator.client() as db:
        db.admin("test_filter", action="drop", to=[stale.address], verbs=["mutate"])
        try:
            db.put(ks, key, value, consistency="QUORUM")
        finally:
            db.admin("test_filter", action="clear")


@pytest.mark.parametrize("mode", ["BLOCKING", "none"])
def test_read_repair(cluster_factory: Callable[..., list[Ringd]], mode: str) -> None:
    nodes = cluster_factory(3)
    n1, n2, n3 = nodes
    create(nodes, "rr", read_repair=mode)
    with n1.client() as db:
        assert db.keyspace_list()["keyspaces"][0]["read_repair"] == mode.upper()
    write_missing_on(n1, n3, "rr", "k", {"v": 1})
    assert local_value(n3, "rr", "k") is None
    before = counters(n3)
    with n3.client() as db:  # n3 coordinates, so its own stale replica is contacted
        assert db.get("rr", "k", consistency="QUORUM")["columns"] == {"v": 1}
    after = counters(n3)
    assert after["read_repair_reconcile"] == before["read_repair_reconcile"] + 1
    repaired = after["read_repair_blocking"] - before["read_repair_blocking"]
    n1.stop()
    n2.stop()
    if mode == "BLOCKING":
        assert repaired == 1
        assert local_value(n3, "rr", "k") == {"v": 1}
    else:
        assert repaired == 0
        assert local_value(n3, "rr", "k") is None


def start_refused(node: Ringd) -> str:
    """Start ``node`` expecting it to refuse; its one-line reason."""
    node.start(wait=False)
    assert node.proc is not None
    assert node.proc.wait(30) == 1, node.log()
    return node.log().strip().splitlines()[-1]


def test_deleted_data_stays_deleted_past_gc_grace(
    cluster_factory: Callable[..., list[Ringd]],
) -> None:
    nodes = cluster_factory(3, commitlog_sync="batch")
    n1, n2, n3 = nodes
    create(nodes, "zombie", gc_grace_seconds=10)
    with n1.client() as db:
        db.put("zombie", "z", {"v": 1}, consistency="ALL")
    # with repair: node 3 misses the delete, comes back within gc_grace and is repaired
    assert n3.stop() == 0
    with n1.client() as db:
        db.delete("zombie", "z", consistency="QUORUM")
    n3.start()
    wait_all_up(nodes)
    assert local_value(n3, "zombie", "z") == {"v": 1}
    session = repair(n1, keyspace="zombie")
    repaired = time.time()
    assert session["state"] == "COMPLETED" and session["rows_streamed"] == 1
    warning = "keyspace zombie has ranges not repaired within gc_grace (10 s)"
    assert warning not in ringctl(n1, "status").stderr
    # the repair ended after the delete: once gc_grace has passed since the repair, both the
    # warning is due and the tombstone may be purged
    wait_for(lambda: time.time() > repaired + 11, 30, "gc_grace to pass")
    # a repair is due again: status and repair status say so
    assert warning in ringctl(n1, "status").stderr
    stale = ringctl(n1, "repair", "status")
    assert (
        stale.returncode == 1 and "zombie has ranges not repaired within gc_grace" in stale.stderr
    )
    for n in nodes:
        with n.client(timeout=60) as db:
            db.admin("flush", keyspace="zombie")
            db.admin("compact", keyspace="zombie")
    for n in nodes:
        assert local_value(n, "zombie", "z") is None
    with n2.client() as db:
        assert db.get("zombie", "z", consistency="ALL") is None

    # without repair: node 3 misses a delete and stays away past gc_grace: refused at start
    with n1.client() as db:
        db.put("zombie", "y", {"v": 2}, consistency="ALL")
    assert n3.stop() == 0
    stopped = time.time()
    with n1.client() as db:
        db.delete("zombie", "y", consistency="QUORUM")
    wait_for(lambda: time.time() > stopped + 11, 20, "gc_grace to pass")
    reason = start_refused(n3)
    assert "longer than gc_grace_seconds (10) of keyspace zombie" in reason, reason
    assert "wipe the data directory and rejoin" in reason and "--accept-stale-data" in reason
    n3.flags["accept_stale_data"] = True
    n3.start()  # the operator's override


def test_primary_range_repair_on_every_node_repairs_each_range_once(
    cluster_factory: Callable[..., list[Ringd]],
) -> None:
    nodes = cluster_factory(3)
    create(nodes, "pr")
    with nodes[0].client() as db:
        for i in range(50):
            db.put("pr", f"k{i}", {"v": i}, consistency="ALL")
        ring = db.admin("describering", keyspace="pr")["ranges"]
    before = sum(validations(n) for n in nodes)
    repaired: list[tuple[str, str]] = []
    for n in nodes:
        session = repair(n, keyspace="pr", primary_range=True)
        assert session["state"] == "COMPLETED", session
        repaired += [tuple(r) for r in session["keyspaces"]["pr"]["ranges"]]
    assert sorted(repaired) == sorted((str(r["start_token"]), str(r["end_token"])) for r in ring)
    assert len(set(repaired)) == len(repaired)
    assert sum(validations(n) for n in nodes) - before == 3 * len(ring)


def test_subrange_repair_validates_only_that_ranges_replicas(
    cluster_factory: Callable[..., list[Ringd]],
) -> None:
    nodes = cluster_factory(4)
    with nodes[0].client() as db:
        db.keyspace_create("sub", replication={"class": "SimpleStrategy", "replication_factor": 2})
        ring = db.admin("describering", keyspace="sub")["ranges"]
    wait_for(
        lambda: all(
            "sub" in [k["name"] for k in n.client().keyspace_list()["keyspaces"]] for n in nodes
        ),
        10,
        "keyspace everywhere",
    )
    rng = next(
        r
        for r in ring
        if nodes[0].address in r["endpoints"] and r["end_token"] - r["start_token"] > 10
    )
    st, et = rng["start_token"] + 1, rng["end_token"] - 1
    before = {n.address: validations(n) for n in nodes}
    session = repair(nodes[0], keyspace="sub", start_token=st, end_token=et)
    assert session["state"] == "COMPLETED", session
    assert session["ranges_total"] == 1
    assert session["keyspaces"]["sub"]["ranges"] == [[str(st), str(et)]]
    changed = {n.address for n in nodes if validations(n) != before[n.address]}
    assert changed == set(rng["endpoints"])
    assert all(validations(n) == before[n.address] + 1 for n in nodes if n.address in changed)


def test_a_participant_killed_mid_repair_fails_the_session_then_repair_works(
    cluster_factory: Callable[..., list[Ringd]],
) -> None:
    nodes = cluster_factory(3)
    n1, n2, n3 = nodes
    create(nodes, "kill")
    with n1.client() as db:
        db.put("kill", "k", {"v": 1}, consistency="ALL")
        # hold the validation requests to node 3 so that the session is running when it dies
        db.admin(
            "test_filter", action="delay", to=[n3.address], verbs=["repair_validate"], delay_ms=2000
        )
        session = db.admin("repair_start", keyspace="kill")
        assert session["state"] == "RUNNING"
    n3.kill()
    with n1.client() as db:
        done = wait_for(
            lambda: (s := db.admin("repair_session", id=session["id"]))["state"] != "RUNNING" and s,
            60,
            "the session to end",
        )
        db.admin("test_filter", action="clear")
    assert done["state"] == "FAILED", done
    assert n3.address in done["error"], done["error"]
    n3.start()
    wait_all_up(nodes)
    again = repair(n1, keyspace="kill")
    assert again["state"] == "COMPLETED", again.get("error")
    listed = ringctl(n1, "repair_admin", "list", "--json")
    states = {s["id"]: s["state"] for s in json.loads(listed.stdout)["sessions"]}
    assert states[session["id"]] == "FAILED" and states[again["id"]] == "COMPLETED"


def test_background_anti_entropy_converges_replicas(
    cluster_factory: Callable[..., list[Ringd]],
) -> None:
    nodes = cluster_factory(3, anti_entropy=True, anti_entropy_interval_s=20)
    n1, n2, n3 = nodes
    create(nodes, "ae")
    for i in range(20):
        write_missing_on(n1, n3, "ae", f"k{i}", {"v": i})
    assert all(local_value(n3, "ae", f"k{i}") is None for i in range(20))
    wait_for(
        lambda: all(local_value(n3, "ae", f"k{i}") == {"v": i} for i in range(20)),
        60,
        "anti-entropy to bring node 3 up to date",
    )

    def status() -> dict[str, Any]:
        return dict(json.loads(ringctl(n3, "repair", "status", "--json").stdout))

    state = wait_for(
        lambda: (s := status())["keyspaces"][0]["never_repaired"] == 0 and s,
        60,
        "every range of node 3 repaired once",
    )
    assert state["anti_entropy"]["enabled"] is True
    assert state["anti_entropy"]["pieces_done"] > 0
    ae = state["keyspaces"][0]
    assert ae["keyspace"] == "ae" and ae["ranges"] > 0 and ae["oldest_repair"] is not None


def test_a_read_repair_write_that_times_out_fails_the_read(
    cluster_factory: Callable[..., list[Ringd]],
) -> None:
    nodes = cluster_factory(3, read_timeout_ms=1000)
    n1, n2, _ = nodes
    create(nodes, "rt")
    write_missing_on(n1, n2, "rt", "k", {"v": 1})
    before = counters(n1)
    with n1.client() as db:
        db.admin("test_filter", action="drop", to=[n2.address], verbs=["mutate"])
        with pytest.raises(ProtocolError) as err:
            db.get("rt", "k", consistency="ALL")
        assert err.value.code == "READ_TIMEOUT"
        assert counters(n1)["read_repair_timeout"] == before["read_repair_timeout"] + 1
        db.admin("test_filter", action="clear")
        assert db.get("rt", "k", consistency="ALL")["columns"] == {"v": 1}
    assert local_value(n2, "rt", "k") == {"v": 1}
