"""Which ranges a joining node streams and from whom (pure ring logic), and the pending
replicas coordinators add to writes while it joins."""

from __future__ import annotations

import random

import pytest

from ringd.dht.ring import NodeInfo, Ring
from ringd.dht.tokens import Range, random_tokens
from ringd.locator.strategies import strategy_from_config
from ringd.streaming.bootstrap import BootstrapError, range_sources


def ring(n: int, seed: int = 1) -> Ring:
    rng = random.Random(seed)
    return Ring([NodeInfo(f"n{i}", f"a{i}", tokens=tuple(random_tokens(8, rng))) for i in range(n)])


NEW = NodeInfo("new", "anew", tokens=tuple(random_tokens(8, random.Random(99))))


@pytest.mark.parametrize("rf", [1, 2, 3])
def test_every_new_range_comes_from_the_replica_losing_it(rf: int) -> None:
    before = ring(4)
    strategy = strategy_from_config({"class": "SimpleStrategy", "replication_factor": rf})
    sources = range_sources(before, NEW, strategy, lambda h: True, strict=True)
    after = before.with_node(NEW)
    streamed = [(r, src) for src, ranges in sources.items() for r in ranges]
    # the streamed ranges are exactly the ranges of the future ring the new node replicates
    mine = [r for r, _ in after.ranges() if "new" in strategy.replicas(after, r.end)]
    assert sorted(r for r, _ in streamed) == sorted(mine)
    for rng, src in streamed:
        assert src in strategy.replicas(before, rng.end)
        assert src not in strategy.replicas(after, rng.end)  # it loses the range


def test_a_down_losing_replica_fails_a_strict_bootstrap_only() -> None:
    before = ring(3)
    strategy = strategy_from_config({"class": "SimpleStrategy", "replication_factor": 2})
    losing = next(iter(range_sources(before, NEW, strategy, lambda h: True, strict=True)))
    with pytest.raises(BootstrapError, match="a consistent bootstrap needs it"):
        range_sources(before, NEW, strategy, lambda h: h != losing, strict=True, keyspace="ks")
    loose = range_sources(before, NEW, strategy, lambda h: h != losing, strict=False)
    assert losing not in loose and loose
    with pytest.raises(BootstrapError, match="no replica"):
        range_sources(before, NEW, strategy, lambda h: False, strict=False)


def test_more_replicas_than_nodes_streams_from_any_live_replica() -> None:
    before = ring(2)
    strategy = strategy_from_config({"class": "SimpleStrategy", "replication_factor": 3})
    sources = range_sources(before, NEW, strategy, lambda h: h != "n0", strict=True)
    assert set(sources) == {"n1"}
    assert sum(len(r) for r in sources.values()) == len(before.with_node(NEW).tokens)
    assert all(isinstance(r, Range) for rs in sources.values() for r in rs)
