"""Several Gossipers wired together in-process, on virtual time (``autojump_clock``).

``FakeNetwork`` is the boundary mock: ``send`` round-trips every request and response through
CBOR to the right node's ``handle_syn`` / ``handle_ack2``, with a little random latency, and can
stop nodes, cut chosen pairs, drop a share of messages, hang or answer garbage.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import cbor2
import pytest
import trio

from ringd.gms.gossiper import Gossiper, Send
from ringd.gms.messages import GOSSIP_ACK2, GOSSIP_SYN
from ringd.gms.state import EndpointState

INTERVAL = 0.25


class Unreachable(ConnectionError):
    pass


class RemoteError(Exception):
    """What a real client would raise for an error response (e.g. INVALID)."""


def wire(obj: Any) -> Any:
    return cbor2.loads(cbor2.dumps(obj))


class FakeNetwork:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.nodes: dict[str, Gossiper] = {}
        self.down: set[str] = set()
        self.hung: set[str] = set()
        self.garbage: set[str] = set()
        self.cut: set[frozenset[str]] = set()
        self.loss = 0.0
        self.delivered: Counter[tuple[str, str]] = Counter()
        self.rejected: list[str] = []

    def partition(self, a: str, b: str) -> None:
        self.cut.add(frozenset((a, b)))

    def _check(self, src: str, dst: str) -> None:
        if src in self.down or dst in self.down or dst not in self.nodes:
            raise Unreachable(f"{dst} is not reachable from {src}")
        if frozenset((src, dst)) in self.cut:
            raise Unreachable(f"{src} and {dst} are partitioned")
        if self.loss and self.rng.random() < self.loss:
            raise Unreachable("message lost")

    def sender(self, src: str) -> Send:
        async def send(address: str, verb: str, args: dict[str, Any]) -> dict[str, Any]:
            await trio.sleep(self.rng.uniform(0.001, 0.005))
            if address in self.hung:
                await trio.sleep_forever()
            self._check(src, address)
            if address in self.garbage:
                return {"digests": [["x", "y"]], "states": 5}
            node = self.nodes[address]
            handler = {GOSSIP_SYN: node.handle_syn, GOSSIP_ACK2: node.handle_ack2}[verb]
            try:
                response = handler(wire(args))
            except ValueError as exc:
                self.rejected.append(str(exc))
                raise RemoteError(f"INVALID: {exc}") from None
            self.delivered[(src, address)] += 1
            await trio.sleep(self.rng.uniform(0.001, 0.005))
            self._check(address, src)
            answer: dict[str, Any] = wire(response)
            return answer

        return send


class Cluster:
    def __init__(
        self, nursery: trio.Nursery, size: int, *, seeds: list[int] | None = None, seed: int = 0
    ) -> None:
        self.nursery = nursery
        self.rng = random.Random(seed)
        self.net = FakeNetwork(self.rng)
        self.addresses = [f"10.0.0.{i + 1}:7000" for i in range(size)]
        self.host_ids = [f"host-{i}" for i in range(size)]
        self.seeds = [self.addresses[i] for i in (seeds if seeds is not None else [0, 1])]
        self.events: list[list[tuple[float, str, str]]] = [[] for _ in range(size)]
        self.scopes: dict[int, trio.CancelScope] = {}
        self.gossipers = [self.make(i, generation=1000) for i in range(size)]

    def initial_states(self, i: int) -> dict[str, Any]:
        return {
            "STATUS": "NORMAL",
            "TOKENS": [i * 1000 + t for t in range(4)],
            "DC": "dc1",
            "RACK": f"r{i % 2}",
            "LOAD": 0,
            "SCHEMA": "s1",
            "RELEASE_VERSION": "0.1.0",
        }

    def make(
        self,
        i: int,
        *,
        generation: int,
        states: dict[str, Any] | None = None,
        cluster_name: str = "ringd",
    ) -> Gossiper:
        address = self.addresses[i]
        g = Gossiper(
            self.host_ids[i],
            address,
            self.seeds,
            self.net.sender(address),
            generation=generation,
            initial_states=self.initial_states(i) if states is None else states,
            rng=random.Random(self.rng.random()),
            interval=INTERVAL,
            cluster_name=cluster_name,
        )
        log = self.events[i]
        g.subscribe(lambda event, host_id, state: log.append((trio.current_time(), event, host_id)))
        self.net.nodes[address] = g
        return g

    @property
    def running(self) -> list[int]:
        return sorted(self.scopes)

    async def _run(self, i: int, *, task_status: trio.TaskStatus[None]) -> None:
        with trio.CancelScope() as scope:
            self.scopes[i] = scope
            await self.gossipers[i].run(task_status=task_status)

    async def start(self, i: int) -> None:
        self.net.down.discard(self.addresses[i])
        await self.nursery.start(self._run, i)

    async def start_all(self) -> None:
        for i in range(len(self.gossipers)):
            await self.start(i)
            await trio.sleep(self.rng.uniform(0, INTERVAL))

    def stop(self, i: int) -> None:
        self.scopes.pop(i).cancel()
        self.net.down.add(self.addresses[i])

    async def restart(self, i: int, *, generation: int, states: dict[str, Any]) -> None:
        if i in self.scopes:
            self.stop(i)
        self.gossipers[i] = self.make(i, generation=generation, states=states)
        await self.start(i)

    def sees(self, observer: int, i: int) -> EndpointState | None:
        return self.gossipers[observer].endpoint_state(self.host_ids[i])

    def converged(self, members: list[int] | None = None) -> bool:
        """Every member knows every member alive, at its current generation and app states."""
        members = self.running if members is None else members
        for o in members:
            for i in members:
                truth = self.gossipers[i].local_state
                seen = self.sees(o, i)
                if seen is None or seen.generation != truth.generation:
                    return False
                if seen.app_states != truth.app_states:
                    return False
                if not self.gossipers[o].is_alive(self.host_ids[i]):
                    return False
        return True

    def dead_events(self, observer: int) -> list[str]:
        return [h for _, e, h in self.events[observer] if e == "dead"]


async def wait_until(condition: Callable[[], bool], within: float) -> float:
    """Poll ``condition`` on virtual time until it holds; fail after ``within`` seconds.

    Returns how long it took. (Polling is the point: the condition spans several nodes.)
    """
    start = trio.current_time()
    with trio.fail_after(within):
        while not condition():  # noqa: ASYNC110
            await trio.sleep(INTERVAL / 5)
    return trio.current_time() - start


async def test_converges_from_seeds_only(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        c = Cluster(nursery, 6)
        await c.start_all()  # staggered over up to 6 intervals
        took = await wait_until(c.converged, within=10 * INTERVAL)
        # every node knows every other's tokens, dc, rack and the rest
        for o in range(6):
            for i in range(6):
                assert c.sees(o, i).tokens == tuple(c.initial_states(i)["TOKENS"])  # type: ignore[union-attr]
            assert c.gossipers[o].live_members() == sorted(c.host_ids)
            assert c.gossipers[o].unreachable_members() == []
        # joins were announced before the nodes were judged alive
        log = [(e, h) for _, e, h in c.events[0]]
        for h in c.host_ids[1:]:
            assert log.index(("join", h)) < log.index(("alive", h))
        assert took <= 10 * INTERVAL
        nursery.cancel_scope.cancel()


async def test_stopped_node_convicted_then_alive_again(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        c = Cluster(nursery, 5)
        await c.start_all()
        await wait_until(c.converged, within=5.0)
        await trio.sleep(10.0)  # let the failure detectors learn the rhythm
        others = [0, 1, 2, 3]
        victim = c.host_ids[4]

        c.stop(4)
        stopped_at = trio.current_time()
        await trio.sleep(1.0)
        assert all(c.gossipers[o].is_alive(victim) for o in others)  # not on a hair trigger
        took = await wait_until(
            lambda: not any(c.gossipers[o].is_alive(victim) for o in others), within=15.0
        )
        took += 1.0
        assert 2.0 <= took <= 10.0, took
        for o in others:
            assert c.gossipers[o].unreachable_members() == [victim]
            assert c.gossipers[o].downtime(victim) is not None
            info = c.gossipers[o].gossip_info()[victim]
            assert info["alive"] is False and info["phi"] > 8.0
        assert trio.current_time() - stopped_at < 12.0

        await trio.sleep(20.0)  # down a while
        await c.start(4)
        back = await wait_until(c.converged, within=5.0)
        assert back <= 8 * INTERVAL
        for o in others:
            assert [h for _, e, h in c.events[o] if e in ("dead", "alive") and h == victim][
                -2:
            ] == [victim, victim]
            assert [e for _, e, h in c.events[o] if h == victim][-2:] == ["dead", "alive"]
            assert c.dead_events(o) == [victim]  # nobody else was ever convicted
        assert c.dead_events(4) == []  # the resumed node did not convict everyone after its pause
        nursery.cancel_scope.cancel()


async def test_no_false_convictions_with_message_loss(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        c = Cluster(nursery, 5, seed=7)
        c.net.loss = 0.2
        await c.start_all()
        await wait_until(c.converged, within=10.0)
        await trio.sleep(120.0)
        assert c.converged()
        assert all(c.dead_events(o) == [] for o in range(5))
        nursery.cancel_scope.cancel()


async def test_restart_with_higher_generation_replaces_state(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trio.open_nursery() as nursery:
        c = Cluster(nursery, 4)
        c.gossipers[2].set_application_state("CUSTOM", "only in the old generation")
        await c.start_all()
        await wait_until(c.converged, within=5.0)
        old = c.gossipers[2].local_state
        assert all(c.sees(o, 2).get("CUSTOM") is not None for o in range(4))  # type: ignore[union-attr]

        c.stop(2)
        await trio.sleep(0.5)  # back before anyone notices it went away
        states = {**c.initial_states(2), "LOAD": 12345, "SCHEMA": "s2"}
        await c.restart(2, generation=old.generation + 1, states=states)
        took = await wait_until(c.converged, within=5.0)
        assert took <= 8 * INTERVAL
        for o in (0, 1, 3):
            seen = c.sees(o, 2)
            assert seen is not None and seen.generation == old.generation + 1
            assert seen.get("CUSTOM") is None and seen.load == 12345 and seen.schema == "s2"
            assert seen.tokens == old.tokens  # the server kept them across the restart
            assert ("restart", c.host_ids[2]) in [(e, h) for _, e, h in c.events[o]]
            assert c.dead_events(o) == []

        # and a restart after being convicted: restart, then alive again
        c.stop(2)
        await wait_until(lambda: not c.gossipers[0].is_alive(c.host_ids[2]), within=15.0)
        await c.restart(2, generation=old.generation + 2, states=c.initial_states(2))
        await wait_until(c.converged, within=5.0)
        tail = [e for _, e, h in c.events[0] if h == c.host_ids[2]][-3:]
        assert tail == ["dead", "restart", "alive"]
        nursery.cancel_scope.cancel()


async def test_application_state_changes_propagate(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        c = Cluster(nursery, 5)
        await c.start_all()
        await wait_until(c.converged, within=5.0)
        c.gossipers[3].set_application_state("SCHEMA", "s2")
        c.gossipers[1].set_application_states({"STATUS": "LEAVING", "LOAD": 10_000})
        took = await wait_until(c.converged, within=5.0)
        assert took <= 6 * INTERVAL
        for o in range(5):
            assert c.sees(o, 3).schema == "s2"  # type: ignore[union-attr]
            assert c.sees(o, 1).status == "LEAVING"  # type: ignore[union-attr]
            changes = [h for _, e, h in c.events[o] if e == "change"]
            assert c.host_ids[3] in changes and c.host_ids[1] in changes
        nursery.cancel_scope.cancel()


async def test_partitioned_pair_learns_through_a_third(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        c = Cluster(nursery, 3, seeds=[0, 2])
        a, b = c.addresses[0], c.addresses[1]
        c.net.partition(a, b)
        await c.start_all()
        await wait_until(c.converged, within=5.0)
        await trio.sleep(60.0)  # heartbeats relayed by the third node keep them alive
        assert c.converged()
        assert c.net.delivered[(a, b)] == 0 and c.net.delivered[(b, a)] == 0
        assert all(c.dead_events(o) == [] for o in range(3))
        c.gossipers[0].set_application_state("SCHEMA", "from-a")
        await wait_until(lambda: c.sees(1, 0).schema == "from-a", within=2.0)  # type: ignore[union-attr]
        nursery.cancel_scope.cancel()


async def test_other_cluster_is_kept_out(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        c = Cluster(nursery, 4)
        c.gossipers[3] = c.make(3, generation=1000, cluster_name="elsewhere")
        await c.start_all()
        await wait_until(lambda: c.converged([0, 1, 2]), within=5.0)
        await trio.sleep(5.0)
        assert set(c.gossipers[3].endpoint_states()) == {c.host_ids[3]}
        for o in range(3):
            assert c.host_ids[3] not in c.gossipers[o].endpoint_states()
        assert c.net.rejected and all("cluster name mismatch" in r for r in c.net.rejected)
        nursery.cancel_scope.cancel()


async def test_misbehaving_peers_do_not_stop_gossip(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        c = Cluster(nursery, 5)
        await c.start_all()
        await wait_until(c.converged, within=5.0)
        c.stop(3)
        c.net.down.discard(c.addresses[3])
        c.net.hung.add(c.addresses[3])  # never answers, never fails
        c.stop(4)
        c.net.down.discard(c.addresses[4])
        c.net.garbage.add(c.addresses[4])  # answers nonsense
        await wait_until(
            lambda: all(
                not c.gossipers[o].is_alive(c.host_ids[i]) for o in range(3) for i in (3, 4)
            ),
            within=15.0,
        )
        before = [c.gossipers[o].local_state.heartbeat.version for o in range(3)]
        await trio.sleep(10.0)
        for o in range(3):
            beats = c.gossipers[o].local_state.heartbeat.version - before[o]
            assert beats >= 10.0 / INTERVAL - 1  # the loop kept its rhythm
            assert len(c.gossipers[o]._in_flight) <= 2  # at most one exchange per peer
        assert c.converged([0, 1, 2])
        assert all(
            c.dead_events(o) == [c.host_ids[3], c.host_ids[4]]
            or c.dead_events(o) == [c.host_ids[4], c.host_ids[3]]
            for o in range(3)
        )
        nursery.cancel_scope.cancel()


async def test_run_starts_at_once_and_only_once(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        c = Cluster(nursery, 1, seeds=[])
        g = c.gossipers[0]
        start = trio.current_time()
        await c.start(0)
        assert trio.current_time() == start
        assert g.local_state.heartbeat.version == g.local_state.max_version  # first beat done
        with pytest.raises(RuntimeError, match="already running"):
            await g.run()
        c.stop(0)
        await trio.sleep(1.0)
        await c.start(0)  # may run again after being cancelled
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()


async def test_spread_local_state_reaches_every_live_peer(autojump_clock: trio.abc.Clock) -> None:
    """What a decommissioned node waits on before it stops: every live peer holds its LEFT,
    straight from it, however lossy the network; a peer it cannot reach is named."""
    async with trio.open_nursery() as nursery:
        c = Cluster(nursery, 5)
        await c.start_all()
        await wait_until(c.converged, within=5.0)
        c.net.loss = 0.2  # each exchange is four messages
        c.net.partition(c.addresses[0], c.addresses[4])  # 4 can still learn it through others
        c.stop(3)  # gone, but still judged live by node 0 for a while
        leaving = c.gossipers[0]
        leaving.set_application_state("STATUS", "LEFT")
        missed = await leaving.spread_local_state(timeout=20 * INTERVAL)
        assert missed == sorted([c.addresses[3], c.addresses[4]])
        for o in (1, 2):
            assert c.sees(o, 0).status == "LEFT"  # type: ignore[union-attr]
        assert c.sees(3, 0).status != "LEFT"  # type: ignore[union-attr]
        c.net.loss = 0.0
        c.net.cut.clear()
        await wait_until(lambda: not leaving.is_alive(c.host_ids[3]), within=30.0)
        assert await leaving.spread_local_state(timeout=20 * INTERVAL) == []
        assert c.sees(4, 0).status == "LEFT"  # type: ignore[union-attr]
        nursery.cancel_scope.cancel()
