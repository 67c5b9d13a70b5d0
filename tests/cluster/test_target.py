"""ringctl never talks to the wrong cluster: a target chosen from the current local cluster must
answer as a node of that cluster, and a current cluster with no running node is an error, not a
reason to try 127.0.0.1:7400."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from cluster.kit import Ringctl, cluster_port
from nodes import Ringd


def _look_alike(data_dir: Path) -> subprocess.Popen[bytes]:
    """A process whose command line is that of the node's ringd (but sleeps)."""
    argv = [sys.executable, "-c", "import time; time.sleep(120)", "ringd.main"]
    return subprocess.Popen([*argv, "--data-dir", str(data_dir)])


def test_stopped_current_cluster_exits_4_naming_it(ringctl: Ringctl) -> None:
    ringctl.ok("cluster", "create", "--name", "idle", "-n", "2", "--port", str(cluster_port(2)))
    for args in (["put", "demo", "k", "v"], ["ping"], ["status"], ["load", "demo", "-"]):
        done = ringctl(*args)
        assert done.returncode == 4, (args, done.stdout, done.stderr)
        assert "no node of the current cluster 'idle' is running" in done.stderr
        assert "ringctl cluster start" in done.stderr
        assert "7400" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    # --host still reaches any node on purpose
    assert ringctl("ping", "--host", "127.0.0.1:1").returncode == 4


def test_a_node_of_another_cluster_is_refused(
    ringctl: Ringctl, ringd_factory: Callable[..., Ringd]
) -> None:
    other = ringd_factory("other", cluster_name="elsewhere")
    ringctl.ok("cluster", "create", "--name", "mine", "-n", "1", "--port", str(other.port))
    node_dir = ringctl.home / "clusters" / "mine" / "node1"
    proc = _look_alike(node_dir / "data")  # "mine"'s node1 looks alive, but another owns the port
    try:
        (node_dir / "ringd.pid").write_text(f"{proc.pid}\n")
        done = ringctl("put", "demo", "k", "v")
        assert done.returncode == 4, done.stdout + done.stderr
        assert f"127.0.0.1:{other.port} is a node of cluster 'elsewhere', not of 'mine'" in (
            done.stderr
        )
        assert len(done.stderr.strip().splitlines()) == 1
    finally:
        proc.kill()
        proc.wait()


def test_verbose_and_info_name_the_cluster(ringctl: Ringctl, node: Ringd) -> None:
    done = ringctl.ok("-v", "ping", "--host", node.address)
    assert f"ringctl: {node.address}: ringd" in done.stderr
    assert "of cluster 'ringd'" in done.stderr
    info = ringctl.ok("info", "--host", node.address).stdout
    assert "Cluster" in info and ": ringd" in info
    assert ringctl.json("ping", "--host", node.address)["cluster"] == "ringd"


def test_clusters_one_after_the_other_on_the_same_port(ringctl: Ringctl) -> None:
    """A stopped cluster on the same addresses (say, the last runbook's) lends its credentials
    neither to the cluster manager nor to ``--host``: each logs in to the cluster running there."""
    port = str(cluster_port(1))
    ringctl.ok("cluster", "start", "--name", "aaa", "-n", "1", "--port", port)
    ringctl.ok("cluster", "stop")
    # before the fix: the manager logged in to bbb's node as aaa's admin, "did not answer in time"
    ringctl.ok("cluster", "start", "--name", "bbb", "-n", "1", "--port", port, "--timeout", "20")
    assert ringctl.json("cluster", "status")["nodes"][0]["status"] == "UP"
    assert ringctl.json("keyspace", "list", "--host", f"127.0.0.1:{port}") is not None
    ringctl.ok("cluster", "switch", "aaa")  # the current cluster is stopped: --host still logs in
    ringctl.ok("keyspace", "create", "k", "--rf", "1", "--host", f"127.0.0.1:{port}")
    ringctl.ok("cluster", "stop", "--name", "bbb")
    ringctl.ok("cluster", "start", "--name", "aaa", "--timeout", "20")
    ringctl.ok("keyspace", "list", "--host", f"127.0.0.1:{port}")
