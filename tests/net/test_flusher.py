"""End-of-pass writes (``ringd.net.flusher``): a pass's output leaves in one write at its end, a
write the socket cannot take is finished by the writer task whole and in order, a task woken by
a flush runs before the loop sleeps, and a failing flush does not stop the others.

Channels here run over real loopback TCP sockets (in-memory streams never take the flush path).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest
import trio

from ringd.net import channel as channel_module
from ringd.net.channel import Channel
from ringd.net.flusher import flusher
from ringd.protocol import messages
from ringd.protocol.connection import Acceptor


class Waker:
    """A connection whose flush wakes a task, as handing the writer the rest of a write does."""

    def __init__(self, fail: bool = False) -> None:
        self.event = trio.Event()
        self.fail = fail
        self.flushes = 0

    def flush(self) -> bool:
        self.flushes += 1
        if self.fail:
            raise RuntimeError("a bug in a flush")
        self.event.set()
        return True


async def test_a_task_woken_by_a_flush_runs_before_the_loop_sleeps() -> None:
    """The flush runs after trio chose how long to wait for I/O; without a poke of the loop the
    woken task would wait for that whole timeout (here the test's own deadline)."""
    with trio.fail_after(30):  # nothing else would wake the loop before this
        for _ in range(3):
            conn = Waker()
            flusher().mark(conn)
            await conn.event.wait()
            assert conn.flushes == 1


async def test_a_failing_flush_is_logged_and_the_others_still_flush(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad, good = Waker(fail=True), Waker()
    with caplog.at_level(logging.ERROR, logger="ringd.net.flusher"), trio.fail_after(30):
        flusher().mark(bad)
        flusher().mark(good)
        await good.event.wait()
        later = Waker()  # trio drops an instrument that raises: this one would never flush
        flusher().mark(later)
        await later.event.wait()
    assert bad.flushes == 1 and "flushing a connection failed" in caplog.text


class Answers:
    """Callbacks' results by request number; ``all_in`` once ``count`` are in."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.got: dict[int, Any] = {}
        self.all_in = trio.Event()

    def callback(self, n: int) -> Any:
        def done(value: Any, error: Any) -> None:
            self.got[n] = error or value["n"]
            if len(self.got) == self.count:
                self.all_in.set()

        return done


async def serve(stream: trio.SocketStream, started: trio.Event) -> None:
    """Greet, then answer each ping with its own ``n``, once ``started`` is set."""
    proto = Acceptor(1 << 24)
    while data := await stream.receive_some(65536):
        proto.receive(data)
        while (req := proto.next_request()) is not None:
            if req.op == "hello":
                await stream.send_all(proto.accept(req.id, {"host_id": "far"}))
                continue
            await started.wait()
            await stream.send_all(proto.result(req.id, {"n": req.args["n"]}))


async def connected(
    nursery: trio.Nursery, started: trio.Event, buffer: int | None = None
) -> Channel:
    """A channel over loopback TCP to :func:`serve`, greeted; ``buffer``: small socket buffers
    on both ends (so that the far end not reading fills them quickly)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def accept_one() -> None:
        stream = await listeners[0].accept()
        if buffer:
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
        await listeners[0].aclose()
        async with stream:
            await serve(stream, started)

    nursery.start_soon(accept_one)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    if buffer:
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer)
    channel = Channel(stream, f"127.0.0.1:{port}")
    await nursery.start(channel.run)
    assert (await channel.call("hello", messages.hello_args(messages.PEER)))["host_id"] == "far"
    return channel


async def test_the_requests_of_one_pass_leave_in_one_write(monkeypatch) -> None:
    writes: list[int] = []
    real = channel_module.write_now

    def counting(sock: Any, data: bytes) -> bytes:
        writes.append(len(data))
        return real(sock, data)

    monkeypatch.setattr(channel_module, "write_now", counting)
    started = trio.Event()
    started.set()
    answers = Answers(50)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            channel = await connected(nursery, started)
            writes.clear()
            for n in range(50):  # one task, one pass
                channel.send("ping", {"n": n}, answers.callback(n), 10.0)
            await answers.all_in.wait()
            channel.close()
    assert len(writes) == 1, writes
    assert answers.got == {n: n for n in range(50)}


async def test_what_the_socket_cannot_take_arrives_whole_and_in_order(monkeypatch) -> None:
    """The far end stops reading at the first request until 4 MB of requests are queued over
    many passes: the flush writes what the small socket buffers take, the writer task the
    rest, with no byte interleaved or lost."""
    writes: list[tuple[int, int]] = []
    real = channel_module.write_now

    def recording(sock: Any, data: bytes) -> bytes:
        rest = real(sock, data)
        writes.append((len(data), len(data) - len(rest)))
        return rest

    monkeypatch.setattr(channel_module, "write_now", recording)
    started = trio.Event()
    count = 1000
    answers = Answers(count)
    pad = b"x" * 4000
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            channel = await connected(nursery, started, buffer=16384)
            for n in range(count):
                channel.send("ping", {"n": n, "pad": pad}, answers.callback(n), 60.0)
                if n % 10 == 0:
                    await (
                        trio.lowlevel.checkpoint()
                    )  # next pass: more flushes, while the writer sends
            assert any(sent < size for size, sent in writes)  # the writer took over
            started.set()
            await answers.all_in.wait()
            channel.close()
    assert answers.got == {n: n for n in range(count)}
