"""Topology.plan answers from a cache of immutable plans: a change of liveness, consistency or
ring gives a new plan, never a stale one."""

from __future__ import annotations

from typing import Any

import pytest

from ringd.dht.ring import NodeInfo, Ring
from ringd.locator.consistency import Unavailable
from ringd.schema import Keyspace
from ringd.service.coordination import Consistency
from ringd.service.topology import Topology


class Liveness:
    """The gossiper's judgement of liveness (all Topology.plan asks of it)."""

    def __init__(self) -> None:
        self.down: set[str] = set()

    def is_alive(self, host_id: str) -> bool:
        return host_id not in self.down


def topology(live: Liveness) -> Topology:
    t = Topology(
        host_id="a",
        address="127.0.0.1:1",
        dc="dc1",
        rack="r1",
        tokens=[0],
        gossiper=live,  # type: ignore[arg-type]
        interval=1.0,
    )
    t.ring = Ring(
        NodeInfo(h, f"127.0.0.{i}:1", "dc1", "r1", (tok,))
        for i, (h, tok) in enumerate([("a", 0), ("b", 1 << 60), ("c", -(1 << 60))], 1)
    )
    return t


KS = Keyspace("ks", {"class": "SimpleStrategy", "replication_factor": 3})


def plan(t: Topology, level: str = "QUORUM", write: bool = True) -> Any:
    return t.plan(KS, t.replicas(KS, 5), Consistency(level), write=write)


def test_plans_follow_liveness_and_level() -> None:
    live = Liveness()
    t = topology(live)
    first = plan(t)
    assert plan(t) is first  # the same question: the cached plan
    assert set(first.contacts) == {"a", "b", "c"} and first.required == 2
    live.down.add("b")
    assert set(plan(t).contacts) == {"a", "c"}
    assert plan(t, "ONE").required == 1
    assert plan(t, "ONE", write=False).contacts == ("a",)
    live.down.add("c")
    with pytest.raises(Unavailable):
        plan(t)
    live.down.clear()
    assert plan(t) is first
