"""The simulated cluster under a fixed set of seeds (see ``tests/sim/__init__.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ringd.protocol.errors import Unavailable
from ringd.service import sessions
from ringd.service.coordination import Consistency
from ringd.service.topology import Topology
from ringd.service.writes import Writes
from sim.runner import Options, Result, run

#: the CI set: 32 seeds of 3200 steps, over 100,000 client operations
CI_SEEDS = range(1, 33)
CI_STEPS = 3200


def _report(result: Result) -> str:
    return (
        f"seed {result.seed} failed; replay with "
        f"`python -m tests.sim --seed {result.seed} --steps {CI_STEPS} --log`:\n"
        + "\n".join(result.failures[:20])
    )


@pytest.mark.parametrize("seed", CI_SEEDS)
def test_seed(seed: int) -> None:
    result = run(Options(seed=seed, steps=CI_STEPS))
    assert result.ok, _report(result)
    assert result.ops > CI_STEPS * 0.9


def test_a_seed_replays_identically() -> None:
    first = run(Options(seed=11, steps=1500))
    second = run(Options(seed=11, steps=1500))
    assert first.log == second.log
    assert first.digest == second.digest
    assert len(first.log) > 1000


def test_different_seeds_differ() -> None:
    assert run(Options(seed=1, steps=300)).digest != run(Options(seed=2, steps=300)).digest


@pytest.fixture
def writes_wait_for_one(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A broken coordinator: every write answers success once one replica acknowledged it."""
    real_plan = Topology.plan

    def plan(self: Topology, keyspace: Any, natural: Any, consistency: Any, *, write: bool) -> Any:
        if write:
            consistency = Consistency("ONE")
        return real_plan(self, keyspace, natural, consistency, write=write)

    monkeypatch.setattr(Topology, "plan", plan)
    yield


def test_checks_catch_a_coordinator_that_acknowledges_too_early(writes_wait_for_one: None) -> None:
    result = run(Options(seed=3, steps=CI_STEPS))
    assert any("was acknowledged before it" in f for f in result.failures), result.failures


@pytest.mark.parametrize("seed", [4, 6, 7, 9])
def test_a_restarted_node_answers_from_a_complete_ring(seed: int) -> None:
    """Clients go to a restarted node at once: it knows every node from its saved peers and
    serves once gossip settled (these seeds read nothing at ONE, or restarted with a partial
    ring, when peers were not saved)."""
    result = run(Options(seed=seed, steps=3000, early_clients=True))
    assert result.ok, _report(result)


def test_checks_catch_an_unavailable_write_that_was_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broken coordinator: every tenth write is sent to the replicas, then refused."""
    real_start_write = Writes.start_write
    count = 0

    def start_write(self: Writes, *args: Any) -> None:
        nonlocal count
        real_start_write(self, *args)
        count += 1
        if count % 10 == 0:
            raise Unavailable("refused after all")

    monkeypatch.setattr(Writes, "start_write", start_write)
    result = run(Options(seed=5, steps=600))
    assert any("UNAVAILABLE after sending or applying" in f for f in result.failures)
    assert any("failed UNAVAILABLE but n" in f for f in result.failures)


def test_checks_catch_an_error_logged_by_a_node(monkeypatch: pytest.MonkeyPatch) -> None:
    """A gossip listener that raises: the gossiper logs it (ERROR) and carries on."""

    def on_gossip(self: Topology, event: str, host_id: str, state: Any) -> None:
        raise RuntimeError("listener bug")

    monkeypatch.setattr(Topology, "_on_gossip", on_gossip)
    result = run(Options(seed=5, steps=100))
    assert any("unexpected error logged" in f and "listener bug" in f for f in result.failures)


@pytest.mark.parametrize("seed", range(1, 7))
def test_a_sessions_writes_are_ordered_whatever_the_clocks(seed: int) -> None:
    """One client session writes through random coordinators while clocks are skewed (within
    the bound) and faults come and go: each acknowledged write is stamped above the earlier
    ones, so the last acknowledged write wins."""
    result = run(Options(seed=seed, steps=1500, session=True, fault_rate=0.03))
    assert result.ok, _report(result)


def test_the_session_check_catches_a_coordinator_that_ignores_the_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without other traffic to carry timestamps between the nodes, a coordinator that does not
    observe the session's mark stamps some write below an earlier one once a clock is skewed."""
    monkeypatch.setattr(sessions, "observe", lambda *args, **kwargs: None)
    options = {"steps": 1500, "session": True, "session_only": True, "fault_rate": 0.03}
    failures = [f for seed in range(1, 7) for f in run(Options(seed=seed, **options)).failures]
    assert any("session write" in f for f in failures), failures
