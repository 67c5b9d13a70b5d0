"""The storage proxy: coordinates every read and write at its consistency level.

Writes go to every live natural replica and return after the required acknowledgements; too few
live replicas fail at once with ``UNAVAILABLE`` and nothing is written; missing acknowledgements
give ``WRITE_TIMEOUT`` with counts. Reads ask one replica for data and the others for digests;
on a mismatch they fetch data from all of them and return the merge. The local replica is served
in-process; others through ``Messaging``. Replica-side handlers live here too.

Reads and writes run without a task: ``start_write``/``start_read`` send to the replicas with
callbacks (``Messaging.send``), a ``_Write``/``_Read`` gathers the answers and calls ``done``
once, and one ``Deadlines`` heap expires the ones that time out. Only the digest-mismatch
resolution and range scans run in tasks. ``write``/``read`` are the same, awaited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import cbor2
import trio

from ringd.db.cells import Row, row_digest
from ringd.dht.murmur3 import token_for
from ringd.dht.tokens import MAX_TOKEN, MIN_TOKEN
from ringd.locator.consistency import ReplicaPlan
from ringd.locator.consistency import Unavailable as PlanUnavailable
from ringd.metrics import Histogram
from ringd.net.channel import CallTimeout
from ringd.net.deadlines import Deadline, Deadlines
from ringd.protocol.errors import ErrorCode, InvalidRequest, ProtocolError, Timeout, Unavailable
from ringd.schema import Keyspace
from ringd.service.requests import MAX_KEY_BYTES
from ringd.words import plural

if TYPE_CHECKING:
    from ringd.node import Node

log = logging.getLogger(__name__)

SCAN_PAGE = 500
# sorts after every key of a token (keys are at most MAX_KEY_BYTES long)
AFTER_ALL_KEYS = b"\xff" * (MAX_KEY_BYTES + 1)

Cursor = tuple[int, bytes | None]


def row_bytes(row: Row) -> int:
    """The size of a row as ``max_row_bytes`` and scan page budgets measure it: its encoding."""
    return len(cbor2.dumps(row.to_wire()))


def row_too_large(size: int, limit: int) -> InvalidRequest:
    return InvalidRequest(
        f"the row would be {size} bytes after this write; the limit (max_row_bytes) is {limit}"
    )


@dataclass
class Consistency:
    """What the client asked for: a level name, or an explicit count of replicas."""

    level: str = "QUORUM"
    count: int | None = None
    count_name: str = "w"

    def describe(self) -> str:
        return self.level or f"{self.count_name}={self.count}"

    @classmethod
    def from_args(cls, args: dict[str, Any], count_name: str) -> Consistency:
        level = args.get("consistency")
        count = args.get(count_name)
        if count is not None:
            if type(count) is not int or count < 1:
                raise InvalidRequest(f"{count_name} must be a positive integer")
            if level is not None:
                raise InvalidRequest(f"give either consistency or {count_name}, not both")
            return cls("", count, count_name)
        if level is None:
            return cls(count_name=count_name)
        if not isinstance(level, str):
            raise InvalidRequest("consistency must be a level name such as QUORUM")
        return cls(level.upper(), count_name=count_name)


class _Reply(NamedTuple):
    """One replica's answer to a read: the row (if data was asked for) and its digest."""

    row: Row | None
    digest: bytes
    is_data: bool


class _Write:
    """One coordinated write in flight: counts acknowledgements and failures as the replicas'
    callbacks arrive, and answers once w acks are in (the acks so far), once every contacted
    replica answered without enough acks, or at the write timeout (``WRITE_TIMEOUT``)."""

    __slots__ = (
        "proxy",
        "plan",
        "consistency",
        "tracker",
        "answered",
        "start",
        "done",
        "finished",
        "deadline",
        "refusal",
    )

    def __init__(
        self,
        proxy: StorageProxy,
        plan: ReplicaPlan,
        consistency: Consistency,
        start: float,
        done: Callable[[Any], None],
    ) -> None:
        self.proxy = proxy
        self.plan = plan
        self.consistency = consistency
        self.tracker = plan.tracker()
        self.answered = 0
        self.start = start
        self.done = done
        self.finished = False
        self.deadline: Deadline | None = None
        self.refusal: ProtocolError | None = None  # a replica's INVALID or OVERLOADED

    def ack(self, host: str) -> None:
        self.answered += 1
        if not self.finished and (
            self.tracker.ack(host) or self.answered >= len(self.plan.contacts)
        ):
            self.finish()

    def fail(self) -> None:
        self.answered += 1
        if not self.finished and self.answered >= len(self.plan.contacts):
            self.finish()

    def refused(self, host: str, error: ProtocolError) -> None:
        """A replica failed the mutation. If too few replicas acknowledge, the client hears a
        replica's own refusal rather than a timeout when there is one: ``INVALID`` (a row over
        max_row_bytes) or ``OVERLOADED`` (writes stopped by a disk failure, shutting down)."""
        log.debug("mutation to %s failed: %s", host, error)
        if self.refusal is None and error.code in (ErrorCode.INVALID, ErrorCode.OVERLOADED):
            self.refusal = ProtocolError(error.message, error.code)
        self.fail()

    def local_done(self, host: str, error: BaseException | None) -> None:
        if error is None:
            self.ack(host)
        elif isinstance(error, ProtocolError):
            self.refused(host, error)
        else:
            log.warning("local mutation failed: %s", error)
            self.fail()

    def remote_done(self, host: str, value: Any, error: ProtocolError | None) -> None:
        if error is None and isinstance(value, dict):
            self.proxy.observe(value)
            self.ack(host)
        elif error is not None:
            self.refused(host, error)
        else:
            self.fail()

    def finish(self) -> None:
        self.finished = True
        proxy = self.proxy
        if self.deadline is not None:
            proxy.deadlines.cancel(self.deadline)
        proxy.write_latency.add(trio.current_time() - self.start)
        received = self.tracker.received
        if not self.tracker.satisfied and self.refusal is not None:
            self.done(self.refusal)
        elif not self.tracker.satisfied:
            proxy.counters["write_timeout"] += 1
            self.done(
                Timeout(
                    f"write timed out: {received} of {self.plan.required} required replicas "
                    "acknowledged",
                    ErrorCode.WRITE_TIMEOUT,
                    received=received,
                    required=self.plan.required,
                    consistency=self.consistency.describe(),
                )
            )
        else:
            self.done(received)

    def expire(self) -> None:
        self.deadline = None
        if not self.finished:
            self.finish()


class _Read:
    """One coordinated read in flight: one replica asked for data, the others for digests, each
    answer arriving through a callback. A replica that fails outright is replaced by a spare
    (asked for data); a slow one is not. Answers once every asked replica answered or at the
    read timeout; on a digest mismatch the full-data resolution runs in a task."""

    __slots__ = (
        "proxy",
        "keyspace",
        "key",
        "plan",
        "consistency",
        "start",
        "done",
        "spares",
        "replies",
        "outstanding",
        "finished",
        "deadline",
    )

    def __init__(
        self,
        proxy: StorageProxy,
        keyspace: Keyspace,
        key: bytes,
        plan: ReplicaPlan,
        consistency: Consistency,
        start: float,
        done: Callable[[Any], None],
        spares: list[str],
    ) -> None:
        self.proxy = proxy
        self.keyspace = keyspace
        self.key = key
        self.plan = plan
        self.consistency = consistency
        self.start = start
        self.done = done
        self.spares = spares
        self.replies: dict[str, _Reply] = {}
        self.outstanding = 1  # held by the caller until every first request is out
        self.finished = False
        self.deadline: Deadline | None = None

    def ask(self, host: str, digest_only: bool) -> None:
        proxy = self.proxy
        self.outstanding += 1
        if host == proxy.local_host_id:
            try:
                row = proxy.node.engine.read(self.keyspace.name, self.key)
            except Exception as exc:
                log.warning("local read failed: %s", exc)
                self.answered(host, False)
                return
            self.replies[host] = _Reply(row, row_digest(row), True)
            self.answered(host, True)
            return
        proxy.node.messaging.send(
            proxy.node.topology.address(host),
            "read_local",
            {"ks": self.keyspace.name, "key": self.key, "digest": digest_only},
            partial(self.remote_done, host, digest_only),
            proxy.read_timeout,
        )

    def remote_done(self, host: str, digest_only: bool, value: Any, error: Any) -> None:
        if self.finished:
            return
        if error is None:
            try:
                self.proxy.observe(value)
                if digest_only:
                    reply = _Reply(None, bytes(value["digest"]), False)
                else:
                    raw = value.get("row")
                    row = None if raw is None else Row.from_wire(raw)
                    reply = _Reply(row, row_digest(row), True)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                error = exc
            else:
                self.replies[host] = reply
                self.answered(host, True)
                return
        log.debug("read from %s failed: %s", host, error)
        # slow, not failed: asking a spare now would not be sooner
        self.answered(host, isinstance(error, CallTimeout))

    def answered(self, host: str, ok_or_slow: bool) -> None:
        if not ok_or_slow and self.spares:
            self.ask(self.spares.pop(0), False)
        self.outstanding -= 1
        if self.outstanding == 0 and not self.finished:
            self.finish()

    def expire(self) -> None:
        self.deadline = None
        if not self.finished:
            self.finish()

    def finish(self) -> None:
        self.finished = True
        proxy = self.proxy
        if self.deadline is not None:
            proxy.deadlines.cancel(self.deadline)
        replies = self.replies
        data = next((r for r in replies.values() if r.is_data), None)
        if len(replies) < len(self.plan.contacts) or data is None:
            proxy.counters["read_timeout"] += 1
            proxy.read_latency.add(trio.current_time() - self.start)
            self.done(_read_timeout(len(replies), self.plan.required, self.consistency))
            return
        if all(r.digest == data.digest for r in replies.values()):
            proxy.read_latency.add(trio.current_time() - self.start)
            self.done(data.row)
            return
        proxy.counters["digest_mismatch"] += 1
        assert proxy._nursery is not None
        proxy._nursery.start_soon(self._resolve, dict(replies))

    async def _resolve(self, replies: dict[str, _Reply]) -> None:
        """Digest mismatch: fetch data from every replica that answered with a digest, merge."""
        proxy = self.proxy
        full = {h: r for h, r in replies.items() if r.is_data}
        try:
            with trio.move_on_after(proxy.read_timeout):
                async with trio.open_nursery() as nursery:
                    for host in replies:
                        if host not in full:
                            nursery.start_soon(
                                proxy._read_one, host, self.keyspace.name, self.key, False, full
                            )
            proxy.read_latency.add(trio.current_time() - self.start)
            if len(full) < len(replies):
                self.done(_read_timeout(len(full), self.plan.required, self.consistency))
            else:
                self.done(_merge_rows(r.row for r in full.values()))
        except Exception as exc:
            log.exception("read resolution failed")
            self.done(ProtocolError(f"read failed: {exc}", ErrorCode.SERVER_ERROR))


class StorageProxy:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._nursery: trio.Nursery | None = None
        self.deadlines = Deadlines()  # the timeouts of every read and write in flight
        self.write_latency = Histogram()
        self.read_latency = Histogram()
        self.range_latency = Histogram()
        self.counters = {
            "write_unavailable": 0,
            "write_timeout": 0,
            "read_unavailable": 0,
            "read_timeout": 0,
            "digest_mismatch": 0,
        }

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.deadlines.run)
            task_status.started()
            await trio.sleep_forever()

    # ---- coordinator: writes ------------------------------------------------------------

    @property
    def local_host_id(self) -> str:
        return self.node.topology.local_host_id

    @property
    def read_timeout(self) -> float:
        return self.node.config.read_timeout_ms / 1000.0

    def observe(self, result: dict[str, Any]) -> None:
        """Move the clock past the timestamp a replica's answer carries."""
        self.node.clock.observe(result.get("hlc", 0))

    # ---- coordinator: writes ------------------------------------------------------------

    def start_write(
        self,
        keyspace: Keyspace,
        key: bytes,
        row: Row,
        consistency: Consistency,
        done: Callable[[Any], None],
    ) -> None:
        """Apply ``row`` at the requested consistency without waiting: ``done`` gets the
        acknowledgements received, or ``WRITE_TIMEOUT``. Too few live replicas raise
        ``UNAVAILABLE`` at once (nothing is written). The mutation goes to every contact
        through channel callbacks (the local replica in-process); one deadline per write."""
        start = trio.current_time()
        node = self.node
        topology = node.topology
        token = token_for(key)
        plan = self._plan(keyspace, topology.replicas(keyspace, token), consistency, write=True)
        write = _Write(self, plan, consistency, start, done)
        local = topology.local_host_id
        self.check_row_size(keyspace.name, key, row, new_only=True)
        timeout = node.config.write_timeout_ms / 1000.0
        wire: dict[str, Any] | None = None
        for host in plan.contacts:
            if host == local:
                try:
                    self.check_row_size(keyspace.name, key, row)
                    node.engine.apply_then(
                        keyspace.name, key, row, token, partial(write.local_done, host)
                    )
                except ProtocolError as exc:
                    write.refused(host, exc)
                except Exception as exc:
                    log.warning("local mutation failed: %s", exc)
                    write.fail()
                continue
            if wire is None:
                wire = {
                    "ks": keyspace.name,
                    "key": key,
                    "row": row.to_wire(),
                    "hlc": node.clock.now(),
                }
            node.messaging.send(
                topology.address(host), "mutate", wire, partial(write.remote_done, host), timeout
            )
        if not write.finished:
            write.deadline = self.deadlines.after(timeout, write.expire)

    async def write(
        self, keyspace: Keyspace, key: bytes, row: Row, consistency: Consistency
    ) -> int:
        """:meth:`start_write`, awaited: the acknowledgements received."""
        return int(await _wait(partial(self.start_write, keyspace, key, row, consistency)))

    # ---- coordinator: reads -------------------------------------------------------------

    def start_read(
        self, keyspace: Keyspace, key: bytes, consistency: Consistency, done: Callable[[Any], None]
    ) -> None:
        """Read ``key`` at ``consistency`` without waiting: ``done`` gets the row (or None),
        or ``READ_TIMEOUT``; ``UNAVAILABLE`` is raised at once."""
        start = trio.current_time()
        node = self.node
        topology = node.topology
        plan = self._plan(
            keyspace, topology.replicas(keyspace, token_for(key)), consistency, write=False
        )
        contacts = plan.contacts
        local = topology.local_host_id
        if contacts == (local,):
            row = node.engine.read(keyspace.name, key)
            self.read_latency.add(trio.current_time() - start)
            done(row)
            return
        # replicas to ask instead of one that fails outright (refused, closed, error answer)
        spares = [
            h for h in plan.natural if h not in contacts and plan.counts(h) and topology.is_alive(h)
        ]
        read = _Read(self, keyspace, key, plan, consistency, start, done, spares)
        for i, host in enumerate(contacts):
            read.ask(host, i > 0)
        read.outstanding -= 1
        if read.outstanding == 0:
            read.finish()
        if not read.finished:
            read.deadline = self.deadlines.after(self.read_timeout, read.expire)

    async def read(self, keyspace: Keyspace, key: bytes, consistency: Consistency) -> Row | None:
        """:meth:`start_read`, awaited."""
        row: Row | None = await _wait(partial(self.start_read, keyspace, key, consistency))
        return row

    async def _read_one(
        self, host: str, ks: str, key: bytes, digest_only: bool, out: dict[str, _Reply]
    ) -> bool:
        """Ask one replica for the row (or its digest) into ``out``; False if it failed."""
        node = self.node
        try:
            if host == node.topology.local_host_id:
                row = node.engine.read(ks, key)
                out[host] = _Reply(row, row_digest(row), True)
                return True
            result = await node.messaging.call(
                node.topology.address(host),
                "read_local",
                {"ks": ks, "key": key, "digest": digest_only},
                node.config.read_timeout_ms / 1000.0,
            )
            node.clock.observe(result.get("hlc", 0))
            if digest_only:
                out[host] = _Reply(None, bytes(result["digest"]), False)
            else:
                raw = result.get("row")
                row = None if raw is None else Row.from_wire(raw)
                out[host] = _Reply(row, row_digest(row), True)
            return True
        except CallTimeout:
            return False  # slow, not failed: asking a spare now would not be sooner
        except (ProtocolError, OSError, ValueError, KeyError, TypeError) as exc:
            log.debug("read from %s failed: %s", host, exc)
            return False

    # ---- coordinator: range scans (dump) ---------------------------------------------------

    async def scan_page(
        self, keyspace: Keyspace, after: Cursor | None, limit: int, consistency: Consistency
    ) -> tuple[list[tuple[int, bytes, Row]], Cursor | None]:
        """Up to ``limit`` rows in token order after ``after``, merged from the replicas of each
        token range at ``consistency``; and the cursor to continue from (None at the end).

        A cursor is ``(token, key)``: continue after that row; ``key`` None means after every
        row of that token.
        """
        start = trio.current_time()
        topology = self.node.topology
        rows: list[tuple[int, bytes, Row]] = []
        size, budget = 0, self.page_bytes()
        cursor: Cursor | None = after or (MIN_TOKEN, None)
        while cursor is not None and len(rows) < limit and size < budget:
            segment = topology.segment_after(keyspace, cursor)
            if segment is None:
                cursor = None
                break
            end, natural = segment
            plan = self._plan(keyspace, natural, consistency, write=False)
            page, complete = await self._scan_range(
                keyspace, plan, cursor, end, limit - len(rows), consistency
            )
            rows.extend(page)
            size += sum(len(k) + row_bytes(r) for _, k, r in page)
            if complete:
                cursor = None if end == MAX_TOKEN else (end, None)
            else:
                cursor = (page[-1][0], page[-1][1])
        self.range_latency.add(trio.current_time() - start)
        return rows, cursor

    def _plan(
        self, keyspace: Keyspace, natural: list[str], consistency: Consistency, *, write: bool
    ) -> ReplicaPlan:
        """The replica plan, or ``UNAVAILABLE`` (counted) when too few replicas are alive."""
        try:
            return self.node.topology.plan(keyspace, natural, consistency, write=write)
        except PlanUnavailable as exc:
            self.counters["write_unavailable" if write else "read_unavailable"] += 1
            raise _unavailable(exc, consistency) from None

    async def _scan_range(
        self,
        keyspace: Keyspace,
        plan: ReplicaPlan,
        after: Cursor,
        end: int,
        limit: int,
        consistency: Consistency,
    ) -> tuple[list[tuple[int, bytes, Row]], bool]:
        """Rows of one token range after ``after``; and whether the range is exhausted."""
        node = self.node
        replies: dict[str, tuple[list[tuple[int, bytes, Row]], bool]] = {}
        timeout = node.config.read_timeout_ms / 1000.0
        with trio.move_on_after(timeout * 4):
            async with trio.open_nursery() as nursery:
                for host in plan.contacts:
                    nursery.start_soon(
                        self._scan_one, host, keyspace.name, after, end, limit, replies
                    )
        if len(replies) < len(plan.contacts):
            raise _read_timeout(len(replies), plan.required, consistency)
        # rows up to the smallest last row among full pages are complete on every replica
        bound: tuple[int, bytes] | None = None
        for page, full in replies.values():
            if full and page:
                last = (page[-1][0], page[-1][1])
                bound = last if bound is None or last < bound else bound
        merged: dict[tuple[int, bytes], Row] = {}
        for page, _ in replies.values():
            for token, key, row in page:
                if bound is not None and (token, key) > bound:
                    continue
                have = merged.get((token, key))
                merged[(token, key)] = row if have is None else have.merge(row)
        out = [(t, k, merged[(t, k)]) for t, k in sorted(merged)]
        return out, bound is None

    async def _scan_one(
        self,
        host: str,
        ks: str,
        after: Cursor,
        end: int,
        limit: int,
        out: dict[str, tuple[list[tuple[int, bytes, Row]], bool]],
    ) -> None:
        node = self.node
        try:
            if host == node.topology.local_host_id:
                out[host] = self.scan_local(ks, after, end, limit)
                return
            result = await node.messaging.call(
                node.topology.address(host),
                "scan_local",
                {"ks": ks, "after": list(after), "end": end, "limit": limit},
            )
            rows = [(t, bytes(k), Row.from_wire(r)) for t, k, r in result["rows"]]
            out[host] = rows, bool(result.get("full", len(rows) >= limit))
        except (ProtocolError, OSError, ValueError, KeyError, TypeError) as exc:
            log.debug("scan of %s failed: %s", host, exc)

    # ---- replica side ------------------------------------------------------------------

    def page_bytes(self) -> int:
        """The byte budget of a scan page: a page stops once its rows reach it."""
        return self.node.config.max_frame_bytes // 4

    def scan_local(
        self, ks: str, after: Cursor, end: int, limit: int
    ) -> tuple[list[tuple[int, bytes, Row]], bool]:
        """Rows after ``after`` up to token ``end``: at most ``limit`` rows, stopping once they
        reach the page byte budget; and whether the page is full (more rows may follow)."""
        token, key = after
        start = (token, AFTER_ALL_KEYS if key is None else key)
        rows = []
        budget = self.page_bytes()
        size = 0
        for item in self.node.engine.scan(ks, start, end):
            rows.append(item)
            size += len(item[1]) + row_bytes(item[2])
            if len(rows) >= limit or size >= budget:
                return rows, True
        return rows, False

    def start_mutate(self, args: dict[str, Any], reply: Callable[[Any], None]) -> None:
        """Apply a replica mutation; ``reply`` is called once it is durable as the sync mode
        promises (at once in periodic mode, after the covering fsync otherwise)."""
        node = self.node
        ks = args["ks"]
        node.clock.observe(args.get("hlc", 0))
        if node.schema.get(ks) is None:
            raise InvalidRequest(f"keyspace {ks!r} does not exist on this replica")
        key, row = bytes(args["key"]), Row.from_wire(args["row"])
        self.check_row_size(ks, key, row)

        def durable(error: BaseException | None) -> None:
            if error is None:
                reply({"hlc": node.clock.peek()})
            elif isinstance(error, ProtocolError):
                reply(error)
            else:
                reply(ProtocolError(f"mutation failed: {error}", ErrorCode.SERVER_ERROR))

        node.engine.apply_then(ks, key, row, None, durable)

    async def handle_mutate(self, args: dict[str, Any]) -> dict[str, Any]:
        """:meth:`start_mutate`, awaited."""
        result: dict[str, Any] = await _wait(partial(self.start_mutate, args))
        return result

    def check_row_size(self, ks: str, key: bytes, row: Row, *, new_only: bool = False) -> None:
        """``INVALID`` if the stored row would be larger than ``max_row_bytes`` after ``row``
        is merged into it (``new_only``: if ``row`` alone is, without reading the stored row)."""
        limit = self.node.config.max_row_bytes
        size = row_bytes(row)
        if size <= limit and not new_only:
            existing = self.node.engine.read(ks, key)
            if existing is not None:
                size = row_bytes(existing.merge(row).normalized())
        if size > limit:
            raise row_too_large(size, limit)

    def handle_read_local(self, args: dict[str, Any]) -> dict[str, Any]:
        node = self.node
        row = node.engine.read(args["ks"], bytes(args["key"]))
        if args.get("digest"):
            return {"digest": row_digest(row), "hlc": node.clock.peek()}
        return {"row": None if row is None else row.to_wire(), "hlc": node.clock.peek()}


async def _wait(start: Callable[[Callable[[Any], None]], None]) -> Any:
    """Run a callback-style ``start(done)`` and wait for what ``done`` gets (raise errors)."""
    event = trio.Event()
    out: list[Any] = []

    def done(value: Any) -> None:
        out.append(value)
        event.set()

    start(done)
    await event.wait()
    if isinstance(out[0], ProtocolError):
        raise out[0]
    return out[0]


def _merge_rows(rows: Iterable[Row | None]) -> Row | None:
    merged: Row | None = None
    for row in rows:
        if row is None:
            continue
        merged = row if merged is None else merged.merge(row)
    return merged


def _unavailable(exc: PlanUnavailable, consistency: Consistency) -> Unavailable:
    where = f" in {exc.dc}" if getattr(exc, "dc", None) else ""
    level = consistency.describe()
    return Unavailable(
        f"cannot achieve consistency {level}: {plural(exc.required, 'replica')} required{where} "
        f"but only {exc.alive} alive",
        required=exc.required,
        alive=exc.alive,
        consistency=level,
        replicas=exc.replicas,
    )


def _read_timeout(received: int, required: int, consistency: Consistency) -> Timeout:
    return Timeout(
        f"read timed out: {received} of {required} required replicas responded",
        ErrorCode.READ_TIMEOUT,
        received=received,
        required=required,
        consistency=consistency.describe(),
    )
