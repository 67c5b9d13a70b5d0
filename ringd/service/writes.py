"""Write coordination: a row goes to every live natural replica and the client hears back once
the consistency level's acknowledgements are in.

A replica that is down at the start of the write, or that fails or times out, gets a hint
(``ringd.hints``) when the keyspace keeps hints; hints count toward ``ANY`` only, so a write
at ANY succeeds with every replica down once a hint is kept. Otherwise too few live replicas
fail at once with ``UNAVAILABLE`` and nothing is written; missing
acknowledgements give ``WRITE_TIMEOUT`` with counts (or a replica's own ``INVALID`` /
``OVERLOADED`` refusal). No task per write: ``start_write`` sends ``mutate`` to the replicas with
callbacks (``Messaging.send``), the local replica applies in-process, a ``_Write`` counts the
answers and calls ``done`` once, and one ``Deadlines`` heap expires the writes that time out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import trio

from ringd.db.cells import Row
from ringd.db.engine import StorageEngine
from ringd.dht.murmur3 import token_for
from ringd.hints.service import HintsService
from ringd.locator.consistency import ReplicaPlan
from ringd.locator.consistency import Unavailable as PlanUnavailable
from ringd.metrics import CoordinatorMetrics
from ringd.net.channel import CallTimeout
from ringd.net.deadlines import Deadline, Deadlines
from ringd.net.messaging import Messaging
from ringd.protocol.errors import ErrorCode, InvalidRequest, ProtocolError, Timeout
from ringd.schema import Keyspace
from ringd.service import coordination
from ringd.service.coordination import Consistency
from ringd.service.hlc import HybridClock
from ringd.service.messages import MutateHintedRequest, MutateRequest, MutateResponse
from ringd.service.replica import Replica
from ringd.service.topology import Topology
from ringd.service.tracing import Trace, add_plan, address_of, describe_row

log = logging.getLogger(__name__)


class _Write:
    """One coordinated write in flight: counts acknowledgements and failures as the replicas'
    callbacks arrive, and answers once w acks are in (the acks so far), once every contacted
    replica answered without enough acks, or at the write timeout (``WRITE_TIMEOUT``)."""

    __slots__ = (
        "writes",
        "plan",
        "consistency",
        "tracker",
        "answered",
        "start",
        "done",
        "finished",
        "deadline",
        "refusal",
        "mutation",
        "stand_ins",
        "trace",
    )

    def __init__(
        self,
        writes: Writes,
        plan: ReplicaPlan,
        consistency: Consistency,
        start: float,
        done: Callable[[Any], None],
        mutation: tuple[str, bytes, Row] | None = None,
        stand_ins: dict[str, str] | None = None,
        trace: Trace | None = None,
    ) -> None:
        self.trace = trace  # a traced request's events; None (the usual case): not traced
        self.writes = writes
        self.stand_ins = stand_ins or {}  # sloppy quorum: fallback -> the replica it stands for
        self.mutation = mutation  # (keyspace, key, row) to keep a hint of; None: no hints
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
        """A replica failed the mutation (or did not answer in time): keep a hint for it,
        unless it refused the mutation as ``INVALID``. If too few replicas acknowledge, the
        client hears a replica's own refusal rather than a timeout when there is one:
        ``INVALID`` (a row over max_row_bytes) or ``OVERLOADED`` (writes stopped by a disk
        failure, shutting down)."""
        log.debug("mutation to %s failed: %s", host, error)
        if error.code != ErrorCode.INVALID:
            self.hint(host)
        if self.refusal is None and error.code in (ErrorCode.INVALID, ErrorCode.OVERLOADED):
            self.refusal = ProtocolError(error.message, error.code)
        self.fail()

    def hint(self, host: str) -> bool:
        """Keep a hint of the mutation for ``host`` (a remote replica, or the replica a failed
        fallback stood for); True if kept."""
        hints = self.writes.hints
        host = self.stand_ins.get(host, host)
        if self.mutation is None or hints is None or host == self.writes.topology.local_host_id:
            if self.trace is not None and host != self.writes.topology.local_host_id:
                self._traced("no_hint", "no hint kept for {}: hinted handoff is off", host)
            return False
        kept = hints.submit(host, *self.mutation)
        if self.trace is not None:
            if kept:
                self._traced("hint", "hint stored for {}", host)
            else:
                text = "no hint kept for {} (down past the hint window, or hints full)"
                self._traced("no_hint", text, host)
        return kept

    def _traced(self, kind: str, text: str, host: str) -> None:
        """A coordinator event about replica ``host`` (``{}`` in ``text`` is its address)."""
        assert self.trace is not None
        name = address_of(self.writes.topology, host)
        self.trace.add(kind, text.replace("{}", name, 1), replica=name)

    def traced_local_done(self, host: str, error: BaseException | None) -> None:
        if error is None:
            mode = self.writes.engine.options.commitlog_sync
            text = f"applied to commit log and memtable ({mode} sync), local replica {{}}"
            self._traced("apply", text, host)
        else:
            self._traced("failed", f"local mutation on {{}} failed: {error}", host)
        self.local_done(host, error)

    def traced_remote_done(self, host: str, value: Any, error: ProtocolError | None) -> None:
        assert self.trace is not None
        if error is None:
            self._traced("response", "acknowledgement from {}", host)
            if isinstance(value, dict):
                self.trace.add_peer(address_of(self.writes.topology, host), value.get("trace"))
        elif isinstance(error, CallTimeout):
            self._traced("timeout", f"no answer from {{}} in time: {error.message}", host)
        else:
            self._traced("failed", f"mutate to {{}} failed: {error.code}: {error.message}", host)
        self.remote_done(host, value, error)

    def held_done(self, host: str, value: Any, error: ProtocolError | None) -> None:
        """A fallback's answer to ``mutate_hinted``."""
        if self.trace is not None:
            target = address_of(self.writes.topology, self.stand_ins.get(host, host))
            said = "holds the write as a hint" if error is None else f"refused: {error.message}"
            self._traced("response", f"{{}} (stand-in for {target}) {said}", host)
        if error is None:
            self.ack(host)
        else:
            self.refused(host, error)

    def local_done(self, host: str, error: BaseException | None) -> None:
        if error is None:
            self.ack(host)
        elif isinstance(error, ProtocolError):
            self.refused(host, error)
        else:
            log.warning("local mutation failed: %s", error)
            self.fail()

    def remote_done(self, host: str, value: Any, error: ProtocolError | None) -> None:
        if error is not None:
            self.refused(host, error)
            return
        try:
            response = MutateResponse.from_wire(value)
        except InvalidRequest as exc:
            log.debug("mutation to %s: %s", host, exc)
            self.hint(host)
            self.fail()
            return
        writes = self.writes
        writes.clock.observe(response.hlc)
        now = trio.current_time()
        writes.metrics.replica_latency.mutated(host, now, now - self.start, response.hlc)
        self.ack(host)

    def finish(self) -> None:
        self.finished = True
        writes = self.writes
        if self.deadline is not None:
            writes.deadlines.cancel(self.deadline)
        writes.metrics.write_latency.add(trio.current_time() - self.start)
        received = self.tracker.received
        if self.trace is not None:
            self._trace_finish()
        if not self.tracker.satisfied and self.refusal is not None:
            self.done(self.refusal)
        elif not self.tracker.satisfied:
            writes.metrics.counters["write_timeout"] += 1
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

    def _trace_finish(self) -> None:
        assert self.trace is not None
        tracker, plan = self.tracker, self.plan
        acks = f"{tracker.received} of {plan.required} acks"
        if tracker.satisfied:
            self.trace.add("done", f"answering: {acks}")
        elif self.refusal is not None:
            self.trace.add("failed", f"too few acks ({acks}); answering a replica's refusal")
        else:
            self.trace.add("timeout", f"write timed out: {acks}")

    def expire(self) -> None:
        self.deadline = None
        if not self.finished:
            self.finish()


class Writes:
    """The write path of the coordinator."""

    def __init__(
        self,
        *,
        topology: Topology,
        engine: StorageEngine,
        replica: Replica,
        messaging: Messaging,
        clock: HybridClock,
        deadlines: Deadlines,
        metrics: CoordinatorMetrics,
        timeout: float,
        hints: HintsService | None = None,
    ) -> None:
        self.hints = hints  # None: this node keeps no hints
        self.topology = topology
        self.engine = engine
        self.replica = replica
        self.messaging = messaging
        self.clock = clock
        self.deadlines = deadlines
        self.metrics = metrics
        self.timeout = timeout

    def start_write(
        self,
        keyspace: Keyspace,
        key: bytes,
        row: Row,
        consistency: Consistency,
        done: Callable[[Any], None],
        trace: Trace | None = None,
    ) -> None:
        """Apply ``row`` at the requested consistency without waiting: ``done`` gets the
        acknowledgements received, or ``WRITE_TIMEOUT``. Too few live replicas raise
        ``UNAVAILABLE`` at once (nothing is written). The mutation goes to every contact
        through channel callbacks (the local replica in-process); one deadline per write.
        ``trace`` (a traced request) gets the coordinator's and the replicas' events."""
        start = trio.current_time()
        topology = self.topology
        token = token_for(key)
        # sloppy quorum: down replicas are stood in for by the next live nodes, which hold the
        # write as a hint for them and count towards w (fallback -> the replica it stands for)
        natural, stand_ins = topology.request_replicas(
            keyspace, token, sloppy=keyspace.sloppy_quorum and self.hints is not None
        )
        if trace is not None:
            trace.add("request", f"write of {describe_row(row)} at {consistency.describe()}")
        plan = coordination.plan(topology, self.metrics, keyspace, natural, consistency, write=True)
        if topology.future_ring is not None:
            plan = self._with_pending(plan, keyspace, token, consistency)
        if trace is not None:
            add_plan(trace, topology, plan, consistency.describe(), stand_ins)
        replica = self.replica
        encoded = replica.check_row_size(keyspace.name, key, row, new_only=True)
        hinting = self.hints is not None and keyspace.hinted_handoff
        mutation = (keyspace.name, key, row) if hinting else None
        write = _Write(self, plan, consistency, start, done, mutation, stand_ins, trace)
        for host in plan.natural:
            if host not in plan.contacts and write.hint(host):  # down at the start
                write.tracker.ack_hint()  # counts for ANY only
        if not plan.contacts:  # ANY with every replica down: the hints are the write
            if not write.tracker.satisfied:
                self.metrics.counters["write_unavailable"] += 1
                raise coordination.unavailable(
                    PlanUnavailable(plan.required, 0, replicas=len(plan.natural)), consistency
                )
            write.finish()
            return
        local = topology.local_host_id
        timeout = self.timeout
        wire: dict[str, Any] | None = None
        for host in plan.contacts:
            if host in stand_ins:
                self._hold(write, host, stand_ins[host], keyspace.name, key, row)
                continue
            if host == local:
                local_done = write.local_done if trace is None else write.traced_local_done
                try:
                    replica.check_row_size(keyspace.name, key, row, encoded=encoded)
                    self.engine.apply_then(
                        keyspace.name, key, row, token, partial(local_done, host), encoded
                    )
                except ProtocolError as exc:
                    write.refused(host, exc)
                except Exception as exc:
                    log.warning("local mutation failed: %s", exc)
                    write.fail()
                continue
            if wire is None:
                traced = trace is not None
                wire = MutateRequest(keyspace.name, key, row, self.clock.now(), traced).to_wire()
            if trace is None:
                callback = partial(write.remote_done, host)
            else:
                write._traced("send", "sending mutate to {}", host)
                callback = partial(write.traced_remote_done, host)
            self.messaging.send(topology.address(host), "mutate", wire, callback, timeout)
        if not write.finished:
            write.deadline = self.deadlines.after(timeout, write.expire)

    def _with_pending(
        self, plan: ReplicaPlan, keyspace: Keyspace, token: int, consistency: Consistency
    ) -> ReplicaPlan:
        """Nodes joining or taking over ``token``'s range get the write too, and one more ack is
        required per live pending node (Cassandra's blockFor + pending), so that the level holds
        on the replica set of after the move; too few live nodes for that is ``UNAVAILABLE``.
        A pending node that is down gets a hint (it is not counted: it streams its ranges only
        once every node has seen it joining for a while)."""
        topology = self.topology
        pending = topology.pending_replicas(keyspace, token)
        if not pending:
            return plan
        live = [h for h in pending if topology.is_alive(h)]
        dcs = dict(plan.replica_dcs)
        for h in live:  # a pending node not (yet) seen alive gets a hint and is not waited for
            if plan.counted_dc is None or topology.dc(h) == plan.counted_dc:
                dcs[h] = topology.dc(h)
        counted = len(dcs) - len(plan.replica_dcs)
        required = plan.required + (0 if plan.hint_counts else counted)
        contacts = plan.contacts + tuple(live)
        if sum(1 for h in contacts if h in dcs) < required:
            self.metrics.counters["write_unavailable"] += 1
            raise coordination.unavailable(
                PlanUnavailable(required, len(contacts), replicas=len(plan.natural)), consistency
            )
        return plan._replace(
            required=required,
            contacts=contacts,
            natural=plan.natural + tuple(pending),
            replica_dcs=dcs,
        )

    def _hold(
        self, write: _Write, fallback: str, target: str, ks: str, key: bytes, row: Row
    ) -> None:
        """Send a sloppy-quorum write to ``fallback``, which holds it for ``target``."""
        if write.trace is not None:
            name = address_of(self.topology, target)
            write._traced("send", f"sending the write to {{}}, standing in for {name}", fallback)
        if fallback == self.topology.local_host_id:
            assert self.hints is not None
            if self.hints.hold(target, ks, key, row):
                write.held_done(fallback, {}, None)
            else:
                if write.trace is not None:
                    write._traced("failed", "{} cannot hold a hint (handoff off or full)", fallback)
                write.fail()
            return
        wire = MutateHintedRequest(ks, key, row, target).to_wire()
        self.messaging.send(
            self.topology.address(fallback),
            "mutate_hinted",
            wire,
            partial(write.held_done, fallback),
            self.timeout,
        )

    async def write(
        self, keyspace: Keyspace, key: bytes, row: Row, consistency: Consistency
    ) -> int:
        """:meth:`start_write`, awaited: the acknowledgements received."""
        return int(
            await coordination.wait(partial(self.start_write, keyspace, key, row, consistency))
        )
