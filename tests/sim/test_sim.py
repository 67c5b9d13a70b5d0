"""The simulated cluster under a fixed set of seeds (see ``tests/sim/__init__.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ringd.hints.service import HintsService
from ringd.protocol.errors import Unavailable
from ringd.repair import session as repair_session
from ringd.service import sessions
from ringd.service.coordination import Consistency
from ringd.service.topology import Topology
from ringd.service.writes import Writes
from sim.runner import Options, Result, run

#: the CI set: 32 seeds of 3200 steps, over 100,000 client operations
CI_SEEDS = range(1, 33)
CI_STEPS = 3200
#: the convergence scenarios (``--handoff``, ``--repair``): fewer seeds, writes and faults as above
HANDOFF_SEEDS = range(1, 6)
REPAIR_SEEDS = range(1, 5)
CONVERGENCE_STEPS = 2500


def _report(result: Result, steps: int = CI_STEPS, flags: str = "") -> str:
    return (
        f"seed {result.seed} failed; replay with "
        f"`python -m tests.sim --seed {result.seed} --steps {steps}{flags} --log`:\n"
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


def test_a_power_loss_before_the_first_commit_log_sync_does_not_stop_the_node() -> None:
    """Seed 75: n5 loses power 2 s in, before its first commit log segment's header was
    fsynced; the power loss leaves the header torn. The node must start again (the segment
    held nothing durable), not refuse with "bad commit log segment header"."""
    result = run(Options(seed=75, steps=CI_STEPS))
    assert "crash (power loss) n5" in "\n".join(result.log[:5])
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


@pytest.mark.parametrize("seed", HANDOFF_SEEDS)
def test_handoff_seed(seed: int) -> None:
    """Issue 10: after the heal and hinted handoff (no repair), every acknowledged write is on
    every natural replica (``convergence.check_handoff``)."""
    result = run(Options(seed=seed, steps=CONVERGENCE_STEPS, handoff=True))
    assert result.ok, _report(result, CONVERGENCE_STEPS, " --handoff")
    assert result.stats["handoff copies checked"] > 1000
    assert result.stats["hints delivered"] > 0


@pytest.mark.parametrize("seed", REPAIR_SEEDS)
def test_repair_seed(seed: int) -> None:
    """Issue 11: hints off; after the heal, repair -pr on every node, then every range's Merkle
    root is the same on each of its replicas (``convergence.check_repair``)."""
    result = run(Options(seed=seed, steps=CONVERGENCE_STEPS, repair=True))
    assert result.ok, _report(result, CONVERGENCE_STEPS, " --repair")
    assert result.stats["ranges compared"] == 40  # 5 nodes x 8 vnodes


def test_handoff_check_catches_hints_that_are_never_delivered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broken dispatcher: it drops every hint as if delivered."""

    async def deliver(self: HintsService, host_id: str, hint: Any) -> str:
        return "delivered"

    monkeypatch.setattr(HintsService, "_deliver", deliver)
    result = run(Options(seed=1, steps=CONVERGENCE_STEPS, handoff=True))
    assert any("is not on replica" in f for f in result.failures), result.failures


def test_repair_check_catches_a_repair_that_streams_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broken repair: it finds the differences and reports them streamed, but applies
    nothing."""
    real_sync = repair_session._sync  # noqa: SLF001

    async def sync(*args: Any, apply: bool) -> None:
        await real_sync(*args, apply=False)

    monkeypatch.setattr(repair_session, "_sync", sync)
    result = run(Options(seed=1, steps=CONVERGENCE_STEPS, repair=True))
    assert any("replicas of range" in f and "differ" in f for f in result.failures), result.failures
