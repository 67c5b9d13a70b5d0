"""Shared fixtures: real ringd processes on loopback, always cleaned up.

Nothing in a test run reaches the user's own ringctl setup: for the whole session RINGCTL_HOME
is a temporary directory and RINGCTL_HOST is unset (tests/test_isolation.py checks it), test
clusters never use the default port (``cluster.kit.Ringctl.cleanup`` and ``nodes.Ringd`` refuse
it), so a cluster the user runs on 127.0.0.1:7400 cannot make a test pass or fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nodes import Ringd


@pytest.fixture(scope="session", autouse=True)
def isolated_ringctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """RINGCTL_HOME is a fresh directory and RINGCTL_HOST is unset for the whole run."""
    home = tmp_path_factory.mktemp("ringctl-session-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("RINGCTL_HOME", str(home))
    patch.delenv("RINGCTL_HOST", raising=False)
    try:
        yield home
    finally:
        patch.undo()


@pytest.fixture
def ringd_factory(tmp_path: Path) -> Iterator[Callable[..., Ringd]]:
    """Start ringd processes; every one is killed at teardown, pass or fail."""
    started: list[Ringd] = []

    def start(
        name: str = "node1", *, wait: bool = True, port: int | None = None, **flags: Any
    ) -> Ringd:
        node = Ringd(tmp_path / name, port=port, **flags)
        started.append(node)
        return node.start(wait=wait)

    yield start
    for node in started:
        if node.running:
            node.resume()
            node.kill()


@pytest.fixture
def node(ringd_factory: Callable[..., Ringd]) -> Ringd:
    """One running node with keyspace ``demo``."""
    n = ringd_factory()
    with n.client() as db:
        db.keyspace_create("demo")
    return n


@pytest.fixture
def cluster_factory(ringd_factory: Callable[..., Ringd]) -> Callable[..., list[Ringd]]:
    """Start a cluster of real nodes on 127.0.0.1 (distinct ports) and wait until every node
    sees every other UP. ``dcs`` gives the datacenter of each node (default all dc1)."""
    from nodes import free_port, wait_all_up

    def start(n: int = 3, *, dcs: list[str] | None = None, **flags: Any) -> list[Ringd]:
        ports = [free_port() for _ in range(n)]
        seeds = [f"127.0.0.1:{ports[0]}"]
        nodes = [
            ringd_factory(
                f"node{i + 1}",
                port=ports[i],
                seeds=seeds,
                dc=(dcs[i] if dcs else "dc1"),
                enable_test_hooks=True,
                wait=False,
                **flags,
            )
            for i in range(n)
        ]
        for node in nodes:
            node.wait_ready()
        wait_all_up(nodes)
        return nodes

    return start
