"""Validation with the right message: replication the ring cannot hold is warned about at create,
UNAVAILABLE says what to do when no replica is down, unknown verbs and existing keyspaces are
reported as such, and ``--ttl 0`` reaches the node."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from nodes import Ringd, run_ringctl, wait_for

from ringctl import output
from ringd.protocol.errors import ProtocolError, Unavailable
from ringd.protocol.messages import PEER, VERBS
from ringd.schema import Keyspace, replication_warnings


def ringctl(home: Path, host: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    return run_ringctl(*args, host=host, home=home, timeout=60)


def test_replication_warnings_name_missing_datacenters_and_factors_above_nodes() -> None:
    nts = Keyspace("a", {"class": "NetworkTopologyStrategy", "dc1": 3, "dc9": 1})
    assert replication_warnings(nts, {"dc1": 3}) == [
        "datacenter 'dc9' has no nodes (datacenters: dc1)"
    ]
    big = Keyspace("b", {"class": "NetworkTopologyStrategy", "dc1": 4})
    assert "exceeds its 3 nodes" in replication_warnings(big, {"dc1": 3})[0]
    simple = Keyspace("c", {"class": "SimpleStrategy", "replication_factor": 5})
    assert "replication factor 5 exceeds the 3 nodes" in replication_warnings(simple, {"dc1": 3})[0]
    fine = Keyspace("d", {"class": "SimpleStrategy", "replication_factor": 3})
    assert replication_warnings(fine, {"dc1": 3}) == []


def test_create_warns_about_a_datacenter_without_nodes(node: Ringd, tmp_path: Path) -> None:
    done = ringctl(tmp_path, node.address, "keyspace", "create", "far", "--replication", "dc9:1")
    assert done.returncode == 0, done.stderr
    assert "warning: datacenter 'dc9' has no nodes (datacenters: dc1)" in done.stderr
    assert "created far" in done.stdout
    as_json = ringctl(
        tmp_path, node.address, "keyspace", "alter", "far", "--replication", "dc8:1", "--json"
    )
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["warnings"] == [
        "datacenter 'dc8' has no nodes (datacenters: dc1)"
    ]


def test_rf_above_the_nodes_warns_and_unavailable_says_why(
    cluster_factory: Callable[..., list[Ringd]], tmp_path: Path
) -> None:
    nodes = cluster_factory(3)
    host = nodes[0].address
    done = ringctl(tmp_path, host, "keyspace", "create", "wide", "--rf", "5", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["created"] is True
    assert result["warnings"] == [
        "replication factor 5 exceeds the 3 nodes in the cluster; "
        "requests needing more than 3 replicas will be unavailable"
    ]
    assert "warning: replication factor 5 exceeds the 3 nodes" in done.stderr
    put = ringctl(tmp_path, host, "put", "wide", "k", "1", "-c", "ALL")
    assert put.returncode == output.UNAVAILABLE, put.stderr
    assert "replication factor exceeds the live nodes" in put.stderr
    assert "start the down nodes" not in put.stderr


def test_unavailable_hint_depends_on_whether_a_replica_is_down() -> None:
    none_down = Unavailable("...", required=5, alive=3, consistency="ALL", replicas=3)
    assert "replication factor exceeds the live nodes" in output.error_line(none_down)
    one_down = Unavailable("...", required=3, alive=2, consistency="ALL", replicas=3)
    assert "start the down nodes" in output.error_line(one_down)
    old_node = ProtocolError("...", output.ErrorCode.UNAVAILABLE, required=3, alive=2)
    assert "start the down nodes" in output.error_line(old_node)


def test_create_if_not_exists_on_an_existing_keyspace_says_unchanged(
    node: Ringd, tmp_path: Path
) -> None:
    done = ringctl(tmp_path, node.address, "keyspace", "create", "demo", "--if-not-exists")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "keyspace demo already exists (unchanged)"
    as_json = ringctl(
        tmp_path, node.address, "keyspace", "create", "demo", "--if-not-exists", "--json"
    )
    assert json.loads(as_json.stdout)["created"] is False


def test_partition_refuses_unknown_verbs(tmp_path: Path) -> None:
    done = ringctl(tmp_path, None, "cluster", "partition", "1", "2", "--verbs", "mutate,bogus")
    assert done.returncode == output.USAGE
    assert "unknown verb 'bogus'" in done.stderr
    for verb in ("mutate", "read_local", "gossip_syn"):
        assert verb in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert all(PEER in VERBS[v].roles for v in ("mutate", "read_local", "gossip_syn"))


def test_node_refuses_filter_rules_for_unknown_verbs(ringd_factory: Callable[..., Ringd]) -> None:
    n = ringd_factory(enable_test_hooks=True)
    with n.client() as db, pytest.raises(ProtocolError) as err:
        db._call("test_filter", {"action": "drop", "to": ["127.0.0.1:1"], "verbs": ["bogus"]})
    assert err.value.code == output.ErrorCode.INVALID
    assert "bogus" in err.value.message


def test_ttl_0_means_no_ttl_overriding_default_ttl(node: Ringd, tmp_path: Path) -> None:
    with node.client() as db:
        db.keyspace_create("short", default_ttl=1)
    forever = ringctl(tmp_path, node.address, "put", "short", "forever", "1", "--ttl", "0")
    assert forever.returncode == 0, forever.stderr
    assert ringctl(tmp_path, node.address, "put", "short", "brief", "1").returncode == 0
    with node.client() as db:
        wait_for(lambda: db.get("short", "brief") is None, 10, "the default TTL to expire")
        # written before 'brief', so it would have expired first had it a TTL
        assert db.get("short", "forever") is not None
    negative = ringctl(tmp_path, node.address, "put", "short", "k", "1", "--ttl", "-1")
    assert negative.returncode == output.USAGE
