"""``ringctl cluster add``: a node added to a running local cluster bootstraps (streams the
ranges it takes over) and is NORMAL with the data of those ranges (issue 15)."""

from __future__ import annotations

import tomllib

from cluster.kit import Ringctl, cluster_port

from ringctl.client import Client


def test_cluster_add_bootstraps_a_fourth_node(ringctl: Ringctl) -> None:
    port = cluster_port(4)
    ringctl.ok("cluster", "start", "-n", "3", "--port", str(port), "--rf", "3")
    password = (ringctl.home / "clusters/local/admin.password").read_text().strip()
    creds = {"user": "admin", "password": password}
    keys = [f"k{i}" for i in range(200)]
    with Client(f"127.0.0.1:{port}", credentials=creds) as db:
        for key in keys:
            db.put("demo", key, {"v": key}, consistency="ALL")
    added = ringctl.json("cluster", "add", timeout=300)
    node4 = f"127.0.0.4:{port}"
    assert added["node"] == "node4" and added["address"] == node4 and added["dc"] == "dc1"
    status = ringctl.json("status")
    assert {n["address"]: n["status"] + n["state"] for n in status["nodes"]} == {
        f"127.0.0.{i}:{port}": "UPNORMAL" for i in range(1, 5)
    }
    conf = tomllib.loads((ringctl.home / "clusters/local/node4/ringd.toml").read_text())
    assert node4 not in conf["seeds"]
    owned = 0
    with Client(node4, credentials=creds) as db:
        for key in keys:
            if node4 in db.admin("getendpoints", keyspace="demo", key=key)["endpoints"]:
                owned += 1
                got = db.get("demo", key, consistency="ONE")
                assert got is not None and got["columns"] == {"v": key}
    assert owned > 20
    one = next(k for k in keys if node4 in ringctl.json("getendpoints", "demo", k)["endpoints"])
    assert ringctl.json("get", "demo", one, "-c", "ONE", "--host", node4)["columns"] == {"v": one}
    streams = ringctl.json("netstats", "--host", node4)["streams"]
    assert streams and {s["state"] for s in streams} == {"COMPLETED"}
    assert "Stream" in ringctl.ok("netstats", "--host", node4).stdout
    refused = ringctl("cluster", "add", "--dc", "bad dc")
    assert refused.returncode == 2 and "--dc" in refused.stderr
    # and back: node 4 decommissions, leaves every node's status, and the cluster forgets it
    left = ringctl.json("cluster", "node", "4", "decommission", timeout=300)
    assert left["node"] == "node4" and left["state"] == "LEFT"
    assert {n["address"] for n in ringctl.json("status")["nodes"]} == {
        f"127.0.0.{i}:{port}" for i in range(1, 4)
    }
    assert [n["node"] for n in ringctl.json("cluster", "status")["nodes"]] == [
        "node1",
        "node2",
        "node3",
    ]
    assert not (ringctl.home / "clusters/local/node4").exists()
    with Client(f"127.0.0.1:{port}", credentials=creds) as db:
        for key in keys[::10]:
            assert db.get("demo", key, consistency="ALL")["columns"] == {"v": key}
    # a dead node replaced by a fresh one on its address; a running one cannot be
    refused = ringctl("cluster", "node", "2", "replace")
    assert refused.returncode != 0 and "is running" in refused.stderr
    ringctl.ok("cluster", "node", "2", "kill", "--wait")
    replaced = ringctl.json("cluster", "node", "2", "replace", timeout=300)
    assert replaced["address"] == f"127.0.0.2:{port}"
    assert replaced["host_id"] != replaced["replaced"]
    with Client(f"127.0.0.2:{port}", credentials=creds) as db:
        for key in keys:  # RF 3 on 3 nodes: the new node2 holds every row itself
            assert db.get("demo", key, consistency="ONE")["columns"] == {"v": key}
    assert "replace" not in (ringctl.home / "clusters/local/node2/ringd.toml").read_text()
    # a dead node: removed through the others
    refused = ringctl("cluster", "node", "3", "remove")
    assert refused.returncode != 0 and "is running" in refused.stderr
    ringctl.ok("cluster", "node", "3", "kill", "--wait")
    removed = ringctl.json("cluster", "node", "3", "remove", timeout=300)
    assert removed["node"] == "node3" and removed["state"] == "COMPLETED"
    assert {n["address"] for n in ringctl.json("status")["nodes"]} == {
        f"127.0.0.{i}:{port}" for i in range(1, 3)
    }
    assert not (ringctl.home / "clusters/local/node3").exists()
    with Client(f"127.0.0.1:{port}", credentials=creds) as db:
        for key in keys[::10]:
            assert db.get("demo", key, consistency="QUORUM")["columns"] == {"v": key}
