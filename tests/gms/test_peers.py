"""Saved peers (``Gossiper.add_saved_endpoint``, ``ringd.gms.peers``) and the settle wait."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from ringd.gms import peers
from ringd.gms.gossiper import Gossiper
from ringd.gms.settle import wait_to_settle
from ringd.gms.state import EndpointState, HeartBeatState, VersionedValue

B_STATES = {
    "HOST_ID": "b",
    "ADDRESS": "10.0.0.2:7000",
    "DC": "dc1",
    "RACK": "r1",
    "TOKENS": [5, -7],
    "STATUS": "NORMAL",
}


async def never(address: str, verb: str, args: dict[str, Any]) -> dict[str, Any]:
    raise OSError("no network in these tests")


def make(host_id: str = "a", seeds: tuple[str, ...] = ()) -> Gossiper:
    return Gossiper(
        host_id,
        "10.0.0.1:7000",
        list(seeds),
        never,
        generation=100,
        initial_states={"STATUS": "NORMAL", "TOKENS": [1, 2]},
        rng=random.Random(1),
    )


def news(host_id: str, generation: int, version: int, **values: Any) -> dict[str, Any]:
    states = {**B_STATES, **values}
    app = {k: VersionedValue(v, version) for k, v in states.items()}
    return {host_id: EndpointState(HeartBeatState(generation, version), app).to_wire()}


async def test_a_saved_endpoint_is_known_and_down_until_gossip_hears_from_it() -> None:
    g = make()
    assert g.add_saved_endpoint("b", 50, B_STATES)
    state = g.endpoint_state("b")
    assert state is not None and state.tokens == (5, -7) and state.generation == 50
    assert not g.is_alive("b") and "b" in g.unreachable_members()
    # the same generation with real versions replaces every value and brings it up
    g.handle_ack2({"states": news("b", 50, 3, RACK="r2")})
    state = g.endpoint_state("b")
    assert state is not None and state.rack == "r2" and g.is_alive("b")


async def test_a_saved_endpoint_is_replaced_by_a_higher_generation() -> None:
    g = make()
    g.add_saved_endpoint("b", 50, B_STATES)
    g.handle_ack2({"states": news("b", 60, 1, TOKENS=[9])})
    state = g.endpoint_state("b")
    assert state is not None and state.generation == 60 and state.tokens == (9,)
    assert g.is_alive("b")


async def test_a_saved_endpoint_never_overrides_what_gossip_knows() -> None:
    g = make()
    g.handle_ack2({"states": news("b", 60, 2)})
    assert not g.add_saved_endpoint("b", 50, {**B_STATES, "TOKENS": [1]})
    assert not g.add_saved_endpoint("a", 50, {})  # the local node
    state = g.endpoint_state("b")
    assert state is not None and state.generation == 60 and state.tokens == (5, -7)
    with pytest.raises(ValueError):
        g.add_saved_endpoint("c", 1, {"TOKENS": "nope"})
    with pytest.raises(ValueError):
        g.add_saved_endpoint("c", 1, {"HOST_ID": "d"})


async def test_the_peers_file_round_trips_and_drops_left_nodes(tmp_path: Path) -> None:
    path = tmp_path / "peers.cbor"
    g = make()
    g.handle_ack2({"states": news("b", 60, 2, LOAD=123)})
    g.handle_ack2({"states": news("c", 70, 2, HOST_ID="c", ADDRESS="10.0.0.3:7000")})
    peers.PeersFile(path, g).save()
    saved = peers.load(path)
    assert set(saved) == {"b", "c"}  # never the local node
    assert saved["b"] == (60, {**B_STATES, "TOKENS": (5, -7)})  # no heartbeat, versions, LOAD
    fresh = make()
    assert peers.PeersFile(path, fresh).load_into_gossiper() == 2
    assert fresh.endpoint_state("b").tokens == (5, -7)  # type: ignore[union-attr]
    assert not fresh.is_alive("b") and not fresh.is_alive("c")
    # c leaves: gossip says LEFT, and the file forgets it
    g.handle_ack2({"states": news("c", 70, 5, HOST_ID="c", STATUS="LEFT")})
    peers.PeersFile(path, g).save()
    assert set(peers.load(path)) == {"b"}


@pytest.mark.parametrize(
    "raw",
    [b"", b"\xff\x00garbage", b"\xa1dpeers\x01", peers.encode({"b": (-1, {})})],
    ids=["empty", "not-cbor", "no-version", "bad-generation"],
)
async def test_a_damaged_peers_file_is_logged_and_ignored(
    tmp_path: Path, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "peers.cbor"
    path.write_bytes(raw)
    g = make()
    with caplog.at_level(logging.WARNING):
        assert peers.PeersFile(path, g).load_into_gossiper() == 0
    assert "ignoring damaged" in caplog.text and str(path) in caplog.text
    assert list(g.endpoint_states()) == ["a"]
    assert peers.load(tmp_path / "missing.cbor") == {}


async def test_the_peers_file_is_rewritten_after_gossip_news_at_most_once_a_second(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "peers.cbor"
    g = make()
    file = peers.PeersFile(path, g, interval=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(file.run)
        g.handle_ack2({"states": news("b", 60, 2)})
        await trio.sleep(0.01)
        assert set(peers.load(path)) == {"b"}
        g.handle_ack2({"states": news("c", 70, 2, HOST_ID="c", ADDRESS="10.0.0.3:7000")})
        await trio.sleep(0.5)
        assert set(peers.load(path)) == {"b"}  # debounced
        await trio.sleep(0.6)
        assert set(peers.load(path)) == {"b", "c"}
        nursery.cancel_scope.cancel()


async def test_settling_waits_for_a_peer_and_a_quiet_gossip(
    autojump_clock: trio.testing.MockClock,
) -> None:
    g = make(seeds=("10.0.0.2:7000",))
    g.add_saved_endpoint("b", 50, B_STATES)

    async def peer_answers_later() -> None:
        await trio.sleep(1.1)  # between two polls
        g.handle_ack2({"states": news("b", 60, 1)})

    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer_answers_later)
        start = trio.current_time()
        result = await wait_to_settle(g, 5.0)
    assert result.settled and result.known == 1 and result.alive == 1
    assert 1.1 + 3 * g.interval <= trio.current_time() - start <= 1.1 + 4 * g.interval


async def test_settling_gives_up_after_the_timeout(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    g = make(seeds=("10.0.0.2:7000",))
    g.add_saved_endpoint("b", 50, B_STATES)  # never heard from
    start = trio.current_time()
    result = await wait_to_settle(g, 2.0)
    assert not result.settled and result.alive == 0
    assert trio.current_time() - start == pytest.approx(2.0)
    assert "did not settle within 2 s" in caplog.text
