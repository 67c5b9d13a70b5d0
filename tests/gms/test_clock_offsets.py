"""Clock offsets from gossip round trips: the estimate, the median rule, and three gossipers with
one skewed clock on virtual time."""

from __future__ import annotations

import random
from typing import Any

import cbor2
import trio
import trio.testing

from ringd.gms.clock import ClockOffsets
from ringd.gms.gossiper import Gossiper
from ringd.gms.messages import GOSSIP_ACK2, GOSSIP_SYN


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


async def test_gossip_measures_a_skewed_node(autojump_clock: trio.testing.MockClock) -> None:
    skews = {"n1": 0.0, "n2": 0.0, "n3": 2.0}  # n3's wall clock runs 2 s ahead
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

    for host, skew in skews.items():
        nodes[host] = Gossiper(
            host,
            addresses[host],
            [addresses["n1"]],
            sender(host),
            generation=1,
            rng=random.Random(rng.random()),
            wall=lambda skew=skew: trio.current_time() + 1_000_000.0 + skew,
        )
    async with trio.open_nursery() as nursery:
        for g in nodes.values():
            await nursery.start(g.run)
        await trio.sleep(30)
        nursery.cancel_scope.cancel()

    for host, g in nodes.items():
        local = g.local_clock_offset()
        assert local is not None
        assert abs(local.seconds - skews[host]) < 0.01, (host, local)
        assert abs(g.local_state.get("CLOCK_OFFSET_MS") - skews[host] * 1000) < 20
    # every node learns every node's offset through gossip
    n3_seen_by_n1 = nodes["n1"].endpoint_state("n3")
    assert n3_seen_by_n1 is not None and abs(n3_seen_by_n1.get("CLOCK_OFFSET_MS") - 2000) < 20
