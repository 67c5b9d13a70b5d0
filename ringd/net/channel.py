"""An outgoing connection: requests go out with ids, responses come back in any order.

The protocol state (hello, ids, matching, frame limits) is the sans-IO
``ringd.protocol.connection.Initiator``. One writer task drains a queue of frames and coalesces
them into one ``send_all``; one reader task matches responses to their callers. Requests of a
verb that has a batch verb (``mutate``, ``read_local``) wait for the writer instead, which sends
those queued since its last pass as one batch request (``mutate_batch``, ``read_local_batch``)
and hands each caller its own item of the answer: a coordinator's writes to one replica, or
reads from it, cost one frame per pass however many requests the pass carries. A caller either
passes a callback (:meth:`Channel.send`, the coordinator's hot path: no task, no event) or
awaits :meth:`Channel.call`. Timeouts are kept in one ``Deadlines`` heap per channel. A call
that times out or finds the connection closed fails; the connection keeps serving the others.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from functools import partial
from typing import Any

import trio

from ringd.auth.peer import Initiator as PeerInitiator
from ringd.net.address import split_address
from ringd.net.deadlines import Deadline, Deadlines
from ringd.net.flusher import flusher, socket_of, write_now
from ringd.protocol import messages
from ringd.protocol.connection import CLOSED, Initiator
from ringd.protocol.errors import ErrorCode, ProtocolError
from ringd.protocol.framing import DEFAULT_MAX_FRAME
from ringd.protocol.messages import BATCH_OF, MAX_BATCH_ITEMS

log = logging.getLogger(__name__)

RECEIVE_SIZE = 256 * 1024

#: called once with (result, None) or (None, the error)
Callback = Callable[[Any, ProtocolError | None], None]


class ConnectionClosed(ProtocolError):
    """The connection closed (or could not be opened) before the response arrived."""

    code = ErrorCode.SERVER_ERROR


class CallTimeout(ProtocolError):
    """No response within the call's timeout."""

    code = ErrorCode.SERVER_ERROR


class _Call:
    __slots__ = ("callback", "deadline")

    def __init__(self, callback: Callback) -> None:
        self.callback = callback
        self.deadline: Deadline | None = None


class _Waiter:
    """Turns a callback into something :meth:`Channel.call` can await."""

    __slots__ = ("event", "value", "error")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.value: Any = None
        self.error: ProtocolError | None = None

    def __call__(self, value: Any, error: ProtocolError | None) -> None:
        self.value, self.error = value, error
        self.event.set()


class _Batch:
    """The callback of a batch request: hands each item's answer to that item's caller."""

    __slots__ = ("callbacks",)

    def __init__(self, callbacks: list[Callback]) -> None:
        self.callbacks = callbacks

    def __call__(self, value: Any, error: ProtocolError | None) -> None:
        callbacks = self.callbacks
        results = value.get("results") if error is None and type(value) is dict else None
        if error is None and (type(results) is not list or len(results) != len(callbacks)):
            error = ProtocolError("malformed batch response")
        if error is not None:
            for callback in callbacks:
                deliver(callback, None, error)
            return
        assert results is not None
        for callback, result in zip(callbacks, results, strict=True):
            if type(result) is dict and "error" in result:
                deliver(callback, None, ProtocolError.from_wire(result["error"]))
            else:
                deliver(callback, result, None)


def deliver(callback: Callback, value: Any, error: ProtocolError | None) -> None:
    """Call ``callback``; a bug in it is logged, never raised into the channel."""
    try:
        callback(value, error)
    except Exception:
        log.exception("a response callback failed")


class Channel:
    """A connected stream. Start :meth:`run` in a nursery, say hello, then :meth:`send` or
    :meth:`call`."""

    def __init__(self, stream: trio.abc.Stream, address: str, max_frame: int = DEFAULT_MAX_FRAME):
        self.address = address
        self.peer_info: dict[str, Any] = {}
        self._stream = stream
        self._proto: Initiator[_Call] = Initiator(max_frame)
        self._deadlines = Deadlines()
        self._out: list[bytes] = []
        #: requests of batchable verbs waiting for the writer, by (verb, timeout)
        self._queued: dict[tuple[str, float], list[tuple[dict[str, Any], Callback]]] = {}
        self._wake = trio.Event()
        # output leaves at the end of the pass (ringd.net.flusher) unless the writer task is
        # sending (it then sends it next) or the stream is not a plain socket
        self._sock = socket_of(stream)
        self._flusher = None if self._sock is None else flusher()
        self._sending = False
        self._marked = False
        self._closed = False
        self._close_reason = "connection closed"
        self._cancel = trio.CancelScope()
        #: where calls that timed out are counted by (address, verb), if anywhere
        self.timeouts: dict[tuple[str, str], int] | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read responses and write requests until closed; then fail every waiting call —
        also when the node cancels the channel at shutdown, since nothing (not even the
        deadline heap) would answer a waiting caller after that."""
        try:
            with self._cancel:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer, nursery.cancel_scope)
                    nursery.start_soon(self._deadlines.run)
                    task_status.started()
                    try:
                        await self._read_loop()
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                        self._close_reason = f"connection to {self.address} lost: {exc}"
                    except ProtocolError as exc:
                        self._close_reason = f"bad data from {self.address}: {exc.message}"
                    nursery.cancel_scope.cancel()
        finally:
            self._shutdown()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self._stream)

    def _shutdown(self) -> None:
        self._closed = True
        error = ConnectionClosed(self._close_reason)
        for call in self._proto.drain_pending():
            deliver(call.callback, None, error)
        queued, self._queued = self._queued, {}
        for entries in queued.values():
            for _, callback in entries:
                deliver(callback, None, error)

    async def _read_loop(self) -> None:
        proto = self._proto
        cancel = self._deadlines.cancel
        while True:
            data = await self._stream.receive_some(RECEIVE_SIZE)
            if not data:
                self._close_reason = f"{self.address} closed the connection"
                return
            proto.receive(data)
            while (item := proto.next_response()) is not None:
                call, msg = item
                if call.deadline is not None:
                    cancel(call.deadline)
                if "error" in msg:
                    deliver(call.callback, None, ProtocolError.from_wire(msg["error"]))
                elif "result" in msg:
                    deliver(call.callback, msg["result"], None)
                else:
                    deliver(
                        call.callback, None, ProtocolError("response has neither result nor error")
                    )

    async def _writer(self, scope: trio.CancelScope) -> None:
        stream = self._stream
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                data = self._take_output()
                if data:
                    self._sending = True
                    try:
                        await stream.send_all(data)
                    finally:
                        self._sending = False
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._close_reason = f"connection to {self.address} lost: {exc}"
            scope.cancel()

    def _take_output(self) -> bytes:
        """Everything to send now: the requests queued for batching since the last time,
        framed, then the rest of the output."""
        if self._queued:
            queued, self._queued = self._queued, {}
            for (op, timeout), entries in queued.items():
                for first in range(0, len(entries), MAX_BATCH_ITEMS):
                    self._send_batch(op, entries[first : first + MAX_BATCH_ITEMS], timeout)
        data = b"".join(self._out)
        self._out.clear()
        return data

    def flush(self) -> bool:
        """End of the pass: write what is queued (see ``ringd.net.flusher``)."""
        self._marked = False
        if self._closed:
            return False
        if self._sending or self._sock is None:
            self._wake.set()
            return True
        data = self._take_output()
        if not data:
            return False
        rest = write_now(self._sock, data)
        if rest:
            self._out.append(rest)
            self._wake.set()
            return True
        return False

    def _poke(self) -> None:
        if self._flusher is None or self._sending:
            self._wake.set()
        elif not self._marked:
            self._marked = True
            self._flusher.mark(self)

    def send(
        self, op: str, args: dict[str, Any], callback: Callback, timeout: float | None = None
    ) -> None:
        """Send a request; ``callback`` gets its result or error (a timeout, a closed
        connection) exactly once, from the channel's tasks or, if the channel is already
        closed, at once."""
        if self._closed or self._proto.state == CLOSED:  # closed, or bad data already arrived
            deliver(callback, None, ConnectionClosed(self._close_reason))
            return
        if timeout is None:
            timeout = messages.VERBS[op].timeout if op in messages.VERBS else 10.0
        if op in BATCH_OF:
            self._queued.setdefault((op, timeout), []).append((args, callback))
        else:
            self._request(op, args, callback, timeout)
        self._poke()

    def _request(self, op: str, args: dict[str, Any], callback: Callback, timeout: float) -> None:
        """Frame one request into the writer's queue, its deadline set."""
        call = _Call(callback)
        try:
            if op == "hello":
                req_id, data = self._proto.hello(args, call)
            else:
                req_id, data = self._proto.request(op, args, call)
        except ProtocolError as exc:
            deliver(callback, None, exc)
            return
        if timeout > 0:
            call.deadline = self._deadlines.after(
                timeout, partial(self._expire, req_id, op, timeout, 1)
            )
        self._out.append(data)

    def _send_batch(
        self, op: str, entries: list[tuple[dict[str, Any], Callback]], timeout: float
    ) -> None:
        """Frame queued requests of ``op`` with the same ``timeout``: one alone as itself,
        several as one batch request with one deadline; a batch too large for one frame goes
        out as single requests."""
        if len(entries) == 1:
            self._request(op, *entries[0], timeout)
            return
        call = _Call(_Batch([callback for _, callback in entries]))
        try:
            req_id, data = self._proto.request(
                BATCH_OF[op], {"items": [args for args, _ in entries]}, call
            )
        except ProtocolError as exc:
            call.callback(None, exc)
            return
        if len(data) > self._proto.max_frame:
            self._proto.forget(req_id)
            for args, callback in entries:
                self._request(op, args, callback, timeout)
            return
        if timeout > 0:
            call.deadline = self._deadlines.after(
                timeout, partial(self._expire, req_id, op, timeout, len(entries))
            )
        self._out.append(data)

    def _expire(self, req_id: int, op: str, timeout: float, requests: int) -> None:
        call = self._proto.forget(req_id)
        if call is not None:
            if self.timeouts is not None:
                key = (self.address, op)
                self.timeouts[key] = self.timeouts.get(key, 0) + requests
            deliver(
                call.callback,
                None,
                CallTimeout(f"no response from {self.address} to {op} within {timeout:g}s"),
            )

    async def call(self, op: str, args: dict[str, Any], timeout: float | None = None) -> Any:
        """Send a request and wait for its result; raise the error it answers with."""
        waiter = _Waiter()
        self.send(op, args, waiter, timeout)
        await waiter.event.wait()
        if waiter.error is not None:
            raise waiter.error
        return waiter.value

    def close(self) -> None:
        self._cancel.cancel()


async def _start_tls(
    raw: trio.abc.Stream, ctx: ssl.SSLContext, host: str, address: str, timeout: float
) -> trio.SSLStream[trio.abc.Stream]:
    """The TLS handshake as a client of ``host``; ``ConnectionClosed`` saying why it failed."""
    stream = trio.SSLStream(raw, ctx, server_hostname=host.strip("[]"))
    try:
        with trio.fail_after(timeout):
            await stream.do_handshake()
    except (trio.BrokenResourceError, trio.TooSlowError, ssl.SSLError) as exc:
        await trio.aclose_forcefully(raw)
        why = exc.__cause__ or exc or "timed out"
        raise ConnectionClosed(
            f"TLS handshake with {address} failed: {why} (does the node listen with TLS?)"
        ) from None
    return stream


async def open_channel(
    nursery: trio.Nursery,
    address: str,
    hello: dict[str, Any],
    *,
    connect_timeout: float = 5.0,
    max_frame: int = DEFAULT_MAX_FRAME,
    peer_auth: Callable[[], PeerInitiator] | None = None,
    tls: ssl.SSLContext | None = None,
) -> Channel:
    """Connect to ``address``, start the channel in ``nursery`` and say hello; with
    ``peer_auth`` (a new ``ringd.auth.peer.Initiator`` per connection), prove membership of the
    cluster in the hello and one ``auth`` round trip (refused: ``Unauthorized``)."""
    host, port = split_address(address)
    stream: trio.abc.Stream
    try:
        with trio.fail_after(connect_timeout):
            stream = await trio.open_tcp_stream(host, port)
    except (OSError, trio.TooSlowError) as exc:
        raise ConnectionClosed(f"cannot connect to {address}: {exc or 'timed out'}") from None
    if tls is not None:
        stream = await _start_tls(stream, tls, host, address, connect_timeout)
    channel = Channel(stream, address, max_frame)
    await nursery.start(channel.run)
    try:
        if peer_auth is None:
            channel.peer_info = await channel.call("hello", hello, timeout=connect_timeout)
        else:
            initiator = peer_auth()
            hello = {**hello, **initiator.hello_fields()}
            channel.peer_info = await channel.call("hello", hello, timeout=connect_timeout)
            auth = initiator.auth_args(channel.peer_info)
            await channel.call("auth", auth, timeout=connect_timeout)
    except BaseException:
        channel.close()
        raise
    return channel
