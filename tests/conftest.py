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

    def start(name: str = "node1", *, wait: bool = True, **flags: Any) -> Ringd:
        node = Ringd(tmp_path / name, **flags)
        started.append(node)
        return node.start(wait=wait)

    yield start
    for node in started:
        if node.running:
            node.resume() if node.proc else None
            node.kill()


@pytest.fixture
def node(ringd_factory: Callable[..., Ringd]) -> Ringd:
    """One running node with keyspace ``demo``."""
    n = ringd_factory()
    with n.client() as db:
        db.keyspace_create("demo")
    return n
