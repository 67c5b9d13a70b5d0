"""``ringctl cluster`` end to end: real ringd processes on 127.0.0.N, driven through ringctl.

One 3-node cluster (keyspace ``demo`` with rf 3) is shared by the tests of this module; each
test leaves it as it found it (all nodes up, no filter rules, current). Every process is stopped
at the end, also when a test fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster.kit import Ringctl, cluster_port, ringd_processes
from nodes import wait_for

from ringctl.client import Client
from ringctl.cluster.manager import is_node_process


@pytest.fixture(scope="module")
def c3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A running 3-node cluster ``c3`` and the JSON ``cluster start`` printed."""
    ringctl = Ringctl(tmp_path_factory.mktemp("c3") / "home")
    port = cluster_port(3)
    try:
        started = ringctl.json(
            "cluster", "start", "--name", "c3", "-n", "3", "--port", str(port), "--rf", "3"
        )
        password = (ringctl.home / "clusters" / "c3" / "admin.password").read_text().strip()
        CREDS.update(user="admin", password=password)
        yield {"ringctl": ringctl, "port": port, "start": started}
    finally:
        ringctl.cleanup()


CREDS: dict[str, str] = {}  # the admin credentials 'cluster create' stored for c3


def _addresses(port: int, n: int) -> list[str]:
    return [f"127.0.0.{i}:{port}" for i in range(1, n + 1)]


def _sees(address: str) -> dict[str, str]:
    with Client(address, timeout=5, credentials=CREDS) as db:
        return {n["address"]: n["status"] for n in db.admin("status")["nodes"]}


def test_start_then_data_and_status_without_host(c3: dict[str, Any]) -> None:
    ringctl: Ringctl = c3["ringctl"]
    port = c3["port"]
    started = c3["start"]
    assert started["cluster"] == "c3" and started["created"] is True
    assert [r["result"] for r in started["started"]] == ["started"] * 3
    assert started["keyspace"]["replication"]["replication_factor"] == 3
    assert [n["status"] for n in started["status"]["nodes"]] == ["UP"] * 3

    put = ringctl.json("put", "demo", "k1", '{"name": "Alice"}')
    assert put["acks"] >= 2
    row = ringctl.json("get", "demo", "k1")
    assert row["columns"] == {"name": "Alice"}

    status = ringctl.json("status")
    assert sorted(n["address"] for n in status["nodes"]) == _addresses(port, 3)
    assert {(n["status"], n["state"]) for n in status["nodes"]} == {("UP", "NORMAL")}
    table = ringctl.ok("status").stdout
    assert table.count("UN ") == 3, table


def test_the_nodes_of_a_new_cluster_own_even_shares(ringctl: Ringctl) -> None:
    """Each new non-seed chose its tokens against the tokens of the nodes started before it
    (started together, every one would split the seed's ranges alike: 4 nodes came out with
    shares like 0.50, 0.10, 0.27, 0.13)."""
    port = cluster_port(4)
    ringctl.ok("cluster", "start", "-n", "4", "--port", str(port))
    status = ringctl.json("status")  # no keyspace given: the raw token share
    shares = [n["owns"] for n in status["nodes"]]
    assert len(shares) == 4 and max(shares) / min(shares) <= 1.3, shares


def test_cluster_status_json(c3: dict[str, Any]) -> None:
    ringctl: Ringctl = c3["ringctl"]
    data = ringctl.json("cluster", "status")
    assert data["name"] == "c3" and data["current"] is True
    nodes = data["nodes"]
    assert [n["address"] for n in nodes] == _addresses(c3["port"], 3)
    for n in nodes:
        assert n["process"] == "running" and n["status"] == "UP"
        assert isinstance(n["pid"], int)
        assert is_node_process(n["pid"], Path(n["data_dir"]))
        assert sorted(n["seen_up_by"]) == ["node1", "node2", "node3"]
    human = ringctl.ok("cluster", "status").stdout
    assert "node3" in human and "running" in human

    shown = ringctl.json("cluster", "node", "2", "show")
    assert shown["address"] == nodes[1]["address"] and shown["pid"] == nodes[1]["pid"]
    assert shown["info"]["test_hooks"] is True
    assert "listening on" in ringctl.ok("cluster", "node", "2", "logs", "-n", "200").stdout
    assert ringctl.ok("cluster", "logs").stdout.count("==> node") == 3


def test_pause_and_resume(c3: dict[str, Any]) -> None:
    ringctl: Ringctl = c3["ringctl"]
    n1, n2, n3 = _addresses(c3["port"], 3)
    ringctl.ok("cluster", "node", "2", "pause")
    try:
        wait_for(
            lambda: _sees(n1)[n2] == "DOWN" and _sees(n3)[n2] == "DOWN",
            30,
            "node1 and node3 to report node2 down",
        )
        data = ringctl.json("cluster", "status")
        assert data["nodes"][1]["process"] == "paused"
        assert data["nodes"][1]["status"] == "DOWN"
    finally:
        resumed = ringctl("cluster", "node", "2", "resume")
    assert resumed.returncode == 0, resumed.stderr
    # resume waits until every running node reports it up again
    assert _sees(n1)[n2] == "UP" and _sees(n3)[n2] == "UP"
    assert _sees(n2) == {n1: "UP", n2: "UP", n3: "UP"}


def _dropped(ringctl: Ringctl) -> dict[str, int]:
    return {n["node"]: n["dropped"] for n in ringctl.json("cluster", "filters")["nodes"]}


def test_partition_quorum_write_and_heal(c3: dict[str, Any]) -> None:
    ringctl: Ringctl = c3["ringctl"]
    n1, n2, n3 = _addresses(c3["port"], 3)
    before = _dropped(ringctl)
    result = ringctl.json("cluster", "partition", "1", "3")
    rules = {n["node"]: [r["to"] for r in n["rules"]] for n in result["nodes"]}
    assert rules == {"node1": [n3], "node3": [n1]}
    try:
        put = ringctl.json("put", "demo", "split", '{"v": 1}', "--host", n1, "-c", "QUORUM")
        assert put["acks"] == 2  # node1 itself and node2; node3 never hears of it
        # with rf 3 node3 is a replica and, as coordinator of a ONE read, reads only itself
        missing = ringctl("get", "demo", "split", "--host", n3, "-c", "ONE")
        assert missing.returncode == 1, missing.stdout + missing.stderr
        assert ringctl.json("get", "demo", "split", "--host", n2, "-c", "ONE")["columns"] == {
            "v": 1
        }
        after = _dropped(ringctl)
        assert after["node1"] > before["node1"] and after["node3"] > before["node3"]
        assert after["node2"] == before["node2"]
        status = ringctl.json("cluster", "status")["nodes"]
        assert status[0]["filters"]["dropped"] >= after["node1"]
        assert [r["to"] for r in status[0]["filters"]["rules"]] == [n3]
    finally:
        healed = ringctl("cluster", "heal", "--json")
    assert healed.returncode == 0, healed.stderr
    assert all(n["rules"] == [] for n in json.loads(healed.stdout)["nodes"])

    # traffic flows again: a write that needs every replica reaches node3
    def write_all() -> bool:
        done = ringctl("put", "demo", "healed", '{"v": 2}', "--host", n1, "-c", "ALL")
        return done.returncode == 0

    wait_for(write_all, 30, "a consistency ALL write through node1 after heal")
    row = ringctl.json("get", "demo", "healed", "--host", n3, "-c", "ONE")
    assert row["columns"] == {"v": 2}


def test_clock_offset(c3: dict[str, Any]) -> None:
    ringctl: Ringctl = c3["ringctl"]
    n3 = _addresses(c3["port"], 3)[2]
    result = ringctl.json("cluster", "node", "3", "clock-offset", "-1500")
    assert result["offset_ms"] == -1500
    try:
        with Client(n3, credentials=CREDS) as db:
            assert db.admin("info")["clock_offset_ms"] == -1500
    finally:
        ringctl.ok("cluster", "node", "3", "clock-offset", "0")


def test_two_clusters_side_by_side(c3: dict[str, Any]) -> None:
    ringctl: Ringctl = c3["ringctl"]
    n1 = _addresses(c3["port"], 3)[0]
    port = cluster_port(1, avoid=(c3["port"],))
    try:
        # a second cluster on the same addresses cannot start while c3 runs
        ringctl.ok("cluster", "create", "--name", "clash", "-n", "1", "--port", str(c3["port"]))
        clash = ringctl("cluster", "start", "--name", "clash")
        assert clash.returncode == 5
        assert "already in use by node1 of cluster 'c3'" in clash.stderr, clash.stderr
        ringctl.ok("cluster", "remove", "clash")

        ringctl.ok(
            "cluster", "start", "--name", "solo", "-n", "1", "--port", str(port), "--rf", "1"
        )
        listed = {c["name"]: c for c in ringctl.json("cluster", "list")["clusters"]}
        assert set(listed) == {"c3", "solo"}
        assert listed["solo"]["current"] and listed["solo"]["running"] == 1
        assert listed["c3"]["running"] == 3

        ringctl.ok("put", "demo", "where", '"solo"')  # no --host: the current cluster, solo
        assert ringctl.json("get", "demo", "where", "--host", f"127.0.0.1:{port}")
        assert ringctl("get", "demo", "where", "--host", n1).returncode == 1

        ringctl.ok("cluster", "switch", "c3")
        assert ringctl("get", "demo", "where").returncode == 1  # now c3, which lacks it
        ringctl.ok("cluster", "switch", "solo")
        assert ringctl.json("get", "demo", "where")["columns"] == {"value": "solo"}
    finally:
        ringctl("cluster", "switch", "c3")
        removed = ringctl("cluster", "remove", "solo")
    assert removed.returncode == 0, removed.stderr
    assert [c["name"] for c in ringctl.json("cluster", "list")["clusters"]] == ["c3"]
    assert ringctl.json("cluster", "status")["current"] is True


def test_stop_leaves_no_process_and_remove_no_files(c3: dict[str, Any]) -> None:
    ringctl: Ringctl = c3["ringctl"]
    nodes = ringctl.json("cluster", "status")["nodes"]
    pids = [(n["pid"], Path(n["data_dir"])) for n in nodes]
    stopped = ringctl.json("cluster", "stop")
    assert [n["result"] for n in stopped["nodes"]] == ["stopped"] * 3
    assert not any(is_node_process(pid, data) for pid, data in pids)
    assert ringd_processes(ringctl.home) == []
    # the current cluster is stopped: ringctl says so, and never falls back to 127.0.0.1:7400
    ping = ringctl("ping")
    assert ping.returncode == 4, ping.stdout + ping.stderr
    assert "no node of the current cluster 'c3' is running" in ping.stderr
    status = ringctl.json("cluster", "status")
    assert {(n["process"], n["status"], n["pid"]) for n in status["nodes"]} == {
        ("stopped", "DOWN", None)
    }
    ringctl.ok("cluster", "remove")
    assert list(ringctl.home.rglob("*")) == []


def test_two_datacenters(ringctl: Ringctl) -> None:
    port = cluster_port(4)
    out = ringctl.ok("cluster", "start", "-n", "2:2", "--port", str(port)).stdout
    assert "Datacenter: dc1" in out and "Datacenter: dc2" in out
    status = ringctl.json("status")
    by_dc: dict[str, list[str]] = {}
    for n in status["nodes"]:
        assert n["status"] == "UP"
        by_dc.setdefault(n["dc"], []).append(n["address"])
    assert by_dc == {
        "dc1": [f"127.0.0.1:{port}", f"127.0.0.2:{port}"],
        "dc2": [f"127.0.0.3:{port}", f"127.0.0.4:{port}"],
    }
    assert len(ringd_processes(ringctl.home)) == 4
    # the two seeds of a new cluster do not wait for each other (each asks the other once and
    # founds the cluster if it gets no ring), so no node gives up waiting for gossip to settle
    logs = [p.read_text() for p in sorted(ringctl.home.glob("clusters/*/node*/ringd.log"))]
    assert len(logs) == 4
    assert not any("gossip did not settle" in log for log in logs), logs
    stopped = ringctl.json("cluster", "stop", "--kill")
    assert [n["result"] for n in stopped["nodes"]] == ["killed"] * 4
    assert ringd_processes(ringctl.home) == []


def test_a_node_that_cannot_start_says_why(ringctl: Ringctl) -> None:
    port = cluster_port(1)
    ringctl.ok("cluster", "create", "--name", "bad", "-n", "1", "--port", str(port))
    config = ringctl.home / "clusters" / "bad" / "node1" / "ringd.toml"
    good = config.read_text()
    for setting, complaint in [("log_level", "log-level"), ("phi_threshold", "phi-threshold")]:
        config.write_text(good + f"{setting} = -1\n")
        done = ringctl("cluster", "start")
        assert done.returncode == 5, done.stderr
        assert "node1 (127.0.0.1:" in done.stderr and complaint in done.stderr, done.stderr
        assert "ringctl cluster node 1 logs" in done.stderr
        assert not (config.parent / "ringd.pid").exists()
    config.write_text(good)
    ringctl.ok("cluster", "start")
    assert len(ringd_processes(ringctl.home)) == 1
