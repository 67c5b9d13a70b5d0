"""Endpoint state and gossip message wire forms: round trips and strict validation."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringd.gms.messages import (
    ack2_to_wire,
    ack_to_wire,
    parse_ack,
    parse_ack2,
    parse_syn,
    syn_to_wire,
)
from ringd.gms.state import (
    MAX_INT64,
    MIN_INT64,
    AppState,
    EndpointState,
    GossipDigest,
    HeartBeatState,
    Status,
    VersionedValue,
    check_address,
    states_from_wire,
)

versions = st.integers(min_value=0, max_value=MAX_INT64)
names = st.text(min_size=1, max_size=20)
addresses = st.builds(
    lambda host, port: f"{host}:{port}",
    st.sampled_from(["127.0.0.1", "10.0.0.7", "node-1.example", "[::1]"]),
    st.integers(1, 65535),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(MIN_INT64, MAX_INT64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)

known_values: dict[str, st.SearchStrategy[Any]] = {
    AppState.STATUS: st.sampled_from([s.value for s in Status]),
    AppState.TOKENS: st.lists(st.integers(MIN_INT64, MAX_INT64), max_size=20, unique=True).map(
        tuple
    ),
    AppState.DC: names,
    AppState.RACK: names,
    AppState.ADDRESS: addresses,
    AppState.LOAD: versions,
    AppState.SCHEMA: st.text(max_size=40),
    AppState.RELEASE_VERSION: st.text(max_size=10),
}


@st.composite
def endpoint_states(draw: st.DrawFn) -> EndpointState:
    app: dict[str, VersionedValue] = {}
    for key, strategy in known_values.items():
        if draw(st.booleans()):
            app[key] = VersionedValue(draw(strategy), draw(versions))
    for key in draw(st.lists(st.text(min_size=1, max_size=10), max_size=3)):
        if key not in AppState.__members__:
            value = draw(st.one_of(scalars, st.lists(scalars, max_size=4).map(tuple)))
            app[key] = VersionedValue(value, draw(versions))
    return EndpointState(HeartBeatState(draw(versions), draw(versions)), app)


def through_cbor(obj: Any) -> Any:
    return cbor2.loads(cbor2.dumps(obj))


@given(endpoint_states())
def test_endpoint_state_round_trip(state: EndpointState) -> None:
    wire = state.to_wire()
    assert EndpointState.from_wire(wire) == state
    assert EndpointState.from_wire(through_cbor(wire)) == state


@given(st.dictionaries(names, endpoint_states(), max_size=4), st.text(min_size=1, max_size=10))
def test_messages_round_trip(states: dict[str, EndpointState], cluster: str) -> None:
    digests = [GossipDigest(h, s.generation, s.max_version) for h, s in states.items()]
    assert parse_syn(through_cbor(syn_to_wire(cluster, digests))) == (cluster, digests)
    assert parse_ack(through_cbor(ack_to_wire(digests, states))) == (digests, states)
    assert parse_ack2(through_cbor(ack2_to_wire(states))) == states


json_like = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=8),
        st.binary(max_size=4),
        st.sampled_from(["NORMAL", "TOKENS", "heartbeat", "states", "127.0.0.1:7000"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(["heartbeat", "states", *AppState]), st.text(max_size=4)),
            children,
            max_size=4,
        ),
    ),
    max_leaves=20,
)


def only_value_error(parse: Any, obj: Any) -> None:
    try:
        parse(obj)
    except ValueError:
        pass


@given(json_like)
def test_malformed_anything_raises_only_value_error(obj: Any) -> None:
    for parse in (EndpointState.from_wire, states_from_wire, parse_syn, parse_ack, parse_ack2):
        only_value_error(parse, obj)
    only_value_error(GossipDigest.from_wire, obj)


def _leaves(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(obj, dict):
        return [path] + [p for k, v in obj.items() for p in _leaves(v, (*path, k))]
    if isinstance(obj, list):
        return [path] + [p for i, v in enumerate(obj) for p in _leaves(v, (*path, i))]
    return [path]


def _replace(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        return {**obj, head: _replace(obj[head], rest, value)}
    return [_replace(v, rest, value) if i == head else v for i, v in enumerate(obj)]


@given(endpoint_states(), st.data())
def test_mutated_state_raises_only_value_error(state: EndpointState, data: st.DataObject) -> None:
    wire = state.to_wire()
    path = data.draw(st.sampled_from(_leaves(wire)))
    mutated = _replace(wire, path, data.draw(json_like))
    only_value_error(EndpointState.from_wire, mutated)
    only_value_error(states_from_wire, {"h": mutated})


@pytest.mark.parametrize(
    "wire",
    [
        None,
        [],
        {"heartbeat": [1, 2]},
        {"heartbeat": [1, 2], "states": {}, "extra": 1},
        {"heartbeat": [1], "states": {}},
        {"heartbeat": [True, 2], "states": {}},
        {"heartbeat": [-1, 2], "states": {}},
        {"heartbeat": [1, 2**63], "states": {}},
        {"heartbeat": [1, 2.0], "states": {}},
        {"heartbeat": [1, 2], "states": []},
        {"heartbeat": [1, 2], "states": {"STATUS": "NORMAL"}},
        {"heartbeat": [1, 2], "states": {"STATUS": ["NORMAL"]}},
        {"heartbeat": [1, 2], "states": {"STATUS": ["SLEEPING", 1]}},
        {"heartbeat": [1, 2], "states": {"STATUS": ["NORMAL", -1]}},
        {"heartbeat": [1, 2], "states": {"TOKENS": [[1, "2"], 1]}},
        {"heartbeat": [1, 2], "states": {"TOKENS": [[2**63], 1]}},
        {"heartbeat": [1, 2], "states": {"TOKENS": [5, 1]}},
        {"heartbeat": [1, 2], "states": {"TOKENS": [list(range(1025)), 1]}},
        {"heartbeat": [1, 2], "states": {"TOKENS": [[7, 7], 1]}},
        {"heartbeat": [1, 2], "states": {"ADDRESS": ["localhost", 1]}},
        {"heartbeat": [1, 2], "states": {"ADDRESS": ["localhost:0", 1]}},
        {"heartbeat": [1, 2], "states": {"ADDRESS": ["::1:7000", 1]}},
        {"heartbeat": [1, 2], "states": {"LOAD": [-5, 1]}},
        {"heartbeat": [1, 2], "states": {"LOAD": [1.5, 1]}},
        {"heartbeat": [1, 2], "states": {"HOST_ID": ["", 1]}},
        {"heartbeat": [1, 2], "states": {"DC": [None, 1]}},
        {"heartbeat": [1, 2], "states": {"": [1, 1]}},
        {"heartbeat": [1, 2], "states": {"CUSTOM": [{"a": 1}, 1]}},
        {"heartbeat": [1, 2], "states": {"CUSTOM": [float("nan"), 1]}},
        {"heartbeat": [1, 2], "states": {"CUSTOM": [b"bytes", 1]}},
    ],
)
def test_malformed_state_examples(wire: Any) -> None:
    with pytest.raises(ValueError):
        EndpointState.from_wire(wire)


def test_host_id_must_match_its_key() -> None:
    wire = {"heartbeat": [1, 2], "states": {"HOST_ID": ["b", 1]}}
    assert states_from_wire({"b": wire})["b"].host_id == "b"
    with pytest.raises(ValueError, match="claims HOST_ID"):
        states_from_wire({"a": wire})


def test_duplicate_digests_rejected() -> None:
    with pytest.raises(ValueError, match="more than once"):
        parse_syn({"cluster": "c", "digests": [["a", 1, 2], ["a", 1, 3]]})


@pytest.mark.parametrize("address", ["127.0.0.1:7000", "[::1]:7000", "db-3.example.com:1"])
def test_good_addresses(address: str) -> None:
    assert check_address(address) == address


@pytest.mark.parametrize(
    "address",
    [
        "",
        "7000",
        ":7000",
        "h:",
        "h:x",
        "h:70000",
        "a b:1",
        "[::1",
        "[zz]:1",
        "evil/../x:1",
        "h\x00:1",
        "-h:1",
        "[]:1",
    ],
)
def test_bad_addresses(address: str) -> None:
    with pytest.raises(ValueError):
        check_address(address)


def test_delta_since() -> None:
    state = EndpointState(
        HeartBeatState(5, 10),
        {"STATUS": VersionedValue("NORMAL", 3), "SCHEMA": VersionedValue("s1", 12)},
    )
    assert state.max_version == 12
    assert state.delta_since(12) is None
    delta = state.delta_since(10)
    assert delta is not None
    assert delta.heartbeat == state.heartbeat and dict(delta.app_states) == {
        "SCHEMA": VersionedValue("s1", 12)
    }
    heartbeat_only = EndpointState(HeartBeatState(5, 13), state.app_states).delta_since(12)
    assert heartbeat_only is not None and not heartbeat_only.app_states
    assert state.delta_since(0) == state


def test_accessors_and_immutability() -> None:
    state = EndpointState(
        HeartBeatState(1, 1),
        {
            "TOKENS": VersionedValue((1, -2), 1),
            "STATUS": VersionedValue("LEFT", 1),
            "ADDRESS": VersionedValue("h:1", 1),
        },
    )
    assert state.tokens == (1, -2)
    assert state.to_wire()["states"]["TOKENS"] == [[1, -2], 1]
    assert state.is_dead_state and state.address == "h:1" and state.dc is None
    with pytest.raises(TypeError):
        state.app_states["X"] = VersionedValue(1, 1)  # type: ignore[index]
