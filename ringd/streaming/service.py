"""Stream sessions: the receiving side pulls, the sending side answers ``stream_pull``.

``StreamService.fetch(plan, source, keyspace, ranges)`` is one incoming session: for each range
not yet received for ``plan`` it pulls chunks from ``source`` (one token interval at a time,
continuing after the last row received), checks them, applies their rows durably, and records
the range as received. A chunk that fails (CRC, a lost connection, a timeout) is asked for again
up to ``RETRIES`` times; then the session fails with the reason and a later ``fetch`` of the same
plan resumes with the ranges still missing. The sending side scans its engine for each pull and
counts what it sent per session, so ``netstats`` shows both ends.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from ringd.db.cells import Row
from ringd.dht.tokens import MIN_TOKEN, Range, check_token
from ringd.protocol.errors import ErrorCode, InvalidRequest, ProtocolError
from ringd.streaming import chunks
from ringd.streaming.received import ReceivedRanges
from ringd.streaming.throttle import Throttle

log = logging.getLogger(__name__)

CHUNK_BYTES = 512 * 1024  # a pull answers with about this many bytes of rows
RETRIES = 3
PULL_TIMEOUT_S = 60.0
KEEP_FINISHED = 32  # finished sessions netstats still lists

Call = Callable[[str, str, dict[str, Any], float], Awaitable[Any]]
# sorts after every key of a token (keys are far shorter)
_AFTER_ALL_KEYS = b"\xff" * (1 << 17)


class Engine(Protocol):
    def scan(
        self, keyspace: str, after: tuple[int, bytes] | None = None, end_token: int | None = None
    ) -> Iterator[tuple[int, bytes, Row]]: ...

    def apply_then(
        self,
        keyspace: str,
        key: bytes,
        update: Row,
        token: int | None,
        done: Callable[[BaseException | None], None],
    ) -> None: ...


class StreamFailed(Exception):
    """A session could not complete; the message names the peer, keyspace and reason."""


@dataclass
class StreamSession:
    plan: str
    peer: str  # the other node's address
    keyspace: str
    direction: str  # "in" (this node receives) or "out"
    ranges_total: int = 0
    ranges_done: int = 0
    ranges_skipped: int = 0  # received before a restart
    rows: int = 0
    bytes: int = 0
    state: str = "RUNNING"  # RUNNING, COMPLETED, FAILED
    error: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.time)
    last: float = field(default_factory=time.monotonic)

    def to_wire(self) -> dict[str, Any]:
        total = self.ranges_total
        return {
            "id": self.id,
            "plan": self.plan,
            "peer": self.peer,
            "keyspace": self.keyspace,
            "direction": self.direction,
            "state": self.state,
            "ranges_done": self.ranges_done,
            "ranges_skipped": self.ranges_skipped,
            "ranges_total": total,
            "progress": round(self.ranges_done / total, 4) if total else 1.0,
            "rows": self.rows,
            "bytes": self.bytes,
            "error": self.error,
        }


async def apply_rows(engine: Engine, keyspace: str, rows: list[tuple[int, bytes, Row]]) -> None:
    """Apply ``rows`` and return once every one is durable (one fsync covers them all in the
    batch and group commit-log modes); the first failure is raised."""
    if not rows:
        return
    pending = len(rows)
    finished = trio.Event()
    errors: list[BaseException] = []

    def done(error: BaseException | None) -> None:
        nonlocal pending
        if error is not None:
            errors.append(error)
        pending -= 1
        if pending == 0:
            finished.set()

    for token, key, row in rows:
        try:
            engine.apply_then(keyspace, key, row, token, done)
        except BaseException as exc:
            errors.append(exc)
            pending -= 1
    if pending:
        await finished.wait()
    if errors:
        raise errors[0]


class StreamService:
    def __init__(
        self,
        engine: Engine,
        keyspace_exists: Callable[[str], bool],
        call: Call,
        received: ReceivedRanges,
        *,
        local_address: str,
        mb_per_s: float,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self.engine = engine
        self.keyspace_exists = keyspace_exists
        self.call = call
        self.received = received
        self.local_address = local_address
        self.throttle = Throttle(mb_per_s)
        self.chunk_bytes = chunk_bytes
        self.sessions: dict[str, StreamSession] = {}

    # ---- receiving ---------------------------------------------------------------------

    async def fetch(
        self, plan: str, source: str, keyspace: str, ranges: list[Range]
    ) -> StreamSession:
        """Receive ``ranges`` of ``keyspace`` from ``source`` for ``plan`` (skipping ranges
        already received for it); ``StreamFailed`` if the session cannot complete."""
        session = StreamSession(plan, source, keyspace, "in", ranges_total=len(ranges))
        self._keep(session)
        log.info(
            "stream %s (%s): receiving %d ranges of %s from %s",
            session.id,
            plan,
            len(ranges),
            keyspace,
            source,
        )
        try:
            for rng in ranges:
                if self.received.has(plan, keyspace, rng):
                    session.ranges_skipped += 1
                else:
                    for lo, hi in rng.intervals():
                        await self._pull_interval(session, lo, hi)
                    self.received.add(plan, keyspace, rng)
                session.ranges_done += 1
                session.last = time.monotonic()
        except StreamFailed as exc:
            session.state, session.error = "FAILED", str(exc)
            log.warning("stream %s (%s) failed: %s", session.id, plan, exc)
            raise
        except BaseException:
            session.state, session.error = "FAILED", "cancelled"
            raise
        session.state = "COMPLETED"
        log.info(
            "stream %s (%s): received %d rows (%d bytes) of %s from %s; %d ranges were "
            "already here",
            session.id,
            plan,
            session.rows,
            session.bytes,
            keyspace,
            source,
            session.ranges_skipped,
        )
        return session

    async def _pull_interval(self, session: StreamSession, lo: int, hi: int) -> None:
        after: list[Any] | None = None if lo == MIN_TOKEN else [lo - 1, _AFTER_ALL_KEYS]
        while True:
            rows, nbytes, after = await self._pull_chunk(session, lo, hi, after)
            await apply_rows(self.engine, session.keyspace, rows)
            session.rows += len(rows)
            session.bytes += nbytes
            session.last = time.monotonic()
            await self.throttle.consume(nbytes)
            if after is None:
                return

    async def _pull_chunk(
        self, session: StreamSession, lo: int, hi: int, after: list[Any] | None
    ) -> tuple[list[tuple[int, bytes, Row]], int, list[Any] | None]:
        args = {
            "session": session.id,
            "plan": session.plan,
            "peer": self.local_address,
            "ks": session.keyspace,
            "hi": hi,
            "after": after,
            "max_bytes": self.chunk_bytes,
            "ranges_done": session.ranges_done,
            "ranges_total": session.ranges_total,
        }
        last: str = ""
        for attempt in range(RETRIES):
            try:
                answer = await self.call(session.peer, "stream_pull", args, PULL_TIMEOUT_S)
                rows = chunks.decode(answer.get("data"), answer.get("crc"))
                nxt = answer.get("next")
                if nxt is not None:
                    chunks.cursor(nxt)
                return rows, len(answer["data"]), nxt
            except (ProtocolError, OSError, chunks.ChunkError, InvalidRequest) as exc:
                last = str(exc)
                log.info("stream %s: chunk from %s failed (%s)", session.id, session.peer, last)
                if isinstance(exc, ProtocolError) and exc.code == ErrorCode.INVALID:
                    break  # the source refuses: asking again will not help
            except (AttributeError, KeyError, TypeError) as exc:
                last = f"malformed answer: {exc}"
            await trio.sleep(0.2 * (attempt + 1))
        raise StreamFailed(f"{session.keyspace} from {session.peer}: {last}")

    # ---- sending -----------------------------------------------------------------------

    def pull(self, args: dict[str, Any]) -> dict[str, Any]:
        """One chunk of rows after ``after`` up to token ``hi`` (the ``stream_pull`` verb)."""
        ks = args.get("ks")
        if not isinstance(ks, str) or not self.keyspace_exists(ks):
            raise InvalidRequest(f"keyspace {ks!r} does not exist on this node")
        try:
            hi = check_token(args.get("hi"))  # type: ignore[arg-type]  # checked here
        except ValueError as exc:
            raise InvalidRequest(f"hi: {exc}") from None
        after = chunks.cursor(args.get("after"))
        max_bytes = args.get("max_bytes")
        if type(max_bytes) is not int or not 1024 <= max_bytes <= 8 * 1024 * 1024:
            raise InvalidRequest("max_bytes must be an integer from 1024 to 8388608")
        sid, peer, plan = args.get("session"), args.get("peer"), args.get("plan")
        if not all(isinstance(v, str) and 0 < len(v) <= 256 for v in (sid, peer, plan)):
            raise InvalidRequest("session, peer and plan must be non-empty text")
        rows: list[tuple[int, bytes, Row]] = []
        size = 0
        nxt: list[Any] | None = None
        for token, key, row in self.engine.scan(ks, after, hi):
            rows.append((token, key, row))
            size += len(key) + 64 + sum(len(c.value or b"") + 32 for c in row.cells.values())
            if size >= max_bytes:
                nxt = [token, key]
                break
        data, crc = chunks.encode(rows)
        session = self.sessions.get(str(sid))
        if session is None:
            session = StreamSession(str(plan), str(peer), ks, "out", id=str(sid))
            self._keep(session)
        session.rows += len(rows)
        session.bytes += len(data)
        session.last = time.monotonic()
        done, total = args.get("ranges_done"), args.get("ranges_total")
        if type(done) is int and type(total) is int and 0 <= done <= total:
            session.ranges_done, session.ranges_total = done, total
        return {"data": data, "crc": crc, "rows": len(rows), "next": nxt}

    # ---- views -------------------------------------------------------------------------

    def _keep(self, session: StreamSession) -> None:
        self.sessions[session.id] = session
        idle = [
            s
            for s in self.sessions.values()
            if s.direction == "out" and time.monotonic() - s.last > 120
        ]
        for s in idle:  # the receiver stopped asking: it finished (or gave up)
            s.state = "COMPLETED"
        finished = sorted(
            (s for s in self.sessions.values() if s.state != "RUNNING"), key=lambda s: s.last
        )
        for s in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self.sessions[s.id]

    def view(self) -> list[dict[str, Any]]:
        """Every session this node takes part in, newest last (for ``netstats``)."""
        return [s.to_wire() for s in sorted(self.sessions.values(), key=lambda s: s.started)]

    def running(self) -> int:
        return sum(1 for s in self.sessions.values() if s.state == "RUNNING")
