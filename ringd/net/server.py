"""The listener: accepts connections, checks the hello, and dispatches requests to handlers.

The connection's protocol state (hello, frame limits, which verbs the role may send) is the
sans-IO ``ringd.protocol.connection.Acceptor``; this module does the I/O. Each verb of the verb
table says how its handler runs (``Verb.mode``): ``inline`` handlers answer in the connection's
reader (the fast path), ``deferred`` handlers get a ``reply`` callable they call once, later
(from a callback) or at once, and ``task`` handlers are ``async`` functions run in their own
task. A handler answers with a result or ``ProtocolError``; anything else it raises becomes
``SERVER_ERROR`` and is logged. Responses go through one coalescing writer per connection.
Bad input gets an error frame; framing errors also close the connection. Nothing a client sends
escapes its connection. Buffers are bounded: a connection stops reading while it has too many
requests in flight or too many response bytes unsent, and a node holds at most
``max_connections`` ordinary client connections plus ``reserved_connections`` more for peers
and admins (more get ``OVERLOADED`` and are closed), so a node's memory for buffers is bounded
whatever clients do. ``Limits`` also closes a client connection idle (no request, nothing in
flight) for ``client_idle_timeout_s``, a connection whose started frame makes no progress for
``frame_timeout_s``, and one whose unfinished frame would take the node's bytes held in
unfinished frames past ``max_unfinished_frame_bytes``. Each is counted (``stats``) and logged,
rate-limited.
"""

from __future__ import annotations

import inspect
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from time import perf_counter
from typing import Any

import trio

from ringd.auth.gate import Gate, RateLimitedLog
from ringd.auth.node_tls import TLS_RECORD, NodeTLS
from ringd.auth.roles import ADMIN
from ringd.metrics.requests import ServedVerbs, VerbLatency
from ringd.net import accept
from ringd.net.flusher import flusher, socket_of, write_now
from ringd.protocol import messages
from ringd.protocol.connection import Acceptor
from ringd.protocol.errors import ErrorCode, ProtocolError
from ringd.protocol.framing import DEFAULT_MAX_FRAME
from ringd.protocol.messages import PEER

log = logging.getLogger(__name__)

RECEIVE_SIZE = 256 * 1024
MAX_IN_FLIGHT = 1024  # per connection
MAX_UNSENT_BYTES = 8 * 1024 * 1024  # per connection
HANDSHAKE_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0  # to answer requests in flight when a client closes or misbehaves
DRAIN_QUIET = 0.1  # draining: a connection closes once nothing has arrived on it for this long

Reply = Callable[[Any], None]  # a deferred handler's answer: the result or a ProtocolError
Handler = (
    Callable[["Session", dict[str, Any]], Any]
    | Callable[["Session", dict[str, Any], Reply], None]
    | Callable[["Session", dict[str, Any]], Awaitable[Any]]
)


@dataclass(frozen=True)
class Limits:
    """What a node lets its connections hold (see the module docstring); 0 idle timeout: none."""

    max_connections: int = 1024
    reserved_connections: int = 16
    client_idle_timeout_s: float = 300.0
    frame_timeout_s: float = 30.0
    max_unfinished_frame_bytes: int = 64 * 1024 * 1024


@dataclass
class Session:
    """Who is on the other end of a connection, as the handlers see it."""

    remote: str
    role: str = ""
    hello: dict[str, Any] = field(default_factory=dict)
    authenticated: bool = False  # set by the gate (``ringd.auth.gate``)
    kind: str = ""  # a client's role kind: admin, readwrite, readonly
    user: str = ""
    peer_auth: Any = None  # a peer's ``ringd.auth.peer.Acceptor`` until its auth is answered
    tls: bool = False  # the connection is over TLS
    peer_cert: bool = False  # ...and the other end presented a certificate the CA signed


class _Conn:
    """One accepted connection's state: protocol state, outgoing buffer, in-flight count."""

    def __init__(self, stream: trio.SocketStream, max_frame: int) -> None:
        self.stream: trio.abc.Stream = stream
        self.proto = Acceptor(max_frame)
        self.out: list[bytes] = []
        self.out_bytes = 0
        self.wake = trio.Event()
        self.room = trio.Event()
        self.in_flight = 0
        self.closing = False
        self.writer_done = trio.Event()
        # the reader's wait for bytes (from when it began, or from the last answer if later),
        # timed by the connection's watchdog (Server._watch)
        self.receiving = False
        self.waiting_since = trio.current_time()
        self.watchdog = trio.CancelScope()
        self.held = 0  # bytes of unfinished frames, as counted in Server.unfinished_bytes
        self.ordinary = False  # holds one of the max_connections ordinary slots
        # output leaves at the end of the pass (ringd.net.flusher) unless the writer task is
        # sending (it then sends it next) or the stream is not a plain socket
        self.sock = socket_of(stream)
        self.sending = False
        self.marked = False
        self.flusher = flusher()

    def write(self, data: bytes) -> None:
        self.out.append(data)
        self.out_bytes += len(data)
        if self.sock is None or self.sending or self.closing:
            self.wake.set()
        elif not self.marked:
            self.marked = True
            self.flusher.mark(self)

    def flush(self) -> bool:
        """End of the pass: write what is queued (see ``ringd.net.flusher``)."""
        self.marked = False
        if not self.out:
            return False
        if self.sending or self.closing or self.sock is None:
            self.wake.set()
            return True
        crowded = self.crowded()
        data = b"".join(self.out)
        self.out.clear()
        rest = write_now(self.sock, data)
        self.out_bytes -= len(data) - len(rest)
        woke = False
        if rest:
            self.out.append(rest)
            self.wake.set()
            woke = True
        if crowded and not self.crowded():
            self.room.set()
            woke = True
        return woke

    def crowded(self) -> bool:
        return self.in_flight >= MAX_IN_FLIGHT or self.out_bytes >= MAX_UNSENT_BYTES

    def make_room(self) -> None:
        if not self.crowded():
            self.room.set()


class Server:
    """Serve ``handlers`` (verb name -> handler) on a TCP address."""

    def __init__(
        self,
        handlers: dict[str, Handler],
        *,
        node_info: Callable[[], dict[str, Any]],
        max_frame: int = DEFAULT_MAX_FRAME,
        gate: Gate | None = None,
        limits: Limits | None = None,
        tls: NodeTLS | None = None,
    ) -> None:
        missing = set(messages.VERBS) - set(handlers) - messages.SERVER_VERBS - {"auth"}
        unknown = set(handlers) - set(messages.VERBS)
        if missing or unknown:
            raise ValueError(
                f"verb table and handlers disagree: missing {missing}, unknown {unknown}"
            )
        for name, handler in handlers.items():
            is_async = inspect.iscoroutinefunction(handler)
            if is_async != (messages.VERBS[name].mode == messages.TASK):
                raise ValueError(f"handler for {name} does not match its mode in the verb table")
        self._handlers = {
            name: (messages.VERBS[name].mode, handler) for name, handler in handlers.items()
        }
        for batch, item in messages.BATCHES.items():
            if batch in handlers:  # the item verb's subsystem runs a whole batch in one call
                self._handlers[batch] = (WHOLE_BATCH, handlers[batch])
            elif item in handlers:  # the server unpacks a batch into requests of its item verb
                assert messages.VERBS[item].mode != messages.TASK, item
                self._handlers[batch] = (BATCH, handlers[item])
        self._gate = gate
        self._node_info = node_info
        self._max_frame = max_frame
        self.limits = limits or Limits()
        self.tls = tls
        self._log = RateLimitedLog(logger=log)
        self._draining = False
        self._in_flight = 0
        self._idle = trio.Event()
        self._idle.set()
        self._conn_scope = trio.CancelScope()
        self._listen_scope = trio.CancelScope()
        self._conns: set[_Conn] = set()
        self.connections = 0
        self.requests = 0
        self.blocked = 0  # times a connection stopped reading until its responses drained
        self.ordinary = 0  # connections holding an ordinary (not reserved) slot
        self.unfinished_bytes = 0  # bytes held in unfinished frames, all connections
        self.refused_connections = 0
        self.refused_frames = 0
        self.idle_closed = 0
        self.frame_timeouts = 0
        self.served = ServedVerbs()  # per verb: queue wait and latency (``tpstats``)

    def stats(self) -> dict[str, int]:
        """The connection limits' counters, for ``info``."""
        return {
            "connections": self.connections,
            "ordinary_connections": self.ordinary,
            "max_connections": self.limits.max_connections,
            "reserved_connections": self.limits.reserved_connections,
            "unfinished_frame_bytes": self.unfinished_bytes,
            "max_unfinished_frame_bytes": self.limits.max_unfinished_frame_bytes,
            "refused_connections": self.refused_connections,
            "refused_frames": self.refused_frames,
            "idle_closed": self.idle_closed,
            "frame_timeouts": self.frame_timeouts,
        }

    def _refuse(self, kind: str, remote: str, why: str) -> ProtocolError:
        self._log.warning(kind, "closed connection from %s: %s", remote, why)
        return ProtocolError(why, ErrorCode.OVERLOADED)

    async def serve(
        self,
        host: str,
        port: int,
        *,
        task_status: trio.TaskStatus[list[Any]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen until :meth:`drain` finishes (or cancelled); ``started`` once listening."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        with self._conn_scope:
            async with trio.open_nursery() as connections:
                with self._listen_scope:
                    async with trio.open_nursery() as accepting:
                        await accepting.start(
                            partial(
                                accept.serve_listeners,
                                self._handle,
                                listeners,
                                handler_nursery=connections,
                            )
                        )
                        task_status.started(listeners)
                # no longer accepting; the connections end when drain() cancels them
                await trio.sleep_forever()

    async def drain(self, timeout: float) -> None:
        """Stop accepting, answer new requests with OVERLOADED, wait for those in flight, keep
        reading until every connection has been quiet for ``DRAIN_QUIET`` (so requests already
        on their way get an answer too), send every queued response, then close."""
        self._draining = True
        self._listen_scope.cancel()
        with trio.move_on_after(timeout):
            await self._idle.wait()
            # quiet is the absence of events, so poll for it
            while busy := [c for c in self._conns if not self._settled(c)]:  # noqa: ASYNC110
                wake_at = min(c.waiting_since for c in busy) + DRAIN_QUIET
                await trio.sleep(max(0.01, wake_at - trio.current_time()))
            for conn in list(self._conns):
                conn.closing = True
                conn.wake.set()
            for conn in list(self._conns):
                await conn.writer_done.wait()
        self._conn_scope.cancel()

    @staticmethod
    def _settled(conn: _Conn) -> bool:
        """Nothing in flight, nothing unsent, nothing received lately."""
        quiet = trio.current_time() - conn.waiting_since >= DRAIN_QUIET
        return quiet and not conn.in_flight and not conn.out

    async def _handle(self, stream: trio.SocketStream) -> None:
        try:
            sockname = stream.socket.getpeername()
            remote = f"{sockname[0]}:{sockname[1]}"
        except OSError:
            remote = "?"
        self.connections += 1
        conn = _Conn(stream, self._max_frame)
        self._conns.add(conn)
        session = Session(remote)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, conn, nursery.cancel_scope)
                try:
                    limits = self.limits
                    if self.connections > limits.max_connections + limits.reserved_connections:
                        self.refused_connections += 1
                        raise self._refuse(
                            "connections",
                            remote,
                            f"too many connections ({limits.max_connections}); "
                            "try again later or another node",
                        )
                    await self._read_loop(conn, session, nursery)
                except ProtocolError as exc:
                    # framing-level problem: say why, then close
                    conn.write(conn.proto.reject(exc.details.pop("id", None), exc))
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass
                conn.proto.close()
                # answer what is in flight, let the writer send everything queued, then close
                with trio.move_on_after(CLOSE_TIMEOUT):
                    while conn.in_flight:
                        conn.room = trio.Event()
                        await conn.room.wait()
                    conn.closing = True
                    conn.wake.set()
                    await conn.writer_done.wait()
                nursery.cancel_scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        except Exception:  # a bug: never let it take down the server
            log.exception("connection from %s failed", remote)
        finally:
            self.connections -= 1
            self.unfinished_bytes -= conn.held
            if conn.ordinary:
                self.ordinary -= 1
            self._conns.discard(conn)
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _writer(self, conn: _Conn, scope: trio.CancelScope) -> None:
        try:
            await self._write_loop(conn)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            scope.cancel()  # the peer is gone: nothing more to read or write

    async def _write_loop(self, conn: _Conn) -> None:
        while True:
            await conn.wake.wait()
            conn.wake = trio.Event()
            if conn.out:
                data = b"".join(conn.out)
                conn.out.clear()
                conn.sending = True
                try:
                    await conn.stream.send_all(data)
                finally:
                    conn.sending = False
                conn.out_bytes -= len(data)
                conn.make_room()
            if conn.closing and not conn.out:
                conn.writer_done.set()
                return

    async def _read_loop(self, conn: _Conn, session: Session, nursery: trio.Nursery) -> None:
        proto = conn.proto
        stream = conn.stream
        greeted = False
        with trio.move_on_after(HANDSHAKE_TIMEOUT) as hello_deadline:
            if self.tls is not None and self.tls.server is not None:
                if not await self._start_tls(conn, session):
                    return
                stream = conn.stream
            while not greeted:
                data = await stream.receive_some(RECEIVE_SIZE)
                if not data:
                    return
                proto.receive(data)
                hello = proto.next_request()
                if hello is None:
                    continue
                greeted = await self._hello(conn, session, hello.id, hello.args)
                if not greeted:
                    return
        if hello_deadline.cancelled_caught:
            raise ProtocolError("no hello within the handshake timeout")
        reading = trio.CancelScope()  # the watchdog cancels it to close the connection
        nursery.start_soon(self._watch, conn, session, reading)
        try:
            with reading:
                await self._serve_requests(conn, session, nursery)
        finally:
            conn.watchdog.cancel()

    async def _serve_requests(self, conn: _Conn, session: Session, nursery: trio.Nursery) -> None:
        proto = conn.proto
        stream = conn.stream
        handlers = self._handlers
        gate = self._gate
        served = self.served
        received = perf_counter()  # when the bytes being decoded were read (queue wait)
        while True:
            proto.draining = self._draining
            while (req := proto.next_request()) is not None:
                req_id, op, args, error = req
                self.requests += 1
                if error is None and gate is not None:
                    try:
                        gate.check(session, op)
                    except ProtocolError as exc:
                        error = exc
                if error is not None:
                    conn.write(proto.error(req_id, error))
                    continue
                mode, handler = handlers[op]
                if op == "auth":  # a peer's proof: a wrong one ends the connection
                    try:
                        conn.write(proto.result(req_id, handler(session, args)))  # type: ignore[call-arg]
                    except ProtocolError as exc:
                        conn.write(proto.error(req_id, exc))
                        return
                    continue
                if mode == BATCH or mode == WHOLE_BATCH:  # timed as requests of the item verb
                    self._run_batch(conn, req_id, op, mode, handler, session, args, received)
                    continue
                started = perf_counter()
                timing = served[op]
                timing.queue_wait.add(started - received)
                if mode == "inline":
                    try:
                        conn.write(proto.result(req_id, handler(session, args)))  # type: ignore[call-arg]
                    except ProtocolError as exc:
                        conn.write(proto.error(req_id, exc))
                    except Exception as exc:
                        log.exception("handler for %s failed", op)
                        conn.write(proto.error(req_id, server_error(op, exc)))
                    timing.latency.add(perf_counter() - started)
                elif mode == "deferred":
                    self._run_deferred(conn, req_id, op, handler, session, args, timing, started)
                else:
                    self._begin(conn)
                    nursery.start_soon(
                        self._run_async, conn, req_id, op, handler, session, args, timing, started
                    )
            self._hold(conn, session)
            if conn.crowded():
                self.blocked += 1
                conn.room = trio.Event()
                conn.make_room()
                await conn.room.wait()
            conn.waiting_since = trio.current_time()
            conn.receiving = True
            data = await stream.receive_some(RECEIVE_SIZE)
            conn.receiving = False
            received = perf_counter()
            proto.receive(data)
            if not data:
                return

    async def _start_tls(self, conn: _Conn, session: Session) -> bool:
        """If the first byte starts a TLS record, do the handshake (False: it failed)."""
        raw = conn.stream
        assert isinstance(raw, trio.SocketStream) and self.tls is not None
        context = self.tls.server
        assert context is not None
        first = await raw.socket.recv(1, socket.MSG_PEEK)
        if not first or first[0] != TLS_RECORD:
            return bool(first)
        tls_stream = trio.SSLStream(raw, context, server_side=True)
        conn.sock = None  # from now on only the writer task writes, through TLS
        try:
            await tls_stream.do_handshake()
        except (trio.BrokenResourceError, ssl.SSLError) as exc:
            self._log.warning(
                "tls", "TLS handshake from %s failed: %s", session.remote, exc.__cause__ or exc
            )
            return False
        conn.stream = tls_stream
        session.tls = True
        session.peer_cert = bool(tls_stream.getpeercert())
        return True

    def _hold(self, conn: _Conn, session: Session) -> None:
        """Count the connection's unfinished frame; OVERLOADED if the node holds too much."""
        held = conn.proto.buffered()
        grown = held - conn.held
        if grown > 0 and self.unfinished_bytes + grown > self.limits.max_unfinished_frame_bytes:
            self.refused_frames += 1
            raise self._refuse(
                "frames",
                session.remote,
                "the node holds too many unfinished frames "
                f"({self.limits.max_unfinished_frame_bytes} bytes); try again later",
            )
        self.unfinished_bytes += grown
        conn.held = held

    async def _watch(self, conn: _Conn, session: Session, reader: trio.CancelScope) -> None:
        """The connection's timeouts, kept by one sleeping task instead of a cancel scope per
        receive (which cost more than the rest of a small request's reading): once the reader
        has waited for bytes (since it began to, or since the connection's last answer)
        longer than ``_patience`` allows, ``_gave_up`` says whether to close (the reader is
        cancelled) or to wait again. It wakes at least every ``frame_timeout_s`` (a frame
        started meanwhile shortens the patience); after the reader stopped reading for room, a
        timeout can come up to that much late."""
        limits = self.limits
        every = min(limits.frame_timeout_s, HANDSHAKE_TIMEOUT)
        if limits.client_idle_timeout_s:
            every = min(every, limits.client_idle_timeout_s)
        with conn.watchdog:
            while True:
                now = trio.current_time()
                due = now + every
                if conn.receiving:
                    patience_ends = conn.waiting_since + self._patience(conn, session)
                    if now >= patience_ends:
                        if self._gave_up(conn, session):
                            reader.cancel()
                            return
                        conn.waiting_since = now  # waiting for its own answers: wait again
                        continue
                    due = min(due, patience_ends)
                await trio.sleep_until(due)

    def _patience(self, conn: _Conn, session: Session) -> float:
        """How long to wait for the next bytes: a started frame must progress; a client (or a
        peer not yet authenticated) must not idle."""
        if conn.proto.buffered():
            return self.limits.frame_timeout_s
        if session.role == PEER:
            return float("inf") if session.authenticated else HANDSHAKE_TIMEOUT
        return self.limits.client_idle_timeout_s or float("inf")

    def _gave_up(self, conn: _Conn, session: Session) -> bool:
        """The wait timed out: True to close (an error frame says why), False to keep waiting."""
        if conn.proto.buffered():
            self.frame_timeouts += 1
            why = f"a started frame made no progress for {self.limits.frame_timeout_s:g}s"
            self._log.warning("frame-timeout", "closed connection from %s: %s", session.remote, why)
            conn.write(conn.proto.reject(None, ProtocolError(why)))
            return True
        if conn.in_flight or conn.out:
            return False  # waiting for this node's own answers, not idle
        self.idle_closed += 1
        why = "idle for too long (client_idle_timeout_s); closed"
        self._log.warning("idle", "closed connection from %s: %s", session.remote, why)
        conn.write(conn.proto.reject(None, ProtocolError(why, ErrorCode.OVERLOADED)))
        return True

    def _take_slot(self, conn: _Conn, session: Session) -> None:
        """Ordinary clients share ``max_connections`` slots; peers and admins may use the
        reserved ones too."""
        if session.role == PEER or session.kind == ADMIN:
            return
        if self.ordinary >= self.limits.max_connections:
            self.refused_connections += 1
            raise self._refuse(
                "connections",
                session.remote,
                f"too many connections ({self.limits.max_connections}); "
                "try again later or another node",
            )
        self.ordinary += 1
        conn.ordinary = True

    async def _hello(
        self, conn: _Conn, session: Session, req_id: int | None, args: dict[str, Any]
    ) -> bool:
        extra: dict[str, Any] = {}
        try:
            session.role = conn.proto.role
            session.hello = args
            if self.tls is not None:
                self.tls.check_hello(session.role, session.tls, session.peer_cert)
            if self._gate is not None:
                extra = await self._gate.hello(session, args)
            else:
                session.authenticated = True
            self._take_slot(conn, session)
        except ProtocolError as exc:
            conn.write(conn.proto.reject(req_id, exc))
            return False
        conn.write(conn.proto.accept(req_id, {**self._node_info(), **extra}))
        return True

    @property
    def draining(self) -> bool:
        return self._draining

    def stage(self) -> dict[str, int]:
        """Requests as a ``tpstats`` stage: in flight (deferred and task verbs; inline ones are
        answered at once), answered, and connections blocked now and ever on a full buffer."""
        return {
            "active": self._in_flight,
            "pending": 0,  # every request starts when it is read
            "completed": self.requests - self._in_flight,
            "blocked": sum(1 for c in self._conns if c.crowded()),
            "all_time_blocked": self.blocked,
        }

    def _begin(self, conn: _Conn, requests: int = 1) -> None:
        conn.in_flight += requests
        self._in_flight += requests
        if self._idle.is_set():
            self._idle = trio.Event()

    def _end(self, conn: _Conn, requests: int = 1) -> None:
        conn.in_flight -= requests
        if not conn.in_flight:  # its last answer: an idle wait starts now, not at its request
            conn.waiting_since = trio.current_time()
        conn.make_room()
        self._in_flight -= requests
        if self._in_flight == 0:
            self._idle.set()

    def _run_deferred(
        self,
        conn: _Conn,
        req_id: int | None,
        op: str,
        handler: Handler,
        session: Session,
        args: dict[str, Any],
        timing: VerbLatency,
        started: float,
        requests: int = 1,
    ) -> None:
        """A deferred handler's request (or a whole batch's ``requests`` items: each counts as
        a request in flight and is timed as one)."""
        self._begin(conn, requests)
        answered = False

        def reply(value: Any) -> None:
            nonlocal answered
            if answered:
                return
            answered = True
            if isinstance(value, ProtocolError):
                conn.write(conn.proto.error(req_id, value))
            else:
                conn.write(conn.proto.result(req_id, value))
            timing.latency.add_many(perf_counter() - started, requests)
            self._end(conn, requests)

        _invoke(op, False, handler, session, args, reply)

    def _run_batch(
        self,
        conn: _Conn,
        req_id: int | None,
        op: str,
        mode: str,
        handler: Handler,
        session: Session,
        args: dict[str, Any],
        received: float,
    ) -> None:
        """A batch verb (``messages.BATCHES``): each item runs as a request of the item verb
        (its handler, its metrics), or (``WHOLE_BATCH``) the batch verb's own handler runs
        them all and answers once, each item timed as a request of the item verb; one response
        carries every item's result or error, in order, once the last one is in. Each item
        counts as a request in flight (the connection's bound) until the response goes out."""
        item_op = messages.BATCHES[op]
        items = args.get("items")
        if type(items) is not list or not 0 < len(items) <= messages.MAX_BATCH_ITEMS:
            why = f"{op}: items must be a list of 1 to {messages.MAX_BATCH_ITEMS} maps"
            conn.write(conn.proto.error(req_id, ProtocolError(why, ErrorCode.INVALID)))
            return
        timing = self.served[item_op]
        if mode == WHOLE_BATCH:
            started = perf_counter()
            timing.queue_wait.add_many(started - received, len(items))
            self._run_deferred(
                conn, req_id, op, handler, session, args, timing, started, len(items)
            )
            return
        inline = messages.VERBS[item_op].mode == messages.INLINE
        results: list[Any] = [_UNANSWERED] * len(items)
        left = len(items)
        self._begin(conn, left)

        def answer(i: int, started: float, value: Any) -> None:
            nonlocal left
            if results[i] is not _UNANSWERED:
                return
            if isinstance(value, ProtocolError):
                value = {"error": value.to_wire()}
            results[i] = value
            timing.latency.add(perf_counter() - started)
            left -= 1
            if left == 0:
                conn.write(conn.proto.result(req_id, {"results": results}))
                self._end(conn, len(results))

        for i, item in enumerate(items):
            started = perf_counter()
            timing.queue_wait.add(started - received)
            reply = partial(answer, i, started)
            if type(item) is dict:
                _invoke(item_op, inline, handler, session, item, reply)
            else:
                reply(ProtocolError(f"{op}: item {i} is not a map", ErrorCode.INVALID))

    async def _run_async(
        self,
        conn: _Conn,
        req_id: int | None,
        op: str,
        handler: Handler,
        session: Session,
        args: dict[str, Any],
        timing: VerbLatency,
        started: float,
    ) -> None:
        try:
            value = await handler(session, args)  # type: ignore[call-arg,misc]
            conn.write(conn.proto.result(req_id, value))
        except ProtocolError as exc:
            conn.write(conn.proto.error(req_id, exc))
        except Exception as exc:
            log.exception("handler for %s failed", op)
            conn.write(conn.proto.error(req_id, server_error(op, exc)))
        finally:
            timing.latency.add(perf_counter() - started)
            self._end(conn)


BATCH = "batch"  # the server's own mode for the batch verbs: it runs each item
WHOLE_BATCH = "whole batch"  # ...a batch verb with a handler of its own
_UNANSWERED = object()


def _invoke(
    op: str,
    inline: bool,
    handler: Handler,
    session: Session,
    args: dict[str, Any],
    reply: Callable[[Any], None],
) -> None:
    """Run an inline or deferred handler so that ``reply`` gets its result or its error, a
    bug included (logged, answered as ``SERVER_ERROR``)."""
    try:
        if inline:
            reply(handler(session, args))  # type: ignore[call-arg]
        else:
            handler(session, args, reply)  # type: ignore[call-arg]
    except ProtocolError as exc:
        reply(exc)
    except Exception as exc:
        log.exception("handler for %s failed", op)
        reply(server_error(op, exc))


def server_error(op: str, exc: Exception) -> ProtocolError:
    """A bug in ``op``'s handler as the ``SERVER_ERROR`` its request is answered with."""
    return ProtocolError(
        f"{op} failed on the server: {type(exc).__name__}: {exc}", ErrorCode.SERVER_ERROR
    )
