"""Shared fixtures: real ringd processes on loopback, always cleaned up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nodes import Ringd


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
