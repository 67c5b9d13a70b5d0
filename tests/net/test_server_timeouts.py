"""A connection's timeouts, kept by its watchdog task: an idle client is closed, one waiting for
its own answers is not, and a started frame that stalls is closed after ``frame_timeout_s``.

A real ``Server`` on loopback, with timeouts of a fraction of a second.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from ringd.net.server import Limits, Reply, Server, Session
from ringd.protocol import messages
from ringd.protocol.connection import Initiator
from ringd.protocol.errors import ProtocolError

IDLE = 0.3  # client_idle_timeout_s


def handlers(held: list[Reply]) -> dict[str, Any]:
    """A handler for every verb: ``put`` holds its reply in ``held``; the rest answer ``{}``."""

    def inline(s: Session, args: dict[str, Any]) -> Any:
        return {}

    def deferred(s: Session, args: dict[str, Any], reply: Reply) -> None:
        reply({})

    async def task(s: Session, args: dict[str, Any]) -> Any:
        return {}

    table: dict[str, Any] = {
        name: {messages.INLINE: inline, messages.DEFERRED: deferred, messages.TASK: task}[v.mode]
        for name, v in messages.VERBS.items()
        if name not in messages.SERVER_VERBS and name != "auth"
    }
    table["put"] = lambda s, args, reply: held.append(reply)
    return table


class Client:
    """A client connection read and written by hand."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.proto: Initiator[bool] = Initiator()
        self.responses: list[dict[str, Any]] = []

    async def send(self, op: str, args: dict[str, Any]) -> None:
        if op == "hello":
            _, data = self.proto.hello(args, True)
        else:
            _, data = self.proto.request(op, args, True)
        await self.stream.send_all(data)

    async def next(self) -> dict[str, Any] | None:
        """The next response, or None once the server closed the connection."""
        while not self.responses:
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.proto.receive(data)
            try:
                while (item := self.proto.next_response()) is not None:
                    self.responses.append(item[1])
            except ProtocolError as exc:  # the connection's own error: the server closes it
                self.responses.append({"error": exc.to_wire()})
        return self.responses.pop(0)


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[int, list[Reply]]]:
    held: list[Reply] = []
    limits = Limits(client_idle_timeout_s=IDLE, frame_timeout_s=getattr(request, "param", 30.0))
    server = Server(handlers(held), node_info=dict, limits=limits)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(server.serve, "127.0.0.1", 0)
        yield listeners[0].socket.getsockname()[1], held
        nursery.cancel_scope.cancel()


async def connect(port: int) -> Client:
    client = Client(await trio.open_tcp_stream("127.0.0.1", port))
    await client.send("hello", messages.hello_args(messages.CLIENT))
    assert "result" in (await client.next() or {})
    return client


async def test_an_idle_client_is_closed_and_one_waiting_for_answers_is_not(
    server: tuple[int, list[Reply]],
) -> None:
    port, held = server
    idle, waiting = await connect(port), await connect(port)
    start = trio.current_time()
    await waiting.send("put", {})  # its answer is held back
    with trio.fail_after(10):
        closing = await idle.next()
        assert trio.current_time() - start >= IDLE
        assert closing is not None and "idle" in closing["error"]["message"]
        assert await idle.next() is None  # closed
    await trio.sleep(3 * IDLE)  # the other one waits for its own answer: not idle
    held[0]({"done": True})
    with trio.fail_after(10):
        assert (await waiting.next() or {}).get("result") == {"done": True}
        answered = trio.current_time()
        closing = await waiting.next()  # idle from now on
        assert trio.current_time() - answered >= IDLE
        assert closing is not None and "idle" in closing["error"]["message"]
        assert await waiting.next() is None


@pytest.mark.parametrize("server", [0.5], indirect=True)  # frame_timeout_s
async def test_a_stalled_frame_is_closed_after_the_frame_timeout(
    server: tuple[int, list[Reply]],
) -> None:
    port, _ = server
    client = await connect(port)
    await client.send("ping", {})
    assert "result" in (await client.next() or {})
    await client.stream.send_all((1000).to_bytes(4, "big") + b"\xa1")  # 5 of 1,004 bytes
    start = trio.current_time()
    with trio.fail_after(10):
        closing = await client.next()
    assert trio.current_time() - start >= 0.5
    assert closing is not None and "made no progress for 0.5s" in closing["error"]["message"]
