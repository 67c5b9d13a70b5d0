"""``docs/runbook-quorum.sh`` runs end to end against a real local cluster and passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cluster.kit import Ringctl, cluster_port

from ringctl.cluster import layout
from ringctl.cluster.manager import is_node_process, read_pid

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "runbook-quorum.sh"


def test_runbook_quorum(ringctl: Ringctl) -> None:
    port = cluster_port(3)
    bin_dir = Path(sys.executable).parent  # where this environment's ringctl lives
    env = {
        **ringctl.env,
        "RUNBOOK_PORT": str(port),
        "RUNBOOK_CLUSTER": "quorum",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    done = subprocess.run(
        ["bash", str(RUNBOOK)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{ringctl.logs()}"
    assert "All scenarios behaved" in done.stdout
    assert "write with w=3 fails with exit 3" in done.stdout
    # the runbook stops its cluster on the way out
    node_dirs = list((ringctl.home / "clusters" / "quorum").glob("node*"))
    assert len(node_dirs) == 3
    for node_dir in node_dirs:
        pid = read_pid(node_dir / "ringd.pid")
        assert pid is None or not is_node_process(pid, node_dir / "data")
    assert (ringctl.home / layout.CURRENT_FILE).read_text().strip() == "quorum"
