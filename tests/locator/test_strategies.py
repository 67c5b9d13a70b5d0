"""Replica placement: SimpleStrategy and NetworkTopologyStrategy."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringd.dht import MAX_TOKEN, MIN_TOKEN, NodeInfo, Ring
from ringd.locator import (
    NetworkTopologyStrategy,
    SimpleStrategy,
    effective_ownership,
    strategy_from_config,
)

any_token = st.integers(min_value=MIN_TOKEN, max_value=MAX_TOKEN)


@st.composite
def topo_rings(draw: st.DrawFn) -> Ring:
    """Rings of 1-10 nodes over up to 3 datacenters and 3 racks each, 1-4 vnodes per node."""
    n_nodes = draw(st.integers(min_value=1, max_value=10))
    per_node = [draw(st.integers(min_value=1, max_value=4)) for _ in range(n_nodes)]
    tokens = draw(st.lists(any_token, min_size=sum(per_node), max_size=sum(per_node), unique=True))
    nodes = []
    pos = 0
    for i, count in enumerate(per_node):
        dc = draw(st.sampled_from(["dc1", "dc2", "dc3"]))
        rack = draw(st.sampled_from(["r1", "r2", "r3"]))
        own = tuple(tokens[pos : pos + count])
        nodes.append(NodeInfo(f"h{i}", f"10.0.0.{i}:7000", dc, rack, own))
        pos += count
    return Ring(nodes)


nts_factors = st.dictionaries(
    st.sampled_from(["dc1", "dc2", "dc3", "dc4"]), st.integers(min_value=0, max_value=5), min_size=1
).filter(lambda d: any(d.values()))


# The topology below is the one the DataStax C# driver checks its token map against in
# TokenTests.TokenMap_NetworkTopologyStrategy_With_Keyspace_Test (one token per node, one rack).
def driver_ring() -> Ring:
    spec = [("0", "dc1", 0), ("1", "dc1", 100), ("2", "dc1", 200)]
    spec += [("100", "dc2", 1), ("101", "dc2", 101), ("102", "dc2", 201)]
    return Ring([NodeInfo(h, f"192.168.0.{h}", dc, "rack1", (t,)) for h, dc, t in spec])


def test_nts_matches_driver_token_map() -> None:
    ring = driver_ring()
    ks1 = NetworkTopologyStrategy({"dc1": 2, "dc2": 2})
    assert ks1.replicas(ring, 0) == ["0", "100", "1", "101"]
    assert ks1.replicas(ring, 200) == ["2", "102", "0", "100"]
    assert ks1.replicas(ring, 190) == ["2", "102", "0", "100"]
    ks3 = NetworkTopologyStrategy({"dc1": 3, "dc2": 1, "dc3": 5})
    assert ks3.replicas(ring, 0) == ["0", "100", "1", "2"]
    assert ks3.replicas(ring, 201) == ["102", "0", "1", "2"]
    ks4 = NetworkTopologyStrategy({"dc1": 5})
    assert ks4.replicas(ring, 0) == ["0", "1", "2"]


def test_simple_matches_driver_token_map() -> None:
    ring = driver_ring()
    assert SimpleStrategy(3).replicas(ring, 5000) == ["0", "100", "1"]
    small = Ring([NodeInfo(h, h, tokens=(t,)) for h, t in [("0", 0), ("1", 10), ("2", 20)]])
    assert SimpleStrategy(2).replicas(small, 0) == ["0", "1"]
    assert SimpleStrategy(2).replicas(small, -100) == ["0", "1"]
    assert SimpleStrategy(2).replicas(small, 500000) == ["0", "1"]
    assert SimpleStrategy(2).replicas(small, 20) == ["2", "0"]
    assert SimpleStrategy(2).replicas(small, 19) == ["2", "0"]
    assert SimpleStrategy(10).replicas(small, 5) == ["1", "2", "0"]


def test_simple_skips_a_node_already_chosen() -> None:
    ring = Ring([NodeInfo("a", "a", tokens=(0, 10)), NodeInfo("b", "b", tokens=(20,))])
    assert SimpleStrategy(2).replicas(ring, 5) == ["a", "b"]


def test_nts_prefers_new_racks() -> None:
    # Walk order from token 0: a(r1) b(r1) c(r2) d(r2) e(r3)
    ring = Ring(
        [
            NodeInfo("a", "a", "dc", "r1", (0,)),
            NodeInfo("b", "b", "dc", "r1", (10,)),
            NodeInfo("c", "c", "dc", "r2", (20,)),
            NodeInfo("d", "d", "dc", "r2", (30,)),
            NodeInfo("e", "e", "dc", "r3", (40,)),
        ]
    )
    assert NetworkTopologyStrategy({"dc": 3}).replicas(ring, 0) == ["a", "c", "e"]
    assert NetworkTopologyStrategy({"dc": 2}).replicas(ring, 0) == ["a", "c"]
    # 4 replicas over 3 racks: one repeat allowed, taken by the first repeat met (Cassandra).
    assert NetworkTopologyStrategy({"dc": 4}).replicas(ring, 0) == ["a", "b", "c", "e"]
    assert NetworkTopologyStrategy({"dc": 5}).replicas(ring, 0) == ["a", "b", "c", "d", "e"]


def test_empty_ring_and_missing_dc() -> None:
    assert SimpleStrategy(3).replicas(Ring(), 0) == []
    ring = driver_ring()
    assert NetworkTopologyStrategy({"nowhere": 3}).replicas(ring, 0) == []


def test_cached_lookup_is_stable() -> None:
    ring = driver_ring()
    s = NetworkTopologyStrategy({"dc1": 2, "dc2": 1})
    first = s.replicas(ring, 50)
    first.append("mutated")  # callers get their own list
    assert s.replicas(ring, 50) == s.replicas(ring, 99) == ["1", "101", "2"]
    # an equal strategy object shares the snapshot's cache
    assert NetworkTopologyStrategy({"dc2": 1, "dc1": 2}).replicas_at(ring, 2) is s.replicas_at(
        ring, 2
    )


def test_range_replicas_and_ranges_for() -> None:
    ring = driver_ring()
    s = SimpleStrategy(2)
    pairs = s.range_replicas(ring)
    assert len(pairs) == 6
    assert [r for r, hosts in pairs if "0" in hosts] == s.ranges_for(ring, "0")
    assert len(s.ranges_for(ring, "0")) == 2


@given(topo_rings(), st.integers(min_value=1, max_value=12), any_token)
def test_simple_replicas_distinct_count_deterministic(ring: Ring, rf: int, token: int) -> None:
    s = SimpleStrategy(rf)
    reps = s.replicas(ring, token)
    assert len(reps) == len(set(reps)) == min(rf, len(ring.nodes))
    assert reps[0] == ring.owner(token)
    assert reps == list(ring.preference_list(token))[:rf]
    assert reps == SimpleStrategy(rf).replicas(Ring(ring.nodes), token)


@given(topo_rings(), nts_factors, any_token)
def test_nts_per_dc_counts_and_racks(ring: Ring, factors: dict[str, int], token: int) -> None:
    s = NetworkTopologyStrategy(factors)
    reps = s.replicas(ring, token)
    assert len(reps) == len(set(reps))
    # deterministic, and independent of cache state
    assert reps == NetworkTopologyStrategy(factors).replicas(Ring(ring.nodes), token)
    # ring-walk order: a subsequence of the preference list
    walk = list(ring.preference_list(token))
    positions = [walk.index(h) for h in reps]
    assert positions == sorted(positions)
    for dc in ["dc1", "dc2", "dc3", "dc4"]:
        in_dc = [h for h in reps if ring.dc_of(h) == dc]
        hosts_in_dc = ring.datacenters.get(dc, ())
        factor = factors.get(dc, 0)
        assert len(in_dc) == min(factor, len(hosts_in_dc))
        racks_in_dc = len(ring.racks(dc))
        assert len({ring.rack_of(h) for h in in_dc}) == min(len(in_dc), racks_in_dc)
    assert len(reps) <= s.total_replication_factor


@given(topo_rings(), nts_factors)
def test_effective_ownership_adds_up(ring: Ring, factors: dict[str, int]) -> None:
    s = NetworkTopologyStrategy(factors)
    owns = effective_ownership(ring, s)
    assert set(owns) == set(ring.nodes)
    expected = sum(min(f, len(ring.datacenters.get(dc, ()))) for dc, f in factors.items())
    assert math.isclose(sum(owns.values()), expected, abs_tol=1e-9)
    assert all(0.0 <= v <= 1.0 + 1e-12 for v in owns.values())


@given(topo_rings(), st.integers(min_value=1, max_value=12))
def test_effective_ownership_simple(ring: Ring, rf: int) -> None:
    owns = effective_ownership(ring, SimpleStrategy(rf))
    assert math.isclose(sum(owns.values()), min(rf, len(ring.nodes)), abs_tol=1e-9)
    if rf >= len(ring.nodes):
        assert all(math.isclose(v, 1.0) for v in owns.values())


def test_effective_ownership_even_ring() -> None:
    step = 2**64 // 4
    ring = Ring([NodeInfo(f"n{i}", "x", tokens=(MIN_TOKEN + step * i,)) for i in range(4)])
    owns = effective_ownership(ring, SimpleStrategy(2))
    assert owns == {"n0": 0.5, "n1": 0.5, "n2": 0.5, "n3": 0.5}


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"class": "SimpleStrategy", "replication_factor": 3}, SimpleStrategy(3)),
        ({"class": "SimpleStrategy", "replication_factor": "2"}, SimpleStrategy(2)),
        ({"class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": 1},
         SimpleStrategy(1)),
        ({"class": "simplestrategy", "replication_factor": 1}, SimpleStrategy(1)),
        ({"class": "NetworkTopologyStrategy", "dc1": 3, "dc2": 2},
         NetworkTopologyStrategy({"dc1": 3, "dc2": 2})),
        ({"class": "NetworkTopologyStrategy", "dc1": "3", "dc2": 0},
         NetworkTopologyStrategy({"dc1": 3, "dc2": 0})),
    ],
)  # fmt: skip
def test_strategy_from_config(config: dict[str, Any], expected: object) -> None:
    s = strategy_from_config(config)
    assert s == expected
    assert hash(s) == hash(expected)
    assert strategy_from_config(s.to_config()) == s


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "missing 'class'"),
        ({"class": 3}, "must be a string"),
        ({"class": "LocalStrategy"}, "unknown replication class"),
        ({"class": "SimpleStrategy"}, "requires 'replication_factor'"),
        ({"class": "SimpleStrategy", "replication_factor": 0}, "at least 1"),
        ({"class": "SimpleStrategy", "replication_factor": -1}, "at least 1"),
        ({"class": "SimpleStrategy", "replication_factor": "three"}, "must be an integer"),
        ({"class": "SimpleStrategy", "replication_factor": 2.5}, "must be an integer"),
        ({"class": "SimpleStrategy", "replication_factor": True}, "must be an integer"),
        ({"class": "SimpleStrategy", "replication_factor": 3, "dc1": 2}, "unknown option"),
        ({"class": "NetworkTopologyStrategy"}, "factor per datacenter"),
        ({"class": "NetworkTopologyStrategy", "replication_factor": 3}, "not 'replication_factor'"),
        ({"class": "NetworkTopologyStrategy", "dc1": 0}, "above 0"),
        ({"class": "NetworkTopologyStrategy", "dc1": -2}, "at least 0"),
        ({"class": "NetworkTopologyStrategy", "dc1": "x"}, "must be an integer"),
        ({"class": "NetworkTopologyStrategy", "": 3}, "non-empty"),
    ],
)
def test_strategy_from_config_rejects(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        strategy_from_config(config)


def test_strategy_from_config_rejects_non_mapping() -> None:
    with pytest.raises(ValueError, match="must be a map"):
        strategy_from_config(["SimpleStrategy"])  # type: ignore[arg-type]


def test_factors() -> None:
    s = NetworkTopologyStrategy({"dc2": 2, "dc1": 3, "dc3": 0})
    assert s.total_replication_factor == 5
    assert s.factor_for_dc("dc1") == 3 and s.factor_for_dc("dc3") == 0
    assert s.factor_for_dc("elsewhere") == 0
    assert s.datacenters == ["dc1", "dc2"]
    assert s.to_config() == {"class": "NetworkTopologyStrategy", "dc1": 3, "dc2": 2, "dc3": 0}
    simple = SimpleStrategy(3)
    assert simple.total_replication_factor == simple.factor_for_dc("any") == 3
    assert simple != s and SimpleStrategy(3) == simple and SimpleStrategy(2) != simple


def test_replica_dcs_is_cached_and_ordered() -> None:
    ring = driver_ring()
    s = NetworkTopologyStrategy({"dc1": 2, "dc2": 2})
    dcs = s.replica_dcs(ring, 0)
    assert list(dcs.items()) == [("0", "dc1"), ("100", "dc2"), ("1", "dc1"), ("101", "dc2")]
    assert s.replica_dcs(ring, -5) is dcs
    with pytest.raises(TypeError):
        dcs["0"] = "elsewhere"  # type: ignore[index]
    assert dict(SimpleStrategy(1).replica_dcs(Ring(), 0)) == {}
