"""Channel calls complete through callbacks; one deadline heap per channel expires timeouts.

The far end is an ``Acceptor`` driven by hand over an in-memory stream, on trio's mock clock.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from ringd.net.channel import CallTimeout, Channel, ConnectionClosed
from ringd.net.deadlines import Deadlines
from ringd.protocol import messages
from ringd.protocol.connection import Acceptor
from ringd.protocol.errors import ProtocolError


async def serve(stream: trio.abc.Stream, answer: Any) -> None:
    """Greet, then answer each ping with ``answer(args)`` (None: never answer)."""
    proto = Acceptor()
    while data := await stream.receive_some(65536):
        proto.receive(data)
        while (req := proto.next_request()) is not None:
            if req.op == "hello":
                await stream.send_all(proto.accept(req.id, {"host_id": "far"}))
                continue
            value = answer(req.args)
            if value is not None:
                await stream.send_all(proto.result(req.id, value))


async def test_callbacks_timeouts_and_close(autojump_clock: trio.testing.MockClock) -> None:
    near, far = trio.testing.memory_stream_pair()
    results: list[tuple[Any, Any]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve, far, lambda args: None if args.get("slow") else args["n"] * 2)
        channel = Channel(near, "far:1")
        await nursery.start(channel.run)
        assert (await channel.call("hello", messages.hello_args(messages.PEER)))["host_id"] == "far"
        for n in range(5):
            channel.send("ping", {"n": n}, lambda v, e: results.append((v, e)), 1.0)
        channel.send("ping", {"slow": True}, lambda v, e: results.append((v, e)), 2.0)
        await trio.sleep(0.5)
        assert sorted(v for v, _ in results) == [0, 2, 4, 6, 8]
        start = trio.current_time()
        await trio.sleep(5)
        value, error = results[-1]
        assert value is None and isinstance(error, CallTimeout)
        assert trio.current_time() - start >= 1.4  # fired at its own deadline, not the first
        with pytest.raises(CallTimeout):
            await channel.call("ping", {"slow": True}, 3.0)
        # the pending table and the deadline heap are empty again
        assert channel._proto.pending == {} and len(channel._deadlines) == 0
        channel.send("ping", {"slow": True}, lambda v, e: results.append((v, e)), 30.0)
        channel.close()
    assert isinstance(results[-1][1], ConnectionClosed)
    channel.send("ping", {"n": 1}, lambda v, e: results.append((v, e)))
    assert isinstance(results[-1][1], ConnectionClosed)


async def test_deadlines_fire_in_order_and_cancelled_ones_never(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fired: list[str] = []
    deadlines = Deadlines()
    async with trio.open_nursery() as nursery:
        await nursery.start(deadlines.run)
        deadlines.after(3, lambda: fired.append("c"))
        cancelled = deadlines.after(1, lambda: fired.append("never"))
        deadlines.after(2, lambda: fired.append("b"))
        deadlines.cancel(cancelled)
        deadlines.after(0.5, lambda: fired.append("a"))  # earlier than the one it sleeps for
        await trio.sleep(10)
        assert fired == ["a", "b", "c"]
        assert len(deadlines) == 0
        nursery.cancel_scope.cancel()


async def test_a_call_waiting_when_the_node_cancels_the_channel_fails_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """At shutdown the node cancels its channels; a caller outside them (a repair releasing
    its participants, shielded) must hear ConnectionClosed then, not wait forever: the deadline
    heap that would time the call out is cancelled with the channel."""
    near, far = trio.testing.memory_stream_pair()
    outcome: list[BaseException] = []
    done = trio.Event()

    async def release(channel: Channel) -> None:
        try:
            await channel.call("ping", {"n": 1}, 30.0)
        except ConnectionClosed as exc:
            outcome.append(exc)
        done.set()

    async with trio.open_nursery() as outer:
        outer.start_soon(serve, far, lambda args: None)  # never answers a ping
        async with trio.open_nursery() as node:
            channel = Channel(near, "far:1")
            await node.start(channel.run)
            await channel.call("hello", messages.hello_args(messages.PEER))
            outer.start_soon(release, channel)
            await trio.sleep(0.1)
            node.cancel_scope.cancel()
        with trio.fail_after(1):
            await done.wait()
        assert channel.closed and len(outcome) == 1
        outer.cancel_scope.cancel()


async def test_requests_of_a_batchable_verb_sent_together_travel_as_one_batch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """``mutate`` requests sent before the writer runs go out as one ``mutate_batch``; each
    caller gets its own item's answer (a result, or the error the far end put in its place);
    a lone one goes out as itself, and so does one with another timeout; a batch too large for
    one frame goes out as single requests; a batch that times out fails every caller and counts
    each as a timeout."""
    near, far = trio.testing.memory_stream_pair()
    frames: list[tuple[str, int]] = []  # (op, items) as the far end received them
    silent = trio.Event()  # set: the far end stops answering

    async def far_end() -> None:
        proto = Acceptor()
        while data := await far.receive_some(1 << 20):
            proto.receive(data)
            while (req := proto.next_request()) is not None:
                if req.op == "hello":
                    await far.send_all(proto.accept(req.id, {"host_id": "far"}))
                    continue
                items = req.args["items"] if req.op == "mutate_batch" else [req.args]
                frames.append((req.op, len(items)))
                if silent.is_set():
                    continue
                answers: list[Any] = [
                    {"error": {"code": "INVALID", "message": f"bad {a['n']}"}}
                    if a["n"] % 3 == 2
                    else {"hlc": a["n"]}
                    for a in items
                ]
                value = {"results": answers} if req.op == "mutate_batch" else answers[0]
                if "error" in value:
                    await far.send_all(proto.error(req.id, ProtocolError(f"bad {req.args['n']}")))
                else:
                    await far.send_all(proto.result(req.id, value))

    got: dict[int, tuple[Any, Any]] = {}

    def send_all(channel: Channel, ns: range, size: int = 0, timeout: float = 1.0) -> None:
        for n in ns:
            args = {"n": n, "pad": b"x" * size}
            channel.send("mutate", args, lambda v, e, n=n: got.__setitem__(n, (v, e)), timeout)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(far_end)
        channel = Channel(near, "far:1", max_frame=64 * 1024)
        channel.timeouts = {}
        await nursery.start(channel.run)
        await channel.call("hello", messages.hello_args(messages.PEER))
        send_all(channel, range(7))
        await trio.sleep(0.1)
        assert frames == [("mutate_batch", 7)]
        assert {n: v for n, (v, _) in got.items() if v} == {n: {"hlc": n} for n in (0, 1, 3, 4, 6)}
        assert {n: e.message for n, (_, e) in got.items() if e} == {2: "bad 2", 5: "bad 5"}
        assert all(isinstance(got[n][1], ProtocolError) for n in (2, 5))

        frames.clear()
        send_all(channel, range(10, 11))  # alone: as itself
        await trio.sleep(0.1)
        assert frames == [("mutate", 1)] and got[10] == ({"hlc": 10}, None)

        frames.clear()
        send_all(channel, range(20, 23), size=30_000)  # 90 kB: more than one 64 kB frame
        await trio.sleep(0.1)
        assert frames == [("mutate", 1)] * 3
        assert [got[n][0] for n in (20, 21)] == [None, {"hlc": 21}]

        frames.clear()
        silent.set()
        send_all(channel, range(30, 34), timeout=2.0)
        send_all(channel, range(34, 35), timeout=4.0)  # another timeout: not in that batch
        await trio.sleep(3)
        assert frames == [("mutate_batch", 4), ("mutate", 1)]
        assert all(isinstance(got[n][1], CallTimeout) for n in range(30, 34))
        assert 34 not in got
        assert channel.timeouts == {("far:1", "mutate"): 4}
        await trio.sleep(2)
        assert isinstance(got[34][1], CallTimeout)

        send_all(channel, range(40, 42), timeout=30.0)  # queued when the channel closes
        channel.close()
    assert all(isinstance(got[n][1], ConnectionClosed) for n in (40, 41))
