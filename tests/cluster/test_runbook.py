"""The runbooks in docs/ run end to end against a real local cluster and pass.

Each runs in a private RINGCTL_HOME on a free port (never 7400) and must stop its cluster on the
way out. All are marked ``runbook``: ``pytest -m runbook`` runs them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cluster.kit import Ringctl, cluster_port

from ringctl.cluster import layout
from ringctl.cluster.manager import is_node_process, read_pid

pytestmark = pytest.mark.runbook

DOCS = Path(__file__).resolve().parents[2] / "docs"


def run_runbook(ringctl: Ringctl, name: str, cluster: str, nodes: int) -> str:
    """Run ``docs/runbook-NAME.sh`` on cluster ``cluster`` of ``nodes`` nodes; its stdout.

    Fails unless it exits 0 and leaves every node of its cluster stopped."""
    port = cluster_port(nodes)
    bin_dir = Path(sys.executable).parent  # where this environment's ringctl lives
    env = {
        **ringctl.env,
        "RUNBOOK_PORT": str(port),
        "RUNBOOK_CLUSTER": cluster,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    done = subprocess.run(
        ["bash", str(DOCS / f"runbook-{name}.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{ringctl.logs()}"
    assert "Traceback" not in done.stderr, done.stderr  # a step that printed nothing
    # the runbook stops its cluster on the way out
    node_dirs = list((ringctl.home / "clusters" / cluster).glob("node*"))
    assert len(node_dirs) == nodes
    for node_dir in node_dirs:
        pid = read_pid(node_dir / "ringd.pid")
        assert pid is None or not is_node_process(pid, node_dir / "data")
    assert (ringctl.home / layout.CURRENT_FILE).read_text().strip() == cluster
    return done.stdout


def test_runbook_quorum(ringctl: Ringctl) -> None:
    out = run_runbook(ringctl, "quorum", "quorum", 3)
    assert "All scenarios behaved" in out
    assert "write with w=3 fails with exit 3" in out


def test_runbook_cart(ringctl: Ringctl) -> None:
    out = run_runbook(ringctl, "cart", "cart", 4)
    assert "even w=3 succeeds (3 acks)" in out
    assert "still has the old cart: book pen" in out
    assert "now reads the whole cart: book checkout gift_wrap lamp mug pen" in out
    assert "no hints pending on any node" in out
    assert "The cart took every write with a replica down and converged." in out


def test_runbook_chat(ringctl: Ringctl) -> None:
    out = run_runbook(ringctl, "chat", "chat", 4)
    assert "node2 reads room:general at LOCAL_QUORUM: m01 m02" in out  # each side its own
    assert "node4 reads room:general at LOCAL_QUORUM: m01 m03" in out
    assert "node3 reads room:general at ALL: m01 m02 m03" in out  # read repair
    assert "node3 reads room:random at LOCAL_QUORUM: m04 m05" in out  # after repair
    assert "no hints pending on any node" in out
    assert "after heal and repair all agree" in out


def test_runbook_iot(ringctl: Ringctl) -> None:
    out = run_runbook(ringctl, "iot", "iot", 3)
    assert "every write succeeded at w=1 with node3 down" in out
    assert "stale reads at r=1" in out
    assert "digest mismatches counted, and repaired" in out
    assert "no hints pending on any node" in out
    assert "stress read -r 1 through node3: found 500/500" in out
