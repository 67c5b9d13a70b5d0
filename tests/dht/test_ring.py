"""The ring snapshot: ownership, vnode ranges, the successor walk."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringd.dht import EmptyRingError, NodeInfo, Range, Ring, token_for
from ringd.dht.tokens import MAX_TOKEN, MIN_TOKEN, RING_SIZE

edgy_tokens = st.one_of(
    st.integers(min_value=MIN_TOKEN, max_value=MAX_TOKEN),
    st.sampled_from([MIN_TOKEN, MIN_TOKEN + 1, -1, 0, 1, MAX_TOKEN - 1, MAX_TOKEN]),
)


@st.composite
def rings(draw: st.DrawFn, max_nodes: int = 8, max_tokens: int = 6) -> Ring:
    n_nodes = draw(st.integers(min_value=1, max_value=max_nodes))
    per_node = [draw(st.integers(min_value=1, max_value=max_tokens)) for _ in range(n_nodes)]
    all_tokens = draw(
        st.lists(edgy_tokens, min_size=sum(per_node), max_size=sum(per_node), unique=True)
    )
    nodes = []
    pos = 0
    for i, count in enumerate(per_node):
        nodes.append(
            NodeInfo(
                host_id=f"h{i}",
                address=f"127.0.0.{i + 1}:7000",
                dc=f"dc{i % 2}",
                rack=f"r{i % 3}",
                tokens=tuple(all_tokens[pos : pos + count]),
            )
        )
        pos += count
    return Ring(nodes)


def three_node_ring() -> Ring:
    return Ring(
        {
            "a": NodeInfo("a", "127.0.0.1:7000", tokens=(0, 300)),
            "b": NodeInfo("b", "127.0.0.2:7000", tokens=(100,)),
            "c": NodeInfo("c", "127.0.0.3:7000", tokens=(200,)),
        }
    )


def test_owner_is_first_token_at_or_after() -> None:
    ring = three_node_ring()
    assert ring.tokens == (0, 100, 200, 300)
    assert ring.token_owners == ("a", "b", "c", "a")
    assert ring.owner(0) == "a"
    assert ring.owner(1) == "b"
    assert ring.owner(100) == "b"
    assert ring.owner(150) == "c"
    assert ring.owner(250) == "a"
    assert ring.owner(301) == "a"  # wraps to the first token
    assert ring.owner(MAX_TOKEN) == "a"
    assert ring.owner(MIN_TOKEN) == "a"


def test_ranges_and_primary_ranges() -> None:
    ring = three_node_ring()
    assert ring.ranges() == (
        (Range(300, 0), "a"),
        (Range(0, 100), "b"),
        (Range(100, 200), "c"),
        (Range(200, 300), "a"),
    )
    assert ring.primary_ranges("a") == [Range(300, 0), Range(200, 300)]
    assert ring.primary_ranges("b") == [Range(0, 100)]
    assert ring.primary_ranges("nobody") == []
    assert ring.range_for(150) == Range(100, 200)
    assert ring.range_for(MAX_TOKEN) == Range(300, 0)


def test_walk_and_preference_list() -> None:
    ring = three_node_ring()
    assert list(ring.walk(150)) == [(200, "c"), (300, "a"), (0, "a"), (100, "b")]
    assert list(ring.preference_list(150)) == ["c", "a", "b"]
    assert list(ring.preference_list(350)) == ["a", "b", "c"]


def test_single_token_ring_owns_everything() -> None:
    ring = Ring([NodeInfo("solo", "127.0.0.1:7000", tokens=(42,))])
    assert ring.ranges() == ((Range(42, 42), "solo"),)
    assert ring.ranges()[0][0].is_full
    for t in (MIN_TOKEN, 0, 42, 43, MAX_TOKEN):
        assert ring.owner(t) == "solo"


def test_empty_ring() -> None:
    ring = Ring()
    assert ring.is_empty
    assert ring.ranges() == ()
    with pytest.raises(EmptyRingError):
        ring.owner(0)
    assert list(Ring([NodeInfo("j", "x:1")]).ranges()) == []


def test_duplicate_token_rejected() -> None:
    with pytest.raises(ValueError, match="claimed by both"):
        Ring([NodeInfo("a", "x:1", tokens=(5,)), NodeInfo("b", "x:2", tokens=(5,))])


def test_mapping_key_must_match_host_id() -> None:
    with pytest.raises(ValueError):
        Ring({"a": NodeInfo("b", "x:1", tokens=(1,))})
    with pytest.raises(ValueError):
        Ring([NodeInfo("a", "x:1", tokens=(1,)), NodeInfo("a", "x:1", tokens=(2,))])


def test_nodeinfo_normalises_and_validates() -> None:
    info = NodeInfo("a", "x:1", tokens=(3, 1, 3))
    assert info.tokens == (1, 3)
    with pytest.raises(ValueError):
        NodeInfo("a", "x:1", tokens=(MAX_TOKEN + 1,))
    with pytest.raises(ValueError):
        NodeInfo("", "x:1")
    with pytest.raises(ValueError):
        NodeInfo("a", "x:1", dc="")


def test_datacenters_and_racks() -> None:
    ring = Ring(
        [
            NodeInfo("a", "x:1", dc="east", rack="r1", tokens=(1,)),
            NodeInfo("b", "x:2", dc="east", rack="r2", tokens=(2,)),
            NodeInfo("c", "x:3", dc="west", rack="r1", tokens=(3,)),
            NodeInfo("joining", "x:4", dc="west", rack="r1"),
        ]
    )
    assert dict(ring.datacenters) == {"east": ("a", "b"), "west": ("c",)}
    assert ring.racks("east") == {"r1": ("a",), "r2": ("b",)}
    assert ring.dc_of("joining") == "west"
    assert ring.rack_of("b") == "r2"


def test_with_and_without_node_and_equality() -> None:
    ring = three_node_ring()
    bigger = ring.with_node(NodeInfo("d", "x:4", tokens=(50,)))
    assert bigger.owner(25) == "d" and ring.owner(25) == "b"
    assert bigger.without_node("d") == ring
    assert hash(bigger.without_node("d")) == hash(ring)
    assert bigger != ring


def test_derived_is_memoised_per_snapshot() -> None:
    ring = three_node_ring()
    calls: list[Ring] = []

    def compute(r: Ring) -> int:
        calls.append(r)
        return len(r.tokens)

    assert ring.derived("k", compute) == 4
    assert ring.derived("k", compute) == 4
    assert len(calls) == 1
    assert ring.ranges() is ring.ranges()


def test_random_tokens_avoid_ring_tokens() -> None:
    ring = three_node_ring()
    new = ring.random_tokens(16, random.Random(7))
    assert len(set(new)) == 16 and not set(new) & set(ring.tokens)
    # A joining node with these tokens fits on the ring.
    ring.with_node(NodeInfo("d", "x:4", tokens=tuple(new)))


def test_owner_of_real_keys() -> None:
    ring = three_node_ring()
    for key in (b"alpha", b"beta", b"gamma"):
        t = token_for(key)
        assert ring.range_for(t).contains(t)


@given(rings(), edgy_tokens)
def test_every_token_in_exactly_one_range(ring: Ring, token: int) -> None:
    holders = [(r, owner) for r, owner in ring.ranges() if r.contains(token)]
    assert len(holders) == 1
    r, owner = holders[0]
    assert owner == ring.owner(token)
    assert r == ring.range_for(token)


@given(rings())
def test_ranges_tile_the_ring(ring: Ring) -> None:
    ranges = [r for r, _ in ring.ranges()]
    assert len(ranges) == len(ring.tokens)
    assert sum(r.width for r in ranges) == RING_SIZE
    # consecutive: each range starts where the previous one ends
    for prev, cur in zip(ranges[-1:] + ranges[:-1], ranges, strict=True):
        assert prev.end == cur.start
    for token in ring.tokens:
        # a ring token belongs to the range it ends, not the next one
        assert ring.range_for(token).end == token


@given(rings())
def test_primary_ranges_partition_ranges(ring: Ring) -> None:
    total = sum(len(ring.primary_ranges(h)) for h in ring.nodes)
    assert total == len(ring.ranges())
    for host_id, info in ring.nodes.items():
        assert sorted(r.end for r in ring.primary_ranges(host_id)) == list(info.tokens)


@given(rings(), edgy_tokens)
def test_walk_visits_every_token_once_from_owner(ring: Ring, token: int) -> None:
    walk = list(ring.walk(token))
    assert sorted(t for t, _ in walk) == list(ring.tokens)
    assert walk[0][1] == ring.owner(token)
    prefs = list(ring.preference_list(token))
    assert sorted(prefs) == sorted(ring.nodes)
    assert prefs[0] == ring.owner(token)
