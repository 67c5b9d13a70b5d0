"""Separate ``ringctl`` invocations through different nodes of the current local cluster are one
session (the high-water mark lives in the cluster's directory): an overwrite through a node whose
clock is 3 s behind still wins, and ``status --json`` shows that node's offset."""

from __future__ import annotations

import json

from cluster.kit import Ringctl, cluster_port
from nodes import wait_for

from ringctl.client import Client


def test_a_second_ringctl_put_through_a_node_behind_wins(ringctl: Ringctl) -> None:
    port = cluster_port(3)
    # the offset bound would refuse writes on the node 3 s behind: this tests sessions alone
    ringctl.ok(
        "cluster", "start", "--name", "skew", "-n", "3", "--port", str(port),
        "--conf", "max_clock_offset_ms=60000", "--json",
    )  # fmt: skip
    n1, n2 = f"127.0.0.1:{port}", f"127.0.0.2:{port}"
    password = (ringctl.home / "clusters" / "skew" / "admin.password").read_text().strip()
    with Client(n1, credentials={"user": "admin", "password": password}) as db:
        db.keyspace_create("one", replication={"class": "SimpleStrategy", "replication_factor": 1})
        # keys n2 does not hold: nothing but the session tells n2 about the first write
        keys = [
            k
            for k in (f"key{i}" for i in range(40))
            if n2 not in db.admin("getendpoints", keyspace="one", key=k)["endpoints"]
        ][:3]
    assert ringctl.json("cluster", "node", "2", "clock-offset", "-3000")["offset_ms"] == -3000
    for key in keys:
        ringctl.ok("put", "one", key, '{"v": 1}', "--host", n1, "-c", "ONE")
        ringctl.ok("put", "one", key, '{"v": 2}', "--host", n2, "-c", "ONE")
        row = ringctl.json("get", "one", key, "--host", n1, "-c", "ONE")
        assert row["columns"] == {"v": 2}, (key, row)
    session = ringctl.home / "clusters" / "skew" / "session.json"
    assert json.loads(session.read_text())["session_us"] > 0

    def offsets() -> dict[str, int | None]:
        rows = ringctl.json("status", "--host", n1)["nodes"]
        return {r["address"]: r["clock_offset_ms"] for r in rows}

    wait_for(
        lambda: (offsets()[n2] or 0) <= -2500 and abs(offsets()[n1] or 0) < 500,
        30,
        "status to show node 2 about 3 s behind",
    )
