"""An outgoing connection: requests go out with ids, responses come back in any order.

One writer task drains a queue of frames and coalesces them into one ``send_all``; one reader task
matches responses to waiting calls. A call that times out or finds the connection closed raises;
the connection itself keeps serving the other calls.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import trio

from ringd.net.address import split_address
from ringd.protocol import codec, messages
from ringd.protocol.errors import ErrorCode, ProtocolError
from ringd.protocol.framing import DEFAULT_MAX_FRAME, FrameReader, frame

RECEIVE_SIZE = 256 * 1024


class ConnectionClosed(ProtocolError):
    """The connection closed (or could not be opened) before the response arrived."""

    code = ErrorCode.SERVER_ERROR


class CallTimeout(ProtocolError):
    """No response within the call's timeout."""

    code = ErrorCode.SERVER_ERROR


class _Pending:
    __slots__ = ("event", "response")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.response: dict[str, Any] | None = None


class Channel:
    """A connected, greeted stream. Start :meth:`run` in a nursery, then :meth:`call`."""

    def __init__(self, stream: trio.abc.Stream, address: str, max_frame: int = DEFAULT_MAX_FRAME):
        self.address = address
        self.peer_info: dict[str, Any] = {}
        self._stream = stream
        self._reader = FrameReader(max_frame)
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._out: list[bytes] = []
        self._wake = trio.Event()
        self._closed = False
        self._close_reason = "connection closed"
        self._cancel = trio.CancelScope()

    @property
    def closed(self) -> bool:
        return self._closed

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read responses and write requests until closed; then fail every waiting call."""
        with self._cancel:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, nursery.cancel_scope)
                task_status.started()
                try:
                    await self._read_loop()
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    self._close_reason = f"connection to {self.address} lost: {exc}"
                except ProtocolError as exc:
                    self._close_reason = f"bad data from {self.address}: {exc.message}"
                nursery.cancel_scope.cancel()
        self._shutdown()
        with trio.CancelScope(shield=True):
            await self._stream.aclose()

    def _shutdown(self) -> None:
        self._closed = True
        for pending in self._pending.values():
            pending.event.set()
        self._pending.clear()

    async def _read_loop(self) -> None:
        reader = self._reader
        while True:
            data = await self._stream.receive_some(RECEIVE_SIZE)
            if not data:
                self._close_reason = f"{self.address} closed the connection"
                return
            reader.feed(data)
            while (body := reader.next_frame()) is not None:
                msg = codec.decode_map(body)
                req_id = msg.get("id")
                pending = self._pending.pop(req_id, None) if type(req_id) is int else None
                if pending is not None:
                    pending.response = msg
                    pending.event.set()
                elif "error" in msg and req_id is None:
                    # the server rejected the connection as a whole
                    raise ProtocolError.from_wire(msg["error"])

    async def _writer(self, scope: trio.CancelScope) -> None:
        stream = self._stream
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                data = b"".join(self._out)
                self._out.clear()
                await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._close_reason = f"connection to {self.address} lost: {exc}"
            scope.cancel()

    def _send(self, body: bytes) -> None:
        self._out.append(frame(body))
        self._wake.set()

    async def call(self, op: str, args: dict[str, Any], timeout: float | None = None) -> Any:
        """Send a request and wait for its result; raise the error it answers with."""
        if self._closed:
            raise ConnectionClosed(self._close_reason)
        if timeout is None:
            timeout = messages.VERBS[op].timeout if op in messages.VERBS else 10.0
        req_id = next(self._ids)
        pending = _Pending()
        self._pending[req_id] = pending
        self._send(codec.encode(messages.request(req_id, op, args)))
        with trio.move_on_after(timeout if timeout > 0 else math.inf) as scope:
            await pending.event.wait()
        if scope.cancelled_caught:
            self._pending.pop(req_id, None)
            raise CallTimeout(f"no response from {self.address} to {op} within {timeout:g}s")
        if pending.response is None:
            raise ConnectionClosed(self._close_reason)
        return messages.response_value(pending.response)

    def close(self) -> None:
        self._cancel.cancel()


async def open_channel(
    nursery: trio.Nursery,
    address: str,
    hello: dict[str, Any],
    *,
    connect_timeout: float = 5.0,
    max_frame: int = DEFAULT_MAX_FRAME,
) -> Channel:
    """Connect to ``address``, start the channel in ``nursery`` and say hello."""
    host, port = split_address(address)
    try:
        with trio.fail_after(connect_timeout):
            stream = await trio.open_tcp_stream(host, port)
    except (OSError, trio.TooSlowError) as exc:
        raise ConnectionClosed(f"cannot connect to {address}: {exc or 'timed out'}") from None
    channel = Channel(stream, address, max_frame)
    await nursery.start(channel.run)
    try:
        channel.peer_info = await channel.call("hello", hello, timeout=connect_timeout)
    except BaseException:
        channel.close()
        raise
    return channel
