"""Repair on real ringd processes: Merkle-tree repair (the Cassandra repair dtest), zombies and
gc_grace, blocking read repair, -pr / -st -et / a participant killed, background anti-entropy
(issue 11; docs/repair.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from nodes import Ringd, wait_all_up, wait_for

RF3 = {"class": "SimpleStrategy", "replication_factor": 3}


def ringctl(node: Ringd, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RINGCTL_HOST": node.address}
    return subprocess.run(
        [sys.executable, "-m", "ringctl", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def create(nodes: list[Ringd], name: str, **options: Any) -> None:
    with nodes[0].client() as db:
        db.keyspace_create(name, replication=RF3, hinted_handoff=False, **options)

    def everywhere() -> bool:
        for n in nodes:
            if n.running:
                with n.client() as db:
                    if name not in [k["name"] for k in db.keyspace_list()["keyspaces"]]:
                        return False
        return True

    wait_for(everywhere, 10, f"keyspace {name} on every node")


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
