"""End-of-pass writes: what the tasks of one event-loop pass queued for a socket leaves in one
``send``, just before the loop waits for I/O.

A connection's writes (a server's answers, a channel's requests) used to wake a writer task,
which ran in the next pass of trio's loop and sent everything queued by then: a task step and
an event per connection per pass, and one pass of delay per hop (at one request in flight, a
QUORUM write waits for four hops). Now a connection over a plain TCP socket asks the run's
:class:`Flusher` to flush it; the flusher is a trio instrument whose ``before_io_wait`` hook
runs once per pass, after every task of the pass has run, and writes each connection's queue
with one non-blocking ``os.write``. The writer task still sends what that could not: the rest
of a partial write (the socket buffer is full), everything while it is itself sending (so bytes
never interleave), a TLS or in-memory stream's output, and after an error (its ``send_all``
raises it and the connection closes as before).

The hook runs outside any task, after trio computed how long to wait for I/O: waking a task
there (handing the writer the rest of a write) does not make it run before that wait ends, so
the flusher then pokes the loop's wake-up channel (``TrioToken.run_sync_soon``) when the wait
would block. An exception in an instrument would make trio drop it, so each connection's flush
is guarded: a bug is logged and that connection's output is left to its writer task.
"""

from __future__ import annotations

import logging
import os
from typing import Protocol

import trio

log = logging.getLogger(__name__)

_FLUSHER: trio.lowlevel.RunVar[Flusher] = trio.lowlevel.RunVar("ringd_flusher")


class Flushable(Protocol):
    def flush(self) -> bool:
        """Write what is queued; True if a task was woken (the writer, a blocked reader)."""
        ...


class Flusher(trio.abc.Instrument):
    """The run's end-of-pass writer (one per ``trio.run``, see :func:`flusher`)."""

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        self._pending: list[Flushable] = []
        self._token = token

    def mark(self, conn: Flushable) -> None:
        """Flush ``conn`` at the end of this pass (the caller marks each connection once)."""
        self._pending.append(conn)

    def before_io_wait(self, timeout: float) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        woke = False
        for conn in pending:
            try:
                woke |= conn.flush()
            except Exception:
                log.exception("flushing a connection failed")
                woke = True
        if woke and timeout > 0:
            self._token.run_sync_soon(_nothing)


def _nothing() -> None:
    pass


def flusher() -> Flusher:
    """The current run's :class:`Flusher`, installed on first use."""
    try:
        return _FLUSHER.get()
    except LookupError:
        instance = Flusher(trio.lowlevel.current_trio_token())
        trio.lowlevel.add_instrument(instance)
        _FLUSHER.set(instance)
        return instance


def socket_of(stream: trio.abc.Stream) -> trio.socket.SocketType | None:
    """The socket a flush may write to directly: a plain TCP stream's (None for TLS and
    in-memory streams, which only their writer task writes)."""
    return stream.socket if type(stream) is trio.SocketStream else None


def write_now(sock: trio.socket.SocketType, data: bytes) -> bytes:
    """Write what the socket takes now, without blocking; what it did not take (all of it if
    its buffer is full, the connection is gone or the socket is closed: the writer task's
    ``send_all`` then waits for room or meets the error and closes the connection)."""
    fd = sock.fileno()  # -1 once closed: never write to a descriptor reused since
    if fd < 0:
        return data
    try:
        sent = os.write(fd, data)
    except OSError:  # BlockingIOError included
        return data
    return data[sent:] if sent < len(data) else b""
