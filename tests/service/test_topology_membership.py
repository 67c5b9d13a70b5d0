"""Topology follows gossip membership inside the gossip update itself: when a node is marked
down for having LEFT, the ring no longer has it, so no write planned in between counts it as a
replica that is down; a JOINING node is pending from the update that announces it."""

from __future__ import annotations

import random
from typing import Any

import trio

from ringd.gms.gossiper import EVENT_DEAD, Gossiper
from ringd.gms.messages import ack2_to_wire
from ringd.gms.state import EndpointState, HeartBeatState, VersionedValue
from ringd.schema import Keyspace
from ringd.service.topology import Topology

KS = Keyspace("ks", {"class": "SimpleStrategy", "replication_factor": 2})


async def never(address: str, verb: str, args: dict[str, Any]) -> dict[str, Any]:
    raise AssertionError("no network in this test")


def news(host_id: str, hb: int, status: str, version: int, token: int) -> dict[str, Any]:
    app = {
        "STATUS": VersionedValue(status, version),
        "TOKENS": VersionedValue([token], 1),
        "ADDRESS": VersionedValue(f"{host_id}.example:7000", 1),
        "HOST_ID": VersionedValue(host_id, 1),
    }
    return ack2_to_wire({host_id: EndpointState(HeartBeatState(100, hb), app)})


async def test_the_ring_changes_before_gossip_marks_a_leaving_node_down() -> None:
    gossiper = Gossiper(
        "a",
        "a.example:7000",
        [],
        never,
        generation=100,
        initial_states={"STATUS": "NORMAL", "TOKENS": [0]},
        rng=random.Random(1),
    )
    topology = Topology(
        host_id="a",
        address="a.example:7000",
        dc="dc1",
        rack="rack1",
        tokens=[0],
        gossiper=gossiper,
        interval=60.0,  # the periodic rebuild never comes in this test
    )
    ring_when_dead: list[set[str]] = []

    def on_event(event: str, host_id: str, state: Any) -> None:
        if event == EVENT_DEAD:
            ring_when_dead.append(set(topology.ring.nodes))

    async with trio.open_nursery() as nursery:
        await nursery.start(topology.run)
        gossiper.subscribe(on_event)
        gossiper.handle_ack2(news("b", 5, "NORMAL", 2, 1 << 60))
        gossiper.handle_ack2(news("b", 6, "NORMAL", 2, 1 << 60))  # alive once it moves
        gossiper.handle_ack2(news("c", 1, "JOINING", 2, -(1 << 60)))
        # no checkpoint since: the updates alone changed the ring and the pending ranges
        assert set(topology.ring.nodes) == {"a", "b"} and gossiper.is_alive("b")
        assert topology.pending_replicas(KS, -(1 << 60) - 5) == ["c"]
        gossiper.handle_ack2(news("b", 7, "LEFT", 7, 1 << 60))
        assert ring_when_dead == [{"a"}]
        assert not gossiper.is_alive("b")
        nursery.cancel_scope.cancel()
