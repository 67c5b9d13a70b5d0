"""Read coordination: one replica is asked for the row, the others for digests; matching
digests answer at once, a mismatch fetches the row from every replica and returns the merge.

No task per read: ``start_read`` sends ``read_local`` with callbacks, a ``_Read`` gathers the
answers and calls ``done`` once, and one ``Deadlines`` heap expires the reads that time out.
Only the digest-mismatch resolution runs in a task (in :meth:`Reads.run`'s nursery).

Blocking read repair (keyspace option ``read_repair = BLOCKING``, the default; docs/repair.md):
when the contacted replicas disagree, each stale one is sent, with ``mutate``, exactly the cells
(and tombstone) of the merge that its reply lacked, and the read answers only once they all
acked; if they do not within the read timeout, the read fails with ``READ_TIMEOUT``. So a value
once returned at QUORUM is returned by every later QUORUM read. ``NONE`` answers with the merge
and leaves the replicas as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, NamedTuple

import trio

from ringd.db.cells import Row, row_digest
from ringd.db.engine import StorageEngine
from ringd.dht.murmur3 import token_for
from ringd.hints.service import HintsService
from ringd.locator.consistency import ReplicaPlan
from ringd.metrics import CoordinatorMetrics
from ringd.net.channel import CallTimeout
from ringd.net.deadlines import Deadline, Deadlines
from ringd.net.messaging import Messaging
from ringd.protocol.errors import ErrorCode, ProtocolError
from ringd.schema import Keyspace
from ringd.service import coordination
from ringd.service.coordination import Consistency, read_timeout
from ringd.service.hlc import HybridClock
from ringd.service.messages import (
    MutateRequest,
    MutateResponse,
    ReadLocalRequest,
    ReadLocalResponse,
)
from ringd.service.topology import Topology
from ringd.service.tracing import Trace, add_plan, address_of, describe_read, describe_row

log = logging.getLogger(__name__)


class _Reply(NamedTuple):
    """One replica's answer to a read: the row (if data was asked for) and its digest."""

    row: Row | None
    digest: bytes
    is_data: bool


def _reply_of(response: ReadLocalResponse) -> _Reply:
    if response.digest is not None:
        return _Reply(None, response.digest, False)
    return _Reply(response.row, row_digest(response.row), True)


class _Read:
    """One coordinated read in flight: one replica asked for data, the others for digests, each
    answer arriving through a callback. A replica that fails outright is replaced by a spare
    (asked for data); a slow one is not. Answers once every asked replica answered or at the
    read timeout; on a digest mismatch the full-data resolution runs in a task."""

    __slots__ = (
        "reads",
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
        "stand_ins",
        "trace",
    )

    def __init__(
        self,
        reads: Reads,
        keyspace: Keyspace,
        key: bytes,
        plan: ReplicaPlan,
        consistency: Consistency,
        start: float,
        done: Callable[[Any], None],
        spares: list[str],
        stand_ins: dict[str, str] | None = None,
        trace: Trace | None = None,
    ) -> None:
        self.trace = trace  # a traced request's events; None (the usual case): not traced
        self.reads = reads
        self.stand_ins = stand_ins or {}  # sloppy quorum: fallback -> the replica it stands for
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
        reads = self.reads
        self.outstanding += 1
        held = host in self.stand_ins
        if host == reads.topology.local_host_id:
            try:
                row = reads.local_row(self.keyspace.name, self.key, held)
            except Exception as exc:
                log.warning("local read failed: %s", exc)
                self.answered(host, False)
                return
            if self.trace is not None:
                self.trace.add("read", reads.describe_local(self.keyspace.name, self.key, row))
            self.replies[host] = _Reply(row, row_digest(row), True)
            self.answered(host, True)
            return
        verb = "read_hinted" if held else "read_local"
        traced = self.trace is not None
        if self.trace is None:
            callback = partial(self.remote_done, host, digest_only)
        else:
            what = "digest" if digest_only else "data"
            reads.traced(self.trace, "send", f"asking {{}} for {what} ({verb})", host)
            callback = partial(self.traced_remote_done, host, digest_only)
        reads.messaging.send(
            reads.topology.address(host),
            verb,
            ReadLocalRequest(self.keyspace.name, self.key, digest_only, traced).to_wire(),
            callback,
            reads.timeout,
        )

    def traced_remote_done(self, host: str, digest_only: bool, value: Any, error: Any) -> None:
        assert self.trace is not None
        if not self.finished:
            reads = self.reads
            if error is None:
                what = "digest" if digest_only else "data"
                reads.traced(self.trace, "response", f"{what} received from {{}}", host)
                if isinstance(value, dict):
                    self.trace.add_peer(address_of(reads.topology, host), value.get("trace"))
            else:
                text = f"read from {{}} failed: {getattr(error, 'message', error)}"
                reads.traced(self.trace, "failed", text, host)
        self.remote_done(host, digest_only, value, error)

    def remote_done(self, host: str, digest_only: bool, value: Any, error: Any) -> None:
        if self.finished:
            return
        if error is None:
            try:
                response = ReadLocalResponse.from_wire(value, digest_only)
            except ProtocolError as exc:
                error = exc
            else:
                reads = self.reads
                reads.clock.observe(response.hlc)
                now = trio.current_time()
                reads.metrics.replica_latency.read_done(host, now, now - self.start, response.hlc)
                self.replies[host] = _reply_of(response)
                self.answered(host, True)
                return
        log.debug("read from %s failed: %s", host, error)
        # slow, not failed: asking a spare now would not be sooner
        self.answered(host, isinstance(error, CallTimeout))

    def answered(self, host: str, ok_or_slow: bool) -> None:
        if not ok_or_slow and self.spares:
            spare = self.spares.pop(0)
            if self.trace is not None:
                instead = address_of(self.reads.topology, host)
                text = f"asking spare replica {{}} for data instead of {instead}"
                self.reads.traced(self.trace, "spare", text, spare)
            self.ask(spare, False)
        self.outstanding -= 1
        if self.outstanding == 0 and not self.finished:
            self.finish()

    def expire(self) -> None:
        self.deadline = None
        if not self.finished:
            self.finish()

    def finish(self) -> None:
        self.finished = True
        reads = self.reads
        metrics = reads.metrics
        if self.deadline is not None:
            reads.deadlines.cancel(self.deadline)
        replies = self.replies
        data = next((r for r in replies.values() if r.is_data), None)
        trace = self.trace
        if len(replies) < len(self.plan.contacts) or data is None:
            if trace is not None:
                name = partial(address_of, reads.topology)
                missing = [name(h) for h in self.plan.contacts if h not in replies]
                trace.add(
                    "timeout",
                    f"read timed out: {len(replies)} of {len(self.plan.contacts)} replicas "
                    f"answered; waiting for {', '.join(missing) or 'data'}",
                )
            metrics.counters["read_timeout"] += 1
            metrics.read_latency.add(trio.current_time() - self.start)
            self.done(read_timeout(len(replies), self.plan.required, self.consistency))
            return
        staleness = metrics.staleness
        if len(replies) > 1:
            staleness.compared[self.keyspace.name] += 1
        if all(r.digest == data.digest for r in replies.values()):
            if trace is not None:
                trace.add("done", f"digests match; answering with {describe_row(data.row)}")
            metrics.read_latency.add(trio.current_time() - self.start)
            self.done(data.row)
            return
        if trace is not None:
            self._trace_mismatch(trace, data)
        metrics.counters["digest_mismatch"] += 1
        staleness.mismatch(self.keyspace.name)
        assert reads.nursery is not None
        reads.nursery.start_soon(self._resolve, dict(replies))

    def _trace_mismatch(self, trace: Trace, data: _Reply) -> None:
        name = partial(address_of, self.reads.topology)
        holder = next(h for h, r in self.replies.items() if r is data)
        differ = [name(h) for h, r in self.replies.items() if r.digest != data.digest]
        trace.add(
            "digest_mismatch",
            f"digest mismatch: {', '.join(differ)} "
            f"{'disagrees' if len(differ) == 1 else 'disagree'} with the data from {name(holder)}; "
            "fetching full data",
            replicas=differ,
        )

    async def _resolve(self, replies: dict[str, _Reply]) -> None:
        """Digest mismatch: fetch data from every replica that answered with a digest, merge."""
        reads = self.reads
        full = {h: r for h, r in replies.items() if r.is_data}
        try:
            with trio.move_on_after(reads.timeout):
                async with trio.open_nursery() as nursery:
                    for host in replies:
                        if host not in full:
                            nursery.start_soon(
                                reads.read_one,
                                host,
                                self.keyspace.name,
                                self.key,
                                full,
                                host in self.stand_ins,
                                self.trace,
                            )
            trace = self.trace
            if len(full) < len(replies):
                if trace is not None:
                    trace.add(
                        "timeout",
                        f"read timed out: {len(full)} of {len(replies)} replicas sent their data",
                    )
                reads.metrics.read_latency.add(trio.current_time() - self.start)
                self.done(read_timeout(len(full), self.plan.required, self.consistency))
                return
            merged = _merge_rows(r.row for r in full.values())
            if trace is not None:
                trace.add("merge", f"merged the replicas' data: {describe_row(merged)}")
            reads.metrics.counters["read_repair_reconcile"] += 1
            if merged is not None and self.keyspace.read_repair == "BLOCKING":
                stale = {  # sloppy-quorum stand-ins hold hints, not replicas: not repaired
                    h: d
                    for h, r in full.items()
                    if h not in self.stand_ins and (d := missing_from(merged, r.row)) is not None
                }
                if trace is not None and not stale:
                    trace.add("read_repair", "read repair: no replica lacks anything")
                repaired = not stale or await reads.repair(
                    self.keyspace.name, self.key, stale, trace
                )
                if not repaired:
                    if trace is not None:
                        trace.add("timeout", "read repair timed out; failing the read")
                    reads.metrics.counters["read_repair_timeout"] += 1
                    reads.metrics.read_latency.add(trio.current_time() - self.start)
                    self.done(
                        read_timeout(len(full) - len(stale), self.plan.required, self.consistency)
                    )
                    return
            elif trace is not None and self.keyspace.read_repair != "BLOCKING":
                trace.add("read_repair", "read repair off for this keyspace (read_repair NONE)")
            if trace is not None:
                trace.add("done", f"answering with {describe_row(merged)}")
            reads.metrics.read_latency.add(trio.current_time() - self.start)
            self.done(merged)
        except Exception as exc:
            log.exception("read resolution failed")
            self.done(ProtocolError(f"read failed: {exc}", ErrorCode.SERVER_ERROR))


class Reads:
    """The read path of the coordinator. Start :meth:`run` before reading."""

    def __init__(
        self,
        *,
        topology: Topology,
        engine: StorageEngine,
        messaging: Messaging,
        clock: HybridClock,
        deadlines: Deadlines,
        metrics: CoordinatorMetrics,
        timeout: float,
        hints: HintsService | None = None,
    ) -> None:
        self.hints = hints  # sloppy quorum: what this node holds for down replicas
        self.topology = topology
        self.engine = engine
        self.messaging = messaging
        self.clock = clock
        self.deadlines = deadlines
        self.metrics = metrics
        self.timeout = timeout
        self.nursery: trio.Nursery | None = None  # digest-mismatch resolutions run here

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def start_read(
        self,
        keyspace: Keyspace,
        key: bytes,
        consistency: Consistency,
        done: Callable[[Any], None],
        trace: Trace | None = None,
    ) -> None:
        """Read ``key`` at ``consistency`` without waiting: ``done`` gets the row (or None),
        or ``READ_TIMEOUT``; ``UNAVAILABLE`` is raised at once. ``trace`` (a traced request)
        gets the coordinator's and the replicas' events."""
        start = trio.current_time()
        topology = self.topology
        token = token_for(key)
        # sloppy quorum: the nodes standing in for down replicas answer from what they hold
        natural, stand_ins = topology.request_replicas(
            keyspace, token, sloppy=keyspace.sloppy_quorum and self.hints is not None
        )
        if trace is not None:
            trace.add("request", f"read at {consistency.describe()}")
        plan = coordination.plan(
            topology, self.metrics, keyspace, natural, consistency, write=False
        )
        if trace is not None:
            add_plan(trace, topology, plan, consistency.describe(), stand_ins)
        contacts = plan.contacts
        local = topology.local_host_id
        if contacts == (local,):
            row = self.local_row(keyspace.name, key, local in stand_ins)
            if trace is not None:
                trace.add("read", self.describe_local(keyspace.name, key, row))
                trace.add("done", f"answering with {describe_row(row)}")
            self.metrics.read_latency.add(trio.current_time() - start)
            done(row)
            return
        # replicas to ask instead of one that fails outright (refused, closed, error answer)
        spares = [
            h for h in plan.natural if h not in contacts and plan.counts(h) and topology.is_alive(h)
        ]
        read = _Read(self, keyspace, key, plan, consistency, start, done, spares, stand_ins, trace)
        for i, host in enumerate(contacts):
            read.ask(host, i > 0)
        read.outstanding -= 1
        if read.outstanding == 0:
            read.finish()
        if not read.finished:
            read.deadline = self.deadlines.after(self.timeout, read.expire)

    async def read(self, keyspace: Keyspace, key: bytes, consistency: Consistency) -> Row | None:
        """:meth:`start_read`, awaited."""
        row: Row | None = await coordination.wait(
            partial(self.start_read, keyspace, key, consistency)
        )
        return row

    async def _apply_local(self, ks: str, key: bytes, row: Row) -> None:
        """Apply ``row`` to the local replica the way writes do (``apply_then``: it joins the
        sync task's batch in batch and group mode) and wait until it is durable."""
        durable = trio.Event()
        errors: list[BaseException | None] = []

        def done(error: BaseException | None) -> None:
            errors.append(error)
            durable.set()

        self.engine.apply_then(ks, key, row, None, done)
        await durable.wait()
        if errors[0] is not None:
            raise errors[0]

    def traced(self, trace: Trace, kind: str, text: str, host: str) -> None:
        """A coordinator event about replica ``host`` (``{}`` in ``text`` is its address)."""
        name = address_of(self.topology, host)
        trace.add(kind, text.replace("{}", name, 1), replica=name)

    def describe_local(self, ks: str, key: bytes, row: Row | None) -> str:
        return describe_read(self.engine, ks, key, row) + " (local replica)"

    async def repair(
        self, ks: str, key: bytes, stale: dict[str, Row], trace: Trace | None = None
    ) -> bool:
        """Send each stale replica the cells it lacks and wait for every ack (read timeout);
        False if one did not ack in time or failed."""
        acked: set[str] = set()

        async def send(host: str, diff: Row) -> None:
            if trace is not None:
                self.traced(
                    trace, "repair_write", f"read repair: sending {{}} {describe_row(diff)}", host
                )
            try:
                if host == self.topology.local_host_id:
                    await self._apply_local(ks, key, diff)
                else:
                    value = await self.messaging.call(
                        self.topology.address(host),
                        "mutate",
                        MutateRequest(ks, key, diff, self.clock.now(), trace is not None).to_wire(),
                        self.timeout,
                    )
                    self.clock.observe(MutateResponse.from_wire(value).hlc)
                    if trace is not None and isinstance(value, dict):
                        trace.add_peer(address_of(self.topology, host), value.get("trace"))
                acked.add(host)
                if trace is not None:
                    self.traced(trace, "repair_ack", "read repair acknowledged by {}", host)
            except (ProtocolError, OSError, CallTimeout) as exc:
                log.debug("read repair of %s failed: %s", host, exc)
                if trace is not None:
                    self.traced(trace, "failed", f"read repair of {{}} failed: {exc}", host)

        self.metrics.counters["read_repair_blocking"] += len(stale)
        with trio.move_on_after(self.timeout):
            async with trio.open_nursery() as nursery:
                for host, diff in stale.items():
                    nursery.start_soon(send, host, diff)
        return len(acked) == len(stale)

    def local_row(self, ks: str, key: bytes, held: bool = False) -> Row | None:
        """This node's copy of the row; ``held``: what it holds for down replicas instead."""
        if held:
            return None if self.hints is None else self.hints.held_row(ks, key)
        return self.engine.read(ks, key)

    async def read_one(
        self,
        host: str,
        ks: str,
        key: bytes,
        out: dict[str, _Reply],
        held: bool = False,
        trace: Trace | None = None,
    ) -> bool:
        """Ask one replica (``held``: a sloppy-quorum stand-in) for the row into ``out``; False
        if it failed."""
        try:
            if host == self.topology.local_host_id:
                row = self.local_row(ks, key, held)
                if trace is not None:
                    trace.add("read", self.describe_local(ks, key, row))
                out[host] = _Reply(row, row_digest(row), True)
                return True
            if trace is not None:
                self.traced(trace, "send", "asking {} for data", host)
            value = await self.messaging.call(
                self.topology.address(host),
                "read_hinted" if held else "read_local",
                ReadLocalRequest(ks, key, False, trace is not None).to_wire(),
                self.timeout,
            )
            response = ReadLocalResponse.from_wire(value, False)
            self.clock.observe(response.hlc)
            out[host] = _reply_of(response)
            if trace is not None:
                self.traced(trace, "response", "data received from {}", host)
                trace.add_peer(address_of(self.topology, host), value.get("trace"))
            return True
        except CallTimeout:
            if trace is not None:
                self.traced(trace, "timeout", "no data from {} in time", host)
            return False  # slow, not failed: asking a spare now would not be sooner
        except (ProtocolError, OSError) as exc:
            log.debug("read from %s failed: %s", host, exc)
            if trace is not None:
                self.traced(trace, "failed", f"read from {{}} failed: {exc}", host)
            return False


def missing_from(merged: Row, have: Row | None) -> Row | None:
    """The part of ``merged`` a replica that answered ``have`` lacks: the cells whose winning
    version it does not hold and the row tombstone if its own is older; None if nothing."""
    if have is None:
        return merged
    cells = {n: c for n, c in merged.cells.items() if have.cells.get(n) != c}
    tomb = merged.tombstone if merged.tombstone != have.tombstone else None
    if not cells and tomb is None:
        return None
    return Row(cells, tomb)


def _merge_rows(rows: Iterable[Row | None]) -> Row | None:
    merged: Row | None = None
    for row in rows:
        if row is None:
            continue
        merged = row if merged is None else merged.merge(row)
    return merged
