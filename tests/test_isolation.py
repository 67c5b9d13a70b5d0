"""A test run never reaches the user's own ringctl setup (their clusters, their RINGCTL_HOST,
a cluster of theirs on the default port): the session guard in tests/conftest.py and the
default-port checks of tests/nodes.py and tests/cluster/kit.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest
from cluster.kit import Ringctl
from nodes import Ringd, free_port

from ringctl import target
from ringctl.cluster import layout
from ringd.config import DEFAULT_PORT


def test_the_session_has_its_own_ringctl_home(isolated_ringctl: Path) -> None:
    assert os.environ["RINGCTL_HOME"] == str(isolated_ringctl)
    assert "RINGCTL_HOST" not in os.environ
    assert layout.home() == isolated_ringctl
    assert layout.home() != Path(platformdirs.user_data_dir("ringctl"))
    # a ringctl subprocess started the plain way sees the same isolated home
    done = subprocess.run(
        [sys.executable, "-c", "from ringctl.cluster import layout; print(layout.home())"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == str(isolated_ringctl)


def test_without_a_current_cluster_the_default_target_is_only_the_fallback() -> None:
    # the session home has no current cluster: only then does ringctl fall back to 7400
    assert layout.read_current() is None
    assert target.resolve(None) == target.Target(f"127.0.0.1:{DEFAULT_PORT}")


def test_test_nodes_and_clusters_never_use_the_default_port(tmp_path: Path) -> None:
    assert all(free_port() != DEFAULT_PORT for _ in range(200))
    with pytest.raises(AssertionError, match="default port"):
        Ringd(tmp_path / "n", port=DEFAULT_PORT)
    runner = Ringctl(tmp_path / "home")
    runner.ok("cluster", "create", "--name", "careless", "-n", "1")  # files only, no process
    with pytest.raises(AssertionError, match="default port 7400"):
        runner.cleanup()
