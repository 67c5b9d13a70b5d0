"""Clock offsets from gossip round trips: the estimate, the median rule, steps of the local clock,
and three gossipers whose third clock steps ahead on virtual time, with its offset guard."""

from __future__ import annotations

import random
from typing import Any

import cbor2
import pytest
import trio
import trio.testing

from ringd.gms.clock import ClockOffsets
from ringd.gms.gossiper import Gossiper
from ringd.gms.messages import GOSSIP_ACK2, GOSSIP_SYN
from ringd.metrics import CoordinatorMetrics
from ringd.service.clock_guard import ClockGuard


def test_estimate_is_the_shortest_round_trip_sample() -> None:
    offsets = ClockOffsets()
    offsets.record("b", sent=100.0, peer_time=102.0, received=100.2)  # +1.9 ± 0.1
    offsets.record("b", sent=200.0, peer_time=203.0, received=202.0)  # slow: +2.0 ± 1.0
    best = offsets.of("b")
    assert best is not None
    assert abs(best.seconds - 1.9) < 1e-9 and abs(best.error - 0.1) < 1e-9
    offsets.record("b", sent=300.0, peer_time=250.0, received=299.0)  # clock stepped back
    assert offsets.of("b") == best


def test_local_offset_is_minus_the_median() -> None:
    offsets = ClockOffsets()
    # this node is 2 s ahead: both peers look 2 s behind
    offsets.record("b", 10.0, 8.0, 10.0)
    offsets.record("c", 10.0, 8.0, 10.0)
    local = offsets.local_offset(["b", "c"])
    assert local is not None and abs(local.seconds - 2.0) < 1e-9
    # one peer is off: the median keeps this node at 0
    skewed = ClockOffsets()
    skewed.record("b", 10.0, 10.0, 10.0)
    skewed.record("c", 10.0, 13.0, 10.0)
    local = skewed.local_offset(["b", "c"])
    assert local is not None and local.seconds == 0.0
    assert ClockOffsets().local_offset(["b"]) is None


def test_one_measured_peer_of_two_gives_no_estimate_and_a_lone_peer_half() -> None:
    offsets = ClockOffsets()
    offsets.record("b", 10.0, 8.0, 10.0)  # b looks 2 s behind: this node or b is off
    assert offsets.local_offset(["b", "c"]) is None  # c would tell which
    lone = offsets.local_offset(["b"])
    assert lone is not None and abs(lone.seconds - 1.0) < 1e-9


def test_a_step_of_the_local_clock_drops_the_samples_taken_before() -> None:
    offsets = ClockOffsets()
    for i in range(8):  # in step with both peers, round trips of 2 ms
        t = 100.0 + i
        offsets.record("b", t, t + 0.001, t + 0.002, monotonic=(t, t + 0.002))
        offsets.record("c", t, t + 0.001, t + 0.002, monotonic=(t, t + 0.002))
    # this node's wall clock steps 2 s ahead; a slower exchange (4 ms) after it, with b only
    t = 110.0
    offsets.record("b", t + 2, t + 0.002, t + 2.004, monotonic=(t, t + 0.004))
    assert offsets.of("c") is None  # its samples were all taken before the step
    after = offsets.of("b")
    assert after is not None and abs(after.seconds + 2.0) < 1e-9
    assert offsets.local_offset(["b", "c"]) is None  # c is not measured again yet
    offsets.record("c", t + 3, t + 1.002, t + 3.004, monotonic=(t + 1, t + 1.004))
    local = offsets.local_offset(["b", "c"])
    assert local is not None and abs(local.seconds - 2.0) < 1e-9
    # an exchange across a step back is dropped, and so is everything before it
    offsets.record("b", t + 5, t + 3.001, t + 3.002, monotonic=(t + 3, t + 3.002))
    assert offsets.of("b") is None and offsets.of("c") is None


async def test_gossip_measures_a_skewed_node(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    skews = {"n1": 0.0, "n2": 0.0, "n3": 0.0}  # n3's wall clock will step 2 s ahead
    addresses = {h: f"127.0.0.{i + 1}:7000" for i, h in enumerate(skews)}
    nodes: dict[str, Gossiper] = {}
    rng = random.Random(7)

    def sender(src: str) -> Any:
        async def send(address: str, verb: str, args: dict[str, Any]) -> Any:
            await trio.sleep(rng.uniform(0.001, 0.004))
            node = next(g for g in nodes.values() if g.local_address == address)
            handler = {GOSSIP_SYN: node.handle_syn, GOSSIP_ACK2: node.handle_ack2}[verb]
            answer = cbor2.loads(cbor2.dumps(handler(cbor2.loads(cbor2.dumps(args)))))
            await trio.sleep(rng.uniform(0.001, 0.004))
            return answer

        return send

    for host in skews:
        nodes[host] = Gossiper(
            host,
            addresses[host],
            [addresses["n1"]],
            sender(host),
            generation=1,
            rng=random.Random(rng.random()),
            wall=lambda host=host: trio.current_time() + 1_000_000.0 + skews[host],
        )
    metrics = CoordinatorMetrics()
    guard = ClockGuard(gossiper=nodes["n3"], metrics=metrics, max_offset_ms=500, interval=0.25)
    async with trio.open_nursery() as nursery:
        for g in nodes.values():
            await nursery.start(g.run)
        await nursery.start(guard.run)
        await trio.sleep(20)  # every node has samples of every peer in step
        assert guard.exceeded_ms is None
        skews["n3"] = 2.0
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    # the first refusal already carries the whole offset: the samples from before the step are
    # gone, and one peer alone is not enough to say
    assert guard.exceeded_ms is not None and abs(guard.exceeded_ms - 2000) < 10
    refusals = [r.getMessage() for r in caplog.records]
    refusals = [m for m in refusals if "refusing to coordinate" in m]
    assert len(refusals) == 1 and metrics.counters["clock_offset_exceeded"] == 1
    logged_ms = int(refusals[0].split("clock is ")[1].split(" ms")[0])
    assert abs(logged_ms - 2000) < 10, refusals

    for host, g in nodes.items():
        local = g.local_clock_offset()
        assert local is not None
        assert abs(local.seconds - skews[host]) < 0.01, (host, local)
        assert abs(g.local_state.get("CLOCK_OFFSET_MS") - skews[host] * 1000) < 20
    # every node learns every node's offset through gossip
    n3_seen_by_n1 = nodes["n1"].endpoint_state("n3")
    assert n3_seen_by_n1 is not None and abs(n3_seen_by_n1.get("CLOCK_OFFSET_MS") - 2000) < 20
