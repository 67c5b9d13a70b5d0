"""Consistency arithmetic: required acknowledgements, Unavailable, whom to contact."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringd.dht import NodeInfo, Ring
from ringd.locator import (
    ConsistencyLevel,
    NetworkTopologyStrategy,
    ReplicaPlan,
    ReplicationStrategy,
    RequestKind,
    SimpleStrategy,
    Unavailable,
    fallback_nodes,
    plan_for_token,
    plan_request,
    quorum_for,
)

CL = ConsistencyLevel


def simple_natural(rf: int) -> dict[str, str]:
    return {f"n{i}": "dc1" for i in range(rf)}


# Two datacenters: east has e0,e1,e2; west has w0,w1 (replicas in ring-walk order).
NTS = NetworkTopologyStrategy({"east": 3, "west": 2})
NATURAL = {"e0": "east", "w0": "west", "e1": "east", "w1": "west", "e2": "east"}
EVERYONE = set(NATURAL)


def test_parse() -> None:
    assert CL.parse("quorum") is CL.QUORUM
    assert CL.parse(" Local_Quorum ") is CL.LOCAL_QUORUM
    assert CL.parse("local-one") is CL.LOCAL_ONE
    assert CL.parse(CL.ALL) is CL.ALL
    assert CL("EACH_QUORUM") is CL.EACH_QUORUM
    for bad in ("", "quorums", "SERIAL", "2"):
        with pytest.raises(ValueError, match="expected one of ANY, ONE"):
            CL.parse(bad)
    assert CL.LOCAL_ONE.is_local and not CL.QUORUM.is_local
    assert CL.ANY.writes_only and not CL.ONE.writes_only


def test_quorum_for() -> None:
    assert [quorum_for(n) for n in range(1, 8)] == [1, 2, 2, 3, 3, 4, 4]


_FIXED = {CL.ONE: 1, CL.TWO: 2, CL.THREE: 3, CL.LOCAL_ONE: 1}


def expected_required(level: ConsistencyLevel, rf: int) -> int:
    if level in _FIXED:
        return _FIXED[level]
    if level in (CL.QUORUM, CL.LOCAL_QUORUM, CL.EACH_QUORUM):
        return rf // 2 + 1
    assert level is CL.ALL
    return rf


levels_no_any = st.sampled_from([level for level in CL if level is not CL.ANY])


@given(
    levels_no_any,
    st.integers(min_value=1, max_value=9),
    st.data(),
    st.sampled_from(list(RequestKind)),
)
def test_single_dc_arithmetic(
    level: ConsistencyLevel, rf: int, data: st.DataObject, kind: RequestKind
) -> None:
    natural = simple_natural(rf)
    alive = set(data.draw(st.lists(st.sampled_from(sorted(natural)), unique=True)))
    required = expected_required(level, rf)
    strategy = SimpleStrategy(rf)
    if len(alive) < required:
        with pytest.raises(Unavailable) as info:
            plan_request(
                kind, strategy=strategy, natural=natural, alive=alive, local_dc="dc1", level=level
            )
        assert (info.value.required, info.value.alive) == (required, len(alive))
        assert info.value.dc == ("dc1" if level.is_local else None)
        return
    plan = plan_request(
        kind, strategy=strategy, natural=natural, alive=alive, local_dc="dc1", level=level
    )
    assert plan.required == required
    assert plan.level is level and plan.kind is kind
    alive_in_order = tuple(h for h in natural if h in alive)
    if kind is RequestKind.WRITE:
        assert plan.contacts == alive_in_order
        assert plan.data_replica is None and plan.digest_replicas == ()
    else:
        assert len(plan.contacts) == required
        assert set(plan.contacts) <= alive
        assert plan.data_replica == plan.contacts[0]
        assert plan.digest_replicas == plan.contacts[1:]


@given(
    st.integers(min_value=1, max_value=9),
    st.integers(min_value=-2, max_value=11),
    st.integers(min_value=0, max_value=9),
    st.sampled_from(list(RequestKind)),
)
def test_explicit_counts(rf: int, count: int, n_alive: int, kind: RequestKind) -> None:
    natural = simple_natural(rf)
    alive = set(list(natural)[: min(n_alive, rf)])
    name = "w" if kind is RequestKind.WRITE else "r"
    args = {"strategy": SimpleStrategy(rf), "natural": natural, "alive": alive, "local_dc": "dc1"}
    if count < 1:
        with pytest.raises(ValueError, match=f"{name}={count} must be at least 1"):
            plan_request(kind, count=count, **args)  # type: ignore[arg-type]
    elif count > rf:
        with pytest.raises(ValueError, match=f"^{name}={count} exceeds replication factor {rf}$"):
            plan_request(kind, count=count, **args)  # type: ignore[arg-type]
    elif len(alive) < count:
        with pytest.raises(Unavailable) as info:
            plan_request(kind, count=count, **args)  # type: ignore[arg-type]
        assert (info.value.required, info.value.alive, info.value.dc) == (count, len(alive), None)
    else:
        plan = plan_request(kind, count=count, **args)  # type: ignore[arg-type]
        assert plan.required == count and plan.level is None


def test_explicit_count_message() -> None:
    with pytest.raises(ValueError) as info:
        plan_request(
            "write",
            strategy=SimpleStrategy(3),
            natural=simple_natural(3),
            alive=set(),
            local_dc="dc1",
            count=4,
        )
    assert str(info.value) == "w=4 exceeds replication factor 3"


def test_level_or_count_but_not_both() -> None:
    args = {
        "strategy": SimpleStrategy(3),
        "natural": simple_natural(3),
        "alive": set(),
        "local_dc": "dc1",
    }
    with pytest.raises(ValueError, match="not both"):
        plan_request("write", level="ONE", count=1, **args)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="is required"):
        plan_request("write", **args)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'read' or 'write'"):
        plan_request("scan", level="ONE", **args)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="integer"):
        plan_request("write", count=True, **args)  # type: ignore[arg-type]


def test_all_uses_replication_factor_not_node_count() -> None:
    # rf=3 but only two nodes exist: ALL can never be met, QUORUM can.
    natural = simple_natural(2)
    with pytest.raises(Unavailable) as info:
        plan_request(
            "write",
            strategy=SimpleStrategy(3),
            natural=natural,
            alive=set(natural),
            local_dc="dc1",
            level="ALL",
        )
    assert (info.value.required, info.value.alive) == (3, 2)
    plan = plan_request(
        "write",
        strategy=SimpleStrategy(3),
        natural=natural,
        alive=set(natural),
        local_dc="dc1",
        level="QUORUM",
    )
    assert plan.required == 2


# -- ANY -----------------------------------------------------------------------------------


def test_any_with_nobody_alive_still_plans_a_hint() -> None:
    plan = plan_request(
        "write",
        strategy=SimpleStrategy(3),
        natural=simple_natural(3),
        alive=set(),
        local_dc="dc1",
        level="any",
    )
    assert plan.required == 1 and plan.contacts == () and plan.hint_counts
    tracker = plan.tracker()
    assert not tracker.satisfied
    assert tracker.ack_hint() and tracker.received == 1


def test_any_writes_to_live_replicas() -> None:
    plan = plan_request(
        "write",
        strategy=SimpleStrategy(3),
        natural=simple_natural(3),
        alive={"n2", "n0"},
        local_dc="dc1",
        level=CL.ANY,
    )
    assert plan.contacts == ("n0", "n2")
    assert plan.tracker().ack("n2")


def test_any_is_not_for_reads() -> None:
    with pytest.raises(ValueError, match="only valid for writes"):
        plan_request(
            "read",
            strategy=SimpleStrategy(3),
            natural=simple_natural(3),
            alive=set(),
            local_dc="dc1",
            level="ANY",
        )


def test_hints_do_not_count_outside_any() -> None:
    plan = plan_request(
        "write",
        strategy=SimpleStrategy(3),
        natural=simple_natural(3),
        alive={"n0"},
        local_dc="dc1",
        level="ONE",
    )
    tracker = plan.tracker()
    assert not tracker.ack_hint()
    assert tracker.received == 0


# -- multiple datacenters ------------------------------------------------------------------


def nts_plan(
    kind: str, level: str, alive: set[str], local_dc: str = "east", coordinator: str | None = None
) -> ReplicaPlan:
    return plan_request(
        kind,
        strategy=NTS,
        natural=NATURAL,
        alive=alive,
        local_dc=local_dc,
        level=level,
        coordinator=coordinator,
    )


def test_quorum_spans_all_datacenters() -> None:
    assert nts_plan("write", "QUORUM", EVERYONE).required == 3  # 5 // 2 + 1
    assert nts_plan("write", "ALL", EVERYONE).required == 5
    with pytest.raises(Unavailable) as info:
        nts_plan("write", "QUORUM", {"w0", "w1"})
    assert (info.value.required, info.value.alive, info.value.dc) == (3, 2, None)


def test_local_quorum_counts_only_local_dc() -> None:
    plan = nts_plan("write", "LOCAL_QUORUM", EVERYONE)
    assert plan.required == 2 and plan.counted_dc == "east"
    assert plan.contacts == tuple(NATURAL)  # writes still go to every live replica
    tracker = plan.tracker()
    assert not tracker.ack("w0") and not tracker.ack("w1")
    assert not tracker.ack("e1")
    assert not tracker.ack("e1")  # duplicates ignored
    assert tracker.ack("e2") and tracker.received == 2
    # west's quorum of 2 is 2 // 2 + 1 = 2
    assert nts_plan("write", "LOCAL_QUORUM", EVERYONE, local_dc="west").required == 2
    with pytest.raises(Unavailable) as info:
        nts_plan("write", "LOCAL_QUORUM", {"e0", "w0", "w1"})
    assert (info.value.required, info.value.alive, info.value.dc) == (2, 1, "east")
    assert "east" in str(info.value) and "LOCAL_QUORUM" in str(info.value)


def test_local_one_read_stays_local() -> None:
    plan = nts_plan("read", "LOCAL_ONE", {"w0", "e2"}, local_dc="east")
    assert plan.contacts == ("e2",)
    with pytest.raises(Unavailable) as info:
        nts_plan("read", "LOCAL_ONE", {"w0", "w1"}, local_dc="east")
    assert (info.value.required, info.value.alive, info.value.dc) == (1, 0, "east")


def test_local_quorum_in_dc_without_replicas_is_unavailable() -> None:
    with pytest.raises(Unavailable) as info:
        nts_plan("write", "LOCAL_QUORUM", EVERYONE, local_dc="south")
    assert (info.value.required, info.value.alive, info.value.dc) == (1, 0, "south")


def test_each_quorum() -> None:
    plan = nts_plan("write", "EACH_QUORUM", EVERYONE)
    assert dict(plan.required_per_dc) == {"east": 2, "west": 2}
    assert plan.required == 4
    tracker = plan.tracker()
    for host in ("e0", "e1", "e2"):
        assert not tracker.ack(host)  # east alone is not enough, however many
    assert not tracker.ack("w0")
    assert tracker.ack("w1")
    with pytest.raises(Unavailable) as info:
        nts_plan("write", "EACH_QUORUM", {"e0", "e1", "e2", "w0"})
    assert (info.value.required, info.value.alive, info.value.dc) == (2, 1, "west")


def test_each_quorum_read_asks_a_quorum_in_each_dc() -> None:
    plan = nts_plan("read", "EACH_QUORUM", EVERYONE, local_dc="west", coordinator="w1")
    assert plan.data_replica == "w1"
    assert sorted(plan.contacts) == ["e0", "e1", "w0", "w1"]


def test_each_quorum_with_simple_strategy_is_quorum() -> None:
    plan = plan_request(
        "write",
        strategy=SimpleStrategy(3),
        natural=simple_natural(3),
        alive={"n0", "n1"},
        local_dc="dc1",
        level="EACH_QUORUM",
    )
    assert plan.required == 2 and not plan.required_per_dc


def test_read_prefers_coordinator_then_local_dc() -> None:
    plan = nts_plan("read", "QUORUM", EVERYONE, local_dc="west", coordinator="e2")
    assert plan.contacts == ("e2", "w0", "w1")
    plan = nts_plan("read", "QUORUM", EVERYONE, local_dc="west", coordinator="not-a-replica")
    assert plan.contacts == ("w0", "w1", "e0")
    plan = nts_plan("read", "ONE", EVERYONE - {"w0"}, local_dc="west")
    assert plan.contacts == ("w1",) and plan.digest_replicas == ()
    plan = nts_plan("read", "ALL", EVERYONE, local_dc="east", coordinator="w1")
    assert plan.contacts == ("w1", "e0", "e1", "e2", "w0")


def test_acks_from_non_replicas_do_not_count() -> None:
    plan = nts_plan("write", "ONE", EVERYONE)
    tracker = plan.tracker()
    assert not tracker.ack("stranger")
    assert tracker.ack("w1")


@given(
    st.sampled_from(list(CL)),
    st.sets(st.sampled_from(sorted(NATURAL))),
    st.sampled_from(["east", "west"]),
    st.sampled_from(list(RequestKind)),
)
def test_nts_plans_are_consistent(
    level: ConsistencyLevel, alive: set[str], local_dc: str, kind: RequestKind
) -> None:
    if level is CL.ANY and kind is RequestKind.READ:
        return
    try:
        plan = nts_plan(kind.value, level.value, alive, local_dc=local_dc)
    except Unavailable as exc:
        assert exc.alive < exc.required
        scope = [h for h in alive if exc.dc is None or NATURAL[h] == exc.dc]
        assert exc.alive == len(scope)
        return
    # acknowledging every contact satisfies the plan (ANY with nobody alive needs a hint)
    tracker = plan.tracker()
    for host in plan.contacts:
        tracker.ack(host)
    if plan.contacts or not plan.hint_counts:
        assert tracker.satisfied
    assert set(plan.contacts) <= alive
    if kind is RequestKind.READ:
        assert len(plan.contacts) == plan.required
        assert len(set(plan.contacts)) == len(plan.contacts)


def test_unavailable_is_an_exception_that_pickles() -> None:
    exc = Unavailable(3, 1, "east", CL.QUORUM, 2)
    assert isinstance(exc, Exception)
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.required, copy.alive, copy.dc, copy.level, copy.replicas) == (
        3,
        1,
        "east",
        CL.QUORUM,
        2,
    )
    assert str(Unavailable(2, 0)) == (
        "cannot achieve the requested consistency: 2 replicas required but only 0 alive"
    )
    assert str(Unavailable(1, 0)) == (
        "cannot achieve the requested consistency: 1 replica required but only 0 alive"
    )


def test_unavailable_counts_the_natural_replicas_where_it_counted() -> None:
    """``replicas`` tells 'a replica is down' (alive < replicas) from 'too few exist'."""
    ring = ring_of(3)
    strategy = SimpleStrategy(3)
    with pytest.raises(Unavailable) as down:
        plan_for_token(
            "write",
            ring=ring,
            strategy=strategy,
            token=0,
            alive={"h0", "h1"},
            local_dc="dc1",
            level=CL.ALL,
        )
    assert (down.value.alive, down.value.replicas) == (2, 3)
    wide = SimpleStrategy(5)
    with pytest.raises(Unavailable) as few:
        plan_for_token(
            "write",
            ring=ring,
            strategy=wide,
            token=0,
            alive={"h0", "h1", "h2"},
            local_dc="dc1",
            level=CL.ALL,
        )
    assert (few.value.required, few.value.alive, few.value.replicas) == (5, 3, 3)


# -- on a real ring --------------------------------------------------------------------------


def ring_of(n: int) -> Ring:
    return Ring([NodeInfo(f"h{i}", f"10.0.0.{i}", tokens=(i * 100,)) for i in range(n)])


def test_plan_for_token() -> None:
    ring = ring_of(5)
    strategy: ReplicationStrategy = SimpleStrategy(3)
    plan = plan_for_token(
        "write",
        ring=ring,
        strategy=strategy,
        token=150,
        alive={"h2", "h3", "h4"},
        local_dc="dc1",
        level="QUORUM",
    )
    assert plan.natural == ("h2", "h3", "h4")
    assert plan.contacts == ("h2", "h3", "h4")
    assert dict(plan.replica_dcs) == {"h2": "dc1", "h3": "dc1", "h4": "dc1"}


def test_fallback_nodes() -> None:
    ring = ring_of(6)
    natural = SimpleStrategy(3).replicas(ring, 150)
    assert natural == ["h2", "h3", "h4"]
    everyone = {f"h{i}" for i in range(6)}
    assert fallback_nodes(ring, 150, natural, everyone, 2) == ["h5", "h0"]
    assert fallback_nodes(ring, 150, natural, everyone - {"h5"}, 2) == ["h0", "h1"]
    assert fallback_nodes(ring, 150, natural, everyone, 10) == ["h5", "h0", "h1"]
    assert fallback_nodes(ring, 150, natural, everyone, 0) == []
    assert fallback_nodes(Ring(), 150, natural, everyone, 2) == []


@given(st.integers(min_value=1, max_value=8), st.integers(min_value=1, max_value=8), st.data())
def test_fallback_nodes_properties(n: int, rf: int, data: st.DataObject) -> None:
    ring = ring_of(n)
    token = data.draw(st.integers(min_value=-1000, max_value=1000))
    natural = SimpleStrategy(rf).replicas(ring, token)
    alive = data.draw(st.sets(st.sampled_from(sorted(ring.nodes))))
    count = data.draw(st.integers(min_value=0, max_value=8))
    out = fallback_nodes(ring, token, natural, alive, count)
    assert len(out) == len(set(out)) == min(count, len(set(alive) - set(natural)))
    assert not set(out) & set(natural)
    assert set(out) <= alive
    walk = list(ring.preference_list(token))
    assert [walk.index(h) for h in out] == sorted(walk.index(h) for h in out)
