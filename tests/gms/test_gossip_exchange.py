"""The receiving side and state application of the Gossiper, driven by hand (no run loop)."""

from __future__ import annotations

import random
from typing import Any

import cbor2
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from ringd.gms.gossiper import Gossiper
from ringd.gms.messages import GOSSIP_ACK2, GOSSIP_SYN, parse_ack
from ringd.gms.state import (
    EndpointState,
    GossipDigest,
    HeartBeatState,
    Status,
    VersionedValue,
)


async def never(address: str, verb: str, args: dict[str, Any]) -> dict[str, Any]:
    raise AssertionError("no network in these tests")


def make(
    host_id: str = "a", address: str = "10.0.0.1:7000", generation: int = 100, **kw: Any
) -> Gossiper:
    return Gossiper(
        host_id,
        address,
        [],
        never,
        generation=generation,
        initial_states=kw.pop("initial_states", {"STATUS": "NORMAL", "TOKENS": [1, 2]}),
        rng=random.Random(1),
        **kw,
    )


def remote(
    host_id: str, generation: int, hb: int, **states: tuple[Any, int]
) -> dict[str, dict[str, Any]]:
    app = {k: VersionedValue(v, ver) for k, (v, ver) in states.items()}
    app.setdefault("ADDRESS", VersionedValue(f"{host_id}.example:7000", 1))
    return {host_id: EndpointState(HeartBeatState(generation, hb), app).to_wire()}


class Recorder:
    def __init__(self, g: Gossiper) -> None:
        self.events: list[tuple[str, str]] = []
        g.subscribe(lambda event, host_id, state: self.events.append((event, host_id)))

    def take(self) -> list[tuple[str, str]]:
        out, self.events = self.events, []
        return out


async def test_local_state_and_versions() -> None:
    g = make()
    state = g.local_state
    assert state.generation == 100
    assert state.host_id == "a" and state.address == "10.0.0.1:7000"
    assert state.status == "NORMAL" and state.tokens == (1, 2)
    versions = [vv.version for vv in state.app_states.values()] + [state.heartbeat.version]
    assert sorted(versions) == list(range(1, len(versions) + 1))  # one shared counter
    before = state.max_version
    g.set_application_state("SCHEMA", "v2")
    assert g.local_state.app_states["SCHEMA"].version == before + 1
    g._beat()
    assert g.local_state.heartbeat.version == before + 2
    assert g.live_members() == ["a"] and g.unreachable_members() == [] and g.is_alive("a")


async def test_invalid_local_state_rejected() -> None:
    with pytest.raises(ValueError):
        make(initial_states={"STATUS": "SLEEPING"})
    with pytest.raises(ValueError):
        make(initial_states={"HOST_ID": "other"})
    with pytest.raises(ValueError):
        make(address="nowhere")
    with pytest.raises(ValueError):
        make(generation=-1)
    g = make()
    with pytest.raises(ValueError):
        g.set_application_state("TOKENS", ["x"])
    with pytest.raises(ValueError):
        g.set_application_state("ADDRESS", "10.9.9.9:1")
    g.set_application_state("ADDRESS", "10.0.0.1:7000")  # unchanged is fine


async def test_cluster_name_mismatch_rejected() -> None:
    g = make(cluster_name="prod")
    with pytest.raises(ValueError, match="cluster name mismatch.*'prod'.*'test'"):
        g.handle_syn({"cluster": "test", "digests": []})


@pytest.mark.parametrize(
    "args",
    [
        None,
        {},
        {"cluster": "ringd"},
        {"cluster": "ringd", "digests": [["b", 1]]},
        {"cluster": "ringd", "digests": [["b", 1, -1]]},
        {"cluster": 5, "digests": []},
    ],
)
async def test_malformed_syn_rejected(args: Any) -> None:
    with pytest.raises(ValueError):
        make().handle_syn(args)


async def test_syn_from_a_stranger_gets_everything() -> None:
    g = make()
    g.handle_ack2({"states": remote("b", 7, 5, STATUS=("NORMAL", 2))})
    requested, states = parse_ack(g.handle_syn({"cluster": "ringd", "digests": []}))
    assert requested == []
    assert set(states) == {"a", "b"}
    assert states["a"] == g.local_state


async def test_syn_requests_and_deltas() -> None:
    g = make()
    g.handle_ack2({"states": remote("b", 7, 5, STATUS=("NORMAL", 2), SCHEMA=("s1", 4))})
    g.handle_ack2({"states": remote("c", 9, 5, STATUS=("NORMAL", 2))})
    a_max = g.local_state.max_version
    g.set_application_state("SCHEMA", "s2")
    args = {
        "cluster": "ringd",
        "digests": [
            ["a", 100, a_max],  # peer is one version behind on us: send the SCHEMA delta
            ["b", 7, 3],  # peer is behind on b: send what is newer than 3
            ["c", 9, 8],  # peer is ahead on c: ask for what is newer than our 5
            ["d", 3, 4],  # we never heard of d: ask for everything
        ],
    }
    requested, states = parse_ack(g.handle_syn(args))
    assert sorted(requested) == [("c", 9, 5), ("d", 3, 0)]
    assert set(states) == {"a", "b"}
    assert list(states["a"].app_states) == ["SCHEMA"]
    assert states["a"].heartbeat == g.local_state.heartbeat
    assert dict(states["b"].app_states) == {"SCHEMA": VersionedValue("s1", 4)}


async def test_syn_with_older_and_newer_generations() -> None:
    g = make()
    g.handle_ack2({"states": remote("b", 7, 5, STATUS=("NORMAL", 2))})
    requested, states = parse_ack(
        g.handle_syn({"cluster": "ringd", "digests": [["a", 100, 0], ["b", 6, 50]]})
    )
    assert requested == []
    assert states["b"] == g.endpoint_state("b")  # peer has an old generation: full state
    requested, states = parse_ack(g.handle_syn({"cluster": "ringd", "digests": [["b", 8, 1]]}))
    assert requested == [("b", 8, 0)]
    # nobody may tell us to fetch our own state
    requested, _ = parse_ack(g.handle_syn({"cluster": "ringd", "digests": [["a", 101, 1]]}))
    assert requested == []


async def test_deltas_for_requests() -> None:
    g = make()
    g.handle_ack2({"states": remote("b", 7, 5, STATUS=("NORMAL", 2), SCHEMA=("s1", 4))})
    out = g._deltas_for([])
    assert out == {}
    out = g._deltas_for(
        [GossipDigest("b", 7, 4), GossipDigest("b2", 1, 0), GossipDigest("a", 99, 50)]
    )
    assert set(out) == {"b", "a"}
    assert not out["b"].app_states and out["b"].heartbeat.version == 5
    assert out["a"] == g.local_state  # they asked about an older generation: everything


async def test_join_then_alive_on_version_increase(autojump_clock: trio.abc.Clock) -> None:
    g = make()
    rec = Recorder(g)
    g.handle_ack2({"states": remote("b", 7, 5, STATUS=("NORMAL", 2))})
    assert rec.take() == [("join", "b")]
    assert not g.is_alive("b") and g.unreachable_members() == ["b"]
    assert g.gossip_info()["b"]["alive"] is False
    await trio.sleep(0.25)
    g.handle_ack2({"states": remote("b", 7, 5, STATUS=("NORMAL", 2))})  # nothing new
    assert rec.take() == [] and not g.is_alive("b")
    g.handle_ack2({"states": remote("b", 7, 6)})  # heartbeat moved
    assert rec.take() == [("alive", "b")]
    assert g.live_members() == ["a", "b"] and g.downtime("b") is None
    g.handle_ack2({"states": remote("b", 7, 7, SCHEMA=("s9", 7))})
    assert rec.take() == [("change", "b")]
    assert g.endpoint_state("b").schema == "s9"  # type: ignore[union-attr]
    assert g.endpoint_state("b").status == "NORMAL"  # type: ignore[union-attr]


async def test_stale_news_ignored() -> None:
    g = make()
    g.handle_ack2({"states": remote("b", 7, 9, STATUS=("LEAVING", 8))})
    rec = Recorder(g)
    g.handle_ack2({"states": remote("b", 7, 6, STATUS=("NORMAL", 3))})
    g.handle_ack2({"states": remote("b", 6, 60, STATUS=("NORMAL", 30))})
    assert rec.take() == []
    assert g.endpoint_state("b").status == "LEAVING"  # type: ignore[union-attr]


async def test_higher_generation_replaces_whole_state() -> None:
    g = make()
    g.handle_ack2({"states": remote("b", 7, 9, STATUS=("NORMAL", 2), CUSTOM=("old", 3))})
    g.handle_ack2({"states": remote("b", 7, 10)})
    assert g.is_alive("b")
    rec = Recorder(g)
    g.handle_ack2({"states": remote("b", 8, 2, STATUS=("JOINING", 1))})
    assert rec.take() == [("restart", "b")]
    state = g.endpoint_state("b")
    assert state is not None and state.generation == 8
    assert state.status == "JOINING" and state.get("CUSTOM") is None
    assert g.is_alive("b")


async def test_generation_more_than_a_year_ahead_ignored() -> None:
    g = make()
    g.handle_ack2({"states": remote("b", 1_700_000_000, 2)})
    g.handle_ack2({"states": remote("b", 1_700_000_000 + 86400 * 400, 5)})
    assert g.endpoint_state("b").generation == 1_700_000_000  # type: ignore[union-attr]


async def test_news_about_ourselves_ignored() -> None:
    g = make()
    mine = g.local_state
    g.handle_ack2({"states": remote("a", 200, 99, STATUS=("LEFT", 98))})
    assert g.local_state == mine


async def test_left_node_is_never_marked_alive() -> None:
    g = make()
    g.handle_ack2({"states": remote("b", 7, 5, STATUS=("NORMAL", 2))})
    g.handle_ack2({"states": remote("b", 7, 6)})
    assert g.is_alive("b")
    rec = Recorder(g)
    g.handle_ack2({"states": remote("b", 7, 8, STATUS=("LEFT", 7))})
    assert rec.take() == [("change", "b"), ("dead", "b")]
    g.handle_ack2({"states": remote("b", 7, 9)})
    assert not g.is_alive("b") and rec.take() == []


async def test_failing_listener_does_not_break_gossip() -> None:
    g = make()

    def boom(event: str, host_id: str, state: EndpointState) -> None:
        raise RuntimeError("listener bug")

    g.subscribe(boom)
    rec = Recorder(g)
    g.handle_ack2({"states": remote("b", 7, 5)})
    assert rec.take() == [("join", "b")]


async def test_unsubscribe() -> None:
    g = make()
    rec = Recorder(g)
    events: list[str] = []
    unsubscribe = g.subscribe(lambda e, h, s: events.append(e))
    unsubscribe()
    unsubscribe()
    g.set_application_state("LOAD", 5)
    assert events == [] and rec.take() == [("change", "a")]


async def test_gossip_info_shape(autojump_clock: trio.abc.Clock) -> None:
    g = make()
    g.handle_ack2({"states": remote("b", 7, 5, STATUS=("NORMAL", 2), TOKENS=([3, 4], 3))})
    await trio.sleep(1.0)
    info = g.gossip_info()
    assert set(info) == {"a", "b"}
    a, b = info["a"], info["b"]
    assert a["local"] and a["alive"] and a["phi"] is None and a["downtime"] is None
    assert a["states"]["TOKENS"] == {"value": [1, 2], "version": 2}
    assert a["heartbeat"] == g.local_state.heartbeat.version
    assert not b["local"] and not b["alive"] and b["generation"] == 7 and b["heartbeat"] == 5
    assert b["phi"] == pytest.approx(1.0 / 0.5 * 0.4343, abs=1e-3)
    assert b["downtime"] == pytest.approx(1.0)
    assert b["address"] == "b.example:7000" and b["states"]["TOKENS"]["value"] == [3, 4]
    assert g.host_id_for_address("b.example:7000") == "b"
    assert g.host_id_for_address("nowhere:1") is None


anything = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=6), st.floats()),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(
                st.sampled_from(["cluster", "digests", "states", "heartbeat", "STATUS", "ringd"]),
                st.text(max_size=4),
            ),
            children,
            max_size=4,
        ),
    ),
    max_leaves=16,
)


@given(anything)
async def test_handlers_raise_only_value_error(args: Any) -> None:
    g = make()
    for handler in (g.handle_syn, g.handle_ack2):
        try:
            handler(args)
        except ValueError:
            pass


# -- the three-way exchange leaves both sides knowing the same -------------------------------

POOL = ["p", "q", "r", "s"]


@st.composite
def histories(draw: st.DrawFn) -> dict[tuple[str, int], list[tuple[str, Any]]]:
    """Per (host, generation): the node's own sequence of updates, version i+1 for entry i."""
    out: dict[tuple[str, int], list[tuple[str, Any]]] = {}
    for host in POOL:
        for generation in draw(st.sets(st.integers(1, 3), max_size=2)):
            out[(host, generation)] = draw(
                st.lists(
                    st.one_of(
                        st.just(("heartbeat", None)),
                        st.tuples(st.sampled_from(["STATUS"]), st.sampled_from(list(Status))),
                        st.tuples(st.sampled_from(["SCHEMA", "DC"]), st.text("xyz", min_size=1)),
                        st.tuples(st.just("LOAD"), st.integers(0, 10)),
                    ),
                    min_size=1,
                    max_size=8,
                )
            )
    return out


def snapshot(generation: int, updates: list[tuple[str, Any]], upto: int) -> EndpointState:
    heartbeat = 0
    app: dict[str, VersionedValue] = {}
    for version, (key, value) in enumerate(updates[:upto], start=1):
        if key == "heartbeat":
            heartbeat = version
        else:
            app[key] = VersionedValue(str(value) if key == "STATUS" else value, version)
    return EndpointState(HeartBeatState(generation, heartbeat), app)


def views(
    data: st.DataObject, history: dict[tuple[str, int], list[tuple[str, Any]]]
) -> dict[str, EndpointState]:
    draw = data.draw
    view: dict[str, EndpointState] = {}
    for (host, generation), updates in sorted(history.items()):
        if draw(st.booleans()):
            view[host] = snapshot(generation, updates, draw(st.integers(1, len(updates))))
    return view


@given(st.data())
async def test_one_exchange_makes_both_sides_agree(data: st.DataObject) -> None:
    history = data.draw(histories())
    a = make("A", "10.0.0.1:7000")
    b = make("B", "10.0.0.2:7000")

    async def to_b(address: str, verb: str, args: dict[str, Any]) -> dict[str, Any]:
        assert address == b.local_address
        handler = {GOSSIP_SYN: b.handle_syn, GOSSIP_ACK2: b.handle_ack2}[verb]
        response: dict[str, Any] = cbor2.loads(cbor2.dumps(handler(cbor2.loads(cbor2.dumps(args)))))
        return response

    a._send = to_b
    a._apply(views(data, history))
    b._apply(views(data, history))
    expected: dict[str, EndpointState] = {}
    for view in (a.endpoint_states(), b.endpoint_states()):
        for host, state in view.items():
            old = expected.get(host)
            if old is None or (state.generation, state.max_version) > (
                old.generation,
                old.max_version,
            ):
                expected[host] = state

    await a._exchange(b.local_address)

    assert a.endpoint_states() == expected
    assert b.endpoint_states() == expected
