"""Fixtures for the ``ringctl cluster`` tests (helpers live in ``cluster.kit``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster.kit import Ringctl


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    """ringctl with its own RINGCTL_HOME; every node started through it is stopped at the end."""
    runner = Ringctl(tmp_path / "ringctl-home")
    try:
        yield runner
    finally:
        runner.cleanup()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """RINGCTL_HOME for in-process use of the manager."""
    path = tmp_path / "home"
    monkeypatch.setenv("RINGCTL_HOME", str(path))
    monkeypatch.delenv("RINGCTL_HOST", raising=False)
    return path
