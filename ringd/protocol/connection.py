"""The connection state machine, sans-IO: hello -> ready -> closed, id allocation and matching,
frame limits. The server, the internode channel and the blocking client all drive one of these.

Bytes received go in with :meth:`Connection.receive`; messages come out of
:meth:`Initiator.next_response` / :meth:`Acceptor.next_request`; the bytes to send come back
from the methods that build requests and responses. Frames are limited to
``HANDSHAKE_MAX_FRAME`` until the hello is answered, to ``max_frame`` after. An error that makes
the stream unusable (bad framing, bad CBOR, a rejected hello) raises ``ProtocolError`` and
closes the connection; an error that concerns one request only does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Generic, NamedTuple, TypeVar

from ringd.protocol import codec, messages
from ringd.protocol.errors import ErrorCode, ProtocolError
from ringd.protocol.framing import DEFAULT_MAX_FRAME, HANDSHAKE_MAX_FRAME, FrameReader, frame


class StreamError(ProtocolError):
    """What arrived is not this protocol (bad framing or CBOR): the stream is unusable. An
    error the peer *sends* is a plain ``ProtocolError`` (or one of its subclasses) instead."""


HELLO = "hello"
READY = "ready"
CLOSED = "closed"

T = TypeVar("T")


class Connection:
    """What both sides share: the state, the frame reader and its limits."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.state = HELLO
        self.max_frame = max_frame
        self._reader = FrameReader(min(HANDSHAKE_MAX_FRAME, max_frame))

    def receive(self, data: bytes | bytearray) -> None:
        """Bytes from the peer (``b""`` at end of stream)."""
        if not data:
            if self._reader.buffered() and self.state != CLOSED:
                self.state = CLOSED
                raise StreamError(
                    f"connection closed inside a frame ({self._reader.buffered()} bytes)"
                )
            self.state = CLOSED
            return
        self._reader.feed(data)

    def buffered(self) -> int:
        """Bytes received that do not yet form a whole frame."""
        return self._reader.buffered()

    def close(self) -> None:
        self.state = CLOSED

    def _ready(self) -> None:
        self.state = READY
        self._reader.max_frame = self.max_frame

    def _next_map(self) -> dict[str, Any] | None:
        try:
            body = self._reader.next_frame()
            if body is None:
                return None
            return codec.decode_map(body)
        except ProtocolError as exc:
            self.state = CLOSED
            raise StreamError(exc.message, exc.code, **exc.details) from None


class Initiator(Connection, Generic[T]):
    """The connecting side: says hello, numbers its requests and matches the responses.

    Each request carries a token of the caller's choice (a callback, an event...);
    :meth:`next_response` gives it back with the response map. Responses to ids no longer
    pending (the caller gave up on them with :meth:`forget`) are dropped.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        super().__init__(max_frame)
        self._next_id = 1
        self.pending: dict[int, T] = {}
        self._hello_id: int | None = None

    def hello(self, args: dict[str, Any], token: T) -> tuple[int, bytes]:
        """The id and the frame of the hello; its response, from :meth:`next_response`, makes the connection
        ready (or closes it if it is an error)."""
        if self.state != HELLO or self._hello_id is not None:
            raise ProtocolError("hello was already sent")
        req_id = self._next_id
        data = self._request("hello", args, token)
        self._hello_id = req_id
        return req_id, data

    def request(self, op: str, args: dict[str, Any], token: T) -> tuple[int, bytes]:
        """The id and the frame of a request; ``token`` comes back with its response."""
        if self.state != READY:
            raise ProtocolError(
                "connection is closed" if self.state == CLOSED else "hello not yet answered"
            )
        req_id = self._next_id
        return req_id, self._request(op, args, token)

    def _request(self, op: str, args: dict[str, Any], token: T) -> bytes:
        req_id = self._next_id
        self._next_id = req_id + 1
        data = frame(codec.encode({"id": req_id, "op": op, "args": args}))
        self.pending[req_id] = token
        return data

    def forget(self, req_id: int) -> T | None:
        """Stop waiting for ``req_id`` (timed out); its token, if it was still pending."""
        return self.pending.pop(req_id, None)

    def next_response(self) -> tuple[T, dict[str, Any]] | None:
        """The next response to a pending request with its token, or ``None`` when more bytes
        are needed. An error the peer sends for the connection as a whole (id null) raises."""
        while (msg := self._next_map()) is not None:
            req_id = msg.get("id")
            if type(req_id) is int:
                token = self.pending.pop(req_id, None)
                if token is None:
                    continue
                if req_id == self._hello_id:
                    self._hello_id = None
                    if "error" in msg:
                        self.state = CLOSED
                    else:
                        self._ready()
                return token, msg
            if req_id is None and "error" in msg:
                self.state = CLOSED
                raise ProtocolError.from_wire(msg["error"])
        return None

    def drain_pending(self) -> Iterator[T]:
        """Close, and give every token still waiting (to fail them)."""
        self.state = CLOSED
        pending, self.pending = self.pending, {}
        yield from pending.values()


class Request(NamedTuple):
    """A request as the accepting side sees it. ``error`` is set when this request alone is bad
    (it is answered with that error; the connection goes on)."""

    id: int | None
    op: str
    args: dict[str, Any]
    error: ProtocolError | None = None


class Acceptor(Connection):
    """The accepting side: the first request must be a valid hello, then requests of the verbs
    the hello's role may send. :meth:`result` and :meth:`error` build the response frames."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        super().__init__(max_frame)
        self.role = ""
        self.hello_args: dict[str, Any] = {}
        self.draining = False

    def next_request(self) -> Request | None:
        """The next request, or ``None`` when more bytes are needed. Before the handshake only
        a well-formed hello is accepted (anything else raises and closes); the caller then
        answers it with :meth:`accept` or :meth:`reject`."""
        msg = self._next_map()
        if msg is None:
            return None
        if self.state == HELLO:
            try:
                req_id, op, args = messages.parse_request(msg)
                if op != "hello":
                    raise ProtocolError(f"the first request must be hello, not {op!r}", id=req_id)
                self.role = messages.check_hello(args)
            except ProtocolError as exc:
                self.state = CLOSED
                if "id" not in exc.details and type(msg.get("id")) is int:
                    exc.details["id"] = msg["id"]
                raise
            self.hello_args = args
            return Request(req_id, op, args)
        try:
            req_id, op, args = messages.parse_request(msg)
        except ProtocolError as exc:
            return Request(exc.details.pop("id", None), "", {}, exc)
        verb = messages.VERBS.get(op)
        if verb is None or op == "hello":
            error = ProtocolError(
                f"unknown operation {op!r}" if verb is None else "hello was already said"
            )
        elif self.role not in verb.roles:
            error = ProtocolError(
                f"{op} is not allowed on a {self.role} connection", ErrorCode.UNAUTHORIZED
            )
        elif self.draining:
            error = ProtocolError("node is shutting down; try another node", ErrorCode.OVERLOADED)
        else:
            return Request(req_id, op, args)
        return Request(req_id, op, args, error)

    def accept(self, req_id: int | None, info: Any) -> bytes:
        """Answer the hello: the connection is ready."""
        self._ready()
        return self.result(req_id, info)

    def reject(self, req_id: int | None, exc: ProtocolError) -> bytes:
        """Refuse the hello (or the connection): the error frame; the connection is closed."""
        self.state = CLOSED
        return self.error(req_id, exc)

    @staticmethod
    def result(req_id: int | None, value: Any) -> bytes:
        try:
            return frame(codec.encode({"id": req_id, "result": value}))
        except ProtocolError as exc:
            return Acceptor.error(req_id, exc)

    @staticmethod
    def error(req_id: int | None, exc: ProtocolError) -> bytes:
        return frame(codec.encode({"id": req_id, "error": exc.to_wire()}))


__all__ = ["CLOSED", "HELLO", "READY", "Acceptor", "Connection", "Initiator", "Request"]
