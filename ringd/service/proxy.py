"""The storage proxy: coordinates every read and write at its consistency level.

Writes go to every live natural replica and return after the required acknowledgements; too few
live replicas fail at once with ``UNAVAILABLE`` and nothing is written; missing acknowledgements
give ``WRITE_TIMEOUT`` with counts. Reads ask one replica for data and the others for digests;
on a mismatch they fetch data from all of them and return the merge. The local replica is served
in-process; others through ``Messaging``. Replica-side handlers live here too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
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


class _Acks:
    """An ack tracker for one write, with an event set once it is satisfied or all answered."""

    def __init__(self, plan: ReplicaPlan) -> None:
        self.plan = plan
        self.tracker = plan.tracker()
        self.answered = 0
        self.done = trio.Event()
        self.invalid: ProtocolError | None = None  # a replica refused the write as INVALID

    def ack(self, host: str) -> None:
        self.answered += 1
        if self.tracker.ack(host) or self.answered >= len(self.plan.contacts):
            self.done.set()

    def fail(self) -> None:
        self.answered += 1
        if self.answered >= len(self.plan.contacts):
            self.done.set()


class StorageProxy:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._nursery: trio.Nursery | None = None
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
            task_status.started()
            await trio.sleep_forever()

    # ---- coordinator: writes ------------------------------------------------------------

    async def write(
        self, keyspace: Keyspace, key: bytes, row: Row, consistency: Consistency
    ) -> int:
        """Apply ``row`` at the requested consistency; return the acknowledgements received."""
        start = trio.current_time()
        node = self.node
        topology = node.topology
        token = token_for(key)
        plan = self._plan(keyspace, topology.replicas(keyspace, token), consistency, write=True)
        contacts = plan.contacts
        local = topology.local_host_id
        limit = node.config.max_row_bytes
        if (size := row_bytes(row)) > limit:
            raise row_too_large(size, limit)
        if contacts == (local,) and plan.required == 1 and plan.counts(local):
            await self.apply_local(keyspace.name, key, row, token)
            self.write_latency.add(trio.current_time() - start)
            return 1
        acks = _Acks(plan)
        wire = {"ks": keyspace.name, "key": key, "row": row.to_wire(), "hlc": node.clock.now()}
        assert self._nursery is not None
        for host in contacts:
            self._nursery.start_soon(
                self._mutate_one, host, keyspace.name, key, token, row, wire, acks
            )
        with trio.move_on_after(node.config.write_timeout_ms / 1000.0):
            await acks.done.wait()
        self.write_latency.add(trio.current_time() - start)
        received = acks.tracker.received
        if not acks.tracker.satisfied and acks.invalid is not None:
            raise acks.invalid
        if not acks.tracker.satisfied:
            self.counters["write_timeout"] += 1
            raise Timeout(
                f"write timed out: {received} of {plan.required} required replicas acknowledged",
                ErrorCode.WRITE_TIMEOUT,
                received=received,
                required=plan.required,
                consistency=consistency.describe(),
            )
        return received

    async def _mutate_one(
        self,
        host: str,
        ks: str,
        key: bytes,
        token: int,
        row: Row,
        wire: dict[str, Any],
        acks: _Acks,
    ) -> None:
        node = self.node
        try:
            if host == node.topology.local_host_id:
                await self.apply_local(ks, key, row, token)
            else:
                result = await node.messaging.call(
                    node.topology.address(host),
                    "mutate",
                    wire,
                    node.config.write_timeout_ms / 1000.0,
                )
                node.clock.observe(result.get("hlc", 0))
        except (ProtocolError, OSError, trio.TooSlowError) as exc:
            log.debug("mutation to %s failed: %s", host, exc)
            if isinstance(exc, ProtocolError) and exc.code == ErrorCode.INVALID:
                acks.invalid = InvalidRequest(exc.message)
            acks.fail()
            return
        except Exception:
            log.exception("mutation to %s failed", host)
            acks.fail()
            return
        acks.ack(host)

    # ---- coordinator: reads -------------------------------------------------------------

    async def read(self, keyspace: Keyspace, key: bytes, consistency: Consistency) -> Row | None:
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
            return row
        timeout = node.config.read_timeout_ms / 1000.0
        # replicas to ask instead of one that fails outright (refused, closed, error answer)
        spares = [
            h for h in plan.natural if h not in contacts and plan.counts(h) and topology.is_alive(h)
        ]
        replies: dict[str, _Reply] = {}

        async def ask(host: str, digest_only: bool) -> None:
            if not await self._read_one(host, keyspace.name, key, digest_only, replies) and spares:
                await ask(spares.pop(0), False)

        with trio.move_on_after(timeout):
            async with trio.open_nursery() as nursery:
                for i, host in enumerate(contacts):
                    nursery.start_soon(ask, host, i > 0)
        data = next((r for r in replies.values() if r.is_data), None)
        if len(replies) < len(contacts) or data is None:
            self.counters["read_timeout"] += 1
            self.read_latency.add(trio.current_time() - start)
            raise _read_timeout(len(replies), plan.required, consistency)
        if all(r.digest == data.digest for r in replies.values()):
            self.read_latency.add(trio.current_time() - start)
            return data.row
        # digest mismatch: fetch data from every replica that answered with a digest, and merge
        self.counters["digest_mismatch"] += 1
        full = {h: r for h, r in replies.items() if r.is_data}
        with trio.move_on_after(timeout):
            async with trio.open_nursery() as nursery:
                for host in replies:
                    if host not in full:
                        nursery.start_soon(self._read_one, host, keyspace.name, key, False, full)
        if len(full) < len(replies):
            self.read_latency.add(trio.current_time() - start)
            raise _read_timeout(len(full), plan.required, consistency)
        merged = _merge_rows(r.row for r in full.values())
        self.read_latency.add(trio.current_time() - start)
        return merged

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

    async def handle_mutate(self, args: dict[str, Any]) -> dict[str, Any]:
        node = self.node
        ks = args["ks"]
        node.clock.observe(args.get("hlc", 0))
        if node.schema.get(ks) is None:
            raise InvalidRequest(f"keyspace {ks!r} does not exist on this replica")
        await self.apply_local(ks, bytes(args["key"]), Row.from_wire(args["row"]))
        return {"hlc": node.clock.peek()}

    async def apply_local(self, ks: str, key: bytes, row: Row, token: int | None = None) -> None:
        """Apply ``row`` to the local replica unless the stored row would then be larger than
        ``max_row_bytes`` (``INVALID``, nothing written)."""
        engine = self.node.engine
        limit = self.node.config.max_row_bytes
        size = row_bytes(row)
        existing = engine.read(ks, key) if size <= limit else None
        if existing is not None:
            size = row_bytes(existing.merge(row).normalized())
        if size > limit:
            raise row_too_large(size, limit)
        await engine.apply(ks, key, row, token)

    def handle_read_local(self, args: dict[str, Any]) -> dict[str, Any]:
        node = self.node
        row = node.engine.read(args["ks"], bytes(args["key"]))
        if args.get("digest"):
            return {"digest": row_digest(row), "hlc": node.clock.peek()}
        return {"row": None if row is None else row.to_wire(), "hlc": node.clock.peek()}


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
