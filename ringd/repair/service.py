"""Repair sessions coordinated by this node (``ringctl repair``) and the view of their state.

A session repairs, for each keyspace asked for, the vnode ranges this node replicates (``-pr``:
only those it is primary owner of; ``-st``/``-et``: only the part of them inside
``(start, end]``), among the replicas of each range (``--dc``: those of one datacenter;
``--hosts``: those named). Every participant must be alive, or the session fails at once. Ranges
are repaired ``jobs`` at a time with :func:`ringd.repair.session.repair_range`; each completed
range is recorded in the repair history. A session can be cancelled; a participant that fails or
dies fails the session with the reason, and the next session starts clean (participants forget a
session's leases once it ends, or after a lease time if they never hear).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from ringd.dht.ring import Ring
from ringd.dht.tokens import MAX_TOKEN, MIN_TOKEN, Range
from ringd.protocol.errors import ErrorCode, InvalidRequest, ProtocolError
from ringd.repair.history import RepairHistory
from ringd.repair.merkle import depth_for
from ringd.repair.participant import Call, LocalParticipant, RemoteParticipant, ReplicaRepair
from ringd.repair.session import Participant, RangeResult, repair_range
from ringd.schema import Keyspace

log = logging.getLogger(__name__)

MAX_SESSIONS_KEPT = 50
#: at most this long for the participants to hear a session's release (each call: 2 s; a
#: participant that does not hear it lets its leases lapse)
RELEASE_TIMEOUT_S = 12.0


class Cluster(Protocol):
    """What repair needs to know of the ring (the node's topology provides it)."""

    local_host_id: str

    @property
    def ring(self) -> Ring: ...

    def strategy(self, keyspace: Keyspace) -> Any: ...

    def is_alive(self, host_id: str) -> bool: ...

    def address(self, host_id: str) -> str: ...

    def dc(self, host_id: str) -> str: ...


class Keyspaces(Protocol):
    def get(self, name: str) -> Keyspace | None: ...

    def live(self) -> list[Keyspace]: ...


@dataclass
class RepairOptions:
    keyspaces: list[str] = field(default_factory=list)  # empty: every keyspace
    primary_range: bool = False
    start_token: int | None = None
    end_token: int | None = None
    dc: str | None = None
    hosts: list[str] | None = None  # addresses
    preview: bool = False
    jobs: int = 1

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> RepairOptions:
        """The options of a ``repair`` request, checked (nodetool's rules)."""

        def opt(name: str, kind: type, default: Any = None) -> Any:
            value = args.get(name, default)
            if value is not None and (
                not isinstance(value, kind) or isinstance(value, bool) and kind is not bool
            ):
                raise InvalidRequest(f"{name} must be {kind.__name__}")
            return value

        ks = opt("keyspace", str)
        hosts = opt("hosts", list)
        if hosts is not None and not all(isinstance(h, str) and h for h in hosts):
            raise InvalidRequest("hosts must be a list of addresses")
        o = cls(
            keyspaces=[ks] if ks else [],
            primary_range=bool(opt("primary_range", bool, False)),
            start_token=opt("start_token", int),
            end_token=opt("end_token", int),
            dc=opt("dc", str),
            hosts=hosts,
            preview=bool(opt("preview", bool, False)),
            jobs=opt("jobs", int, 1),
        )
        o.check()
        return o

    def check(self) -> None:
        """INVALID for combinations nodetool refuses too."""
        if self.primary_range and (self.dc is not None or self.hosts is not None):
            raise InvalidRequest("-pr cannot be combined with --dc or --hosts")
        if self.dc is not None and self.hosts is not None:
            raise InvalidRequest("give --dc or --hosts, not both")
        if (self.start_token is None) != (self.end_token is None):
            raise InvalidRequest("give both -st and -et, or neither")
        if not 1 <= self.jobs <= 4:
            raise InvalidRequest("jobs must be between 1 and 4")


@dataclass
class Session:
    id: str
    coordinator: str
    options: RepairOptions
    state: str = "RUNNING"  # RUNNING, COMPLETED, FAILED, CANCELLED
    started: float = field(default_factory=time.time)
    last_activity: float = field(default_factory=time.time)
    participants: set[str] = field(default_factory=set)
    ranges_total: int = 0
    ranges_done: int = 0
    rows_compared: int = 0
    rows_streamed: int = 0
    bytes_streamed: int = 0
    error: str | None = None
    per_keyspace: dict[str, dict[str, Any]] = field(default_factory=dict)
    completed: list[tuple[str, Range]] = field(default_factory=list)
    cancel_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    ended: trio.Event = field(default_factory=trio.Event)

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "coordinator": self.coordinator,
            "participants": sorted(self.participants),
            "started": self.started,
            "last_activity": self.last_activity,
            "preview": self.options.preview,
            "ranges_total": self.ranges_total,
            "ranges_done": self.ranges_done,
            "rows_compared": self.rows_compared,
            "rows_streamed": self.rows_streamed,
            "bytes_streamed": self.bytes_streamed,
            "error": self.error,
            "keyspaces": self.per_keyspace,
        }


@dataclass
class _Job:
    keyspace: str
    range: Range
    hosts: list[str]  # participants' host ids, this node first


class RepairService:
    def __init__(
        self,
        replica: ReplicaRepair,
        cluster: Cluster,
        keyspaces: Keyspaces,
        call: Call,
        *,
        local_address: str,
        wall: Callable[[], float] = time.time,
        timeout: float = 60.0,
    ) -> None:
        self.replica = replica
        self.cluster = cluster
        self.keyspaces = keyspaces
        self.call = call
        if replica.history is None:
            raise ValueError("a repair coordinator needs its replica's repair history")
        self.history: RepairHistory = replica.history
        self.local_address = local_address
        self.wall = wall
        self.timeout = timeout
        self.sessions: dict[str, Session] = {}
        self.validations = 0
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self.replica.keep_history_saved)
            task_status.started()
            await trio.sleep_forever()

    # -- planning -----------------------------------------------------------------------------

    def plan(self, options: RepairOptions) -> list[_Job]:
        """The ranges to repair and their participants; INVALID for options that cannot work."""
        options.check()
        names = options.keyspaces or [k.name for k in self.keyspaces.live()]
        cluster = self.cluster
        ring = cluster.ring
        local = cluster.local_host_id
        wanted_hosts: set[str] | None = None
        if options.hosts is not None:
            by_address = {ring.node(h).address: h for h in ring.nodes}
            unknown = [a for a in options.hosts if a not in by_address]
            if unknown:
                raise InvalidRequest(f"no node at {', '.join(unknown)} in the ring")
            wanted_hosts = {by_address[a] for a in options.hosts}
            if local not in wanted_hosts:
                raise InvalidRequest("--hosts must include the node that coordinates the repair")
        subrange = None
        if options.start_token is not None and options.end_token is not None:
            try:
                subrange = Range(options.start_token, options.end_token)
            except ValueError as exc:
                raise InvalidRequest(f"bad token range: {exc}") from None
        jobs: list[_Job] = []
        for name in names:
            ks = self.keyspaces.get(name)
            if ks is None:
                raise InvalidRequest(f"keyspace {name!r} does not exist", keyspace=name)
            strategy = cluster.strategy(ks)
            primary = set(ring.primary_ranges(local)) if options.primary_range else None
            for rng, replicas in strategy.range_replicas(ring):
                if local not in replicas or (primary is not None and rng not in primary):
                    continue
                hosts = [
                    h for h in replicas if h == local or _wanted(h, options, cluster, wanted_hosts)
                ]
                if len(hosts) < 2:
                    continue
                pieces = [rng] if subrange is None else _intersect(rng, subrange)
                hosts = [local] + [h for h in hosts if h != local]
                jobs.extend(_Job(name, piece, hosts) for piece in pieces)
        return jobs

    # -- sessions -----------------------------------------------------------------------------

    def start(self, options: RepairOptions) -> Session:
        """Plan and start a session in the background; returns it at once."""
        jobs = self.plan(options)
        busy = [s for s in self.sessions.values() if s.state == "RUNNING"]
        for s in busy:
            for job in jobs:
                if job.keyspace in s.per_keyspace and any(
                    _overlap(job.range, Range(int(a), int(b)))
                    for a, b in s.per_keyspace[job.keyspace]["ranges"]
                ):
                    raise InvalidRequest(
                        f"{job.keyspace} {job.range} is being repaired by session {s.id}"
                    )
        down = sorted({h for job in jobs for h in job.hosts if not self.cluster.is_alive(h)})
        if down:
            addresses = ", ".join(self.cluster.address(h) for h in down)
            raise ProtocolError(
                f"cannot repair: replica {addresses} is down", ErrorCode.UNAVAILABLE
            )
        session = Session(uuid.uuid4().hex[:12], self.local_address, options)
        session.ranges_total = len(jobs)
        session.participants = {self.cluster.address(h) for job in jobs for h in job.hosts}
        for job in jobs:
            entry = session.per_keyspace.setdefault(
                job.keyspace,
                {
                    "ranges": [],
                    "in_sync": 0,
                    "out_of_sync": {},
                    "rows_streamed": 0,
                    "bytes_streamed": 0,
                },
            )
            entry["ranges"].append([str(job.range.start), str(job.range.end)])
        self.sessions[session.id] = session
        self._trim()
        assert self._nursery is not None, "RepairService.run must be started first"
        self._nursery.start_soon(self._run_session, session, jobs)
        return session

    async def _run_session(self, session: Session, jobs: list[_Job]) -> None:
        state = "COMPLETED"
        with session.cancel_scope:
            try:
                limiter = trio.CapacityLimiter(session.options.jobs)
                async with trio.open_nursery() as nursery:
                    for job in jobs:
                        nursery.start_soon(self._run_job, session, job, limiter)
            except Exception as exc:  # a participant failed: the session fails, clearly
                state = "FAILED"
                session.error = _reason(exc)
                log.warning("repair session %s failed: %s", session.id, session.error)
        if session.cancel_scope.cancelled_caught:
            state = "CANCELLED"
        session.last_activity = time.time()
        # the session ends (its state changes) only once every participant let go of it
        await self._release(session, [] if session.options.preview else session.completed)
        session.state = state
        log.info(
            "repair session %s %s: %d ranges, %d rows streamed in %.1f s",
            session.id,
            session.state.lower(),
            session.ranges_done,
            session.rows_streamed,
            session.last_activity - session.started,
        )
        session.ended.set()

    async def _release(self, session: Session, completed: list[tuple[str, Range]]) -> None:
        """End the session everywhere: every participant forgets its leases and records the
        completed ranges in its history (best effort: a dead one's leases lapse)."""
        participants = sorted(session.participants)
        self.replica.release(session.id)
        self.replica.record(completed, participants)

        async def release(address: str) -> None:
            try:
                remote = RemoteParticipant(self.call, address, session.id, 2.0)
                await remote.release(completed, participants)
            except (ProtocolError, OSError, trio.TooSlowError) as exc:
                log.debug("repair session %s: release on %s: %s", session.id, address, exc)

        # all at once, shielded from the session's cancellation (a node stopping) but bounded
        # (a deadline outside a shield would not reach inside it)
        with trio.CancelScope(shield=True, deadline=trio.current_time() + RELEASE_TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                for address in sorted(session.participants - {self.local_address}):
                    nursery.start_soon(release, address)

    async def _run_job(self, session: Session, job: _Job, limiter: trio.CapacityLimiter) -> None:
        async with limiter:
            participants = self._participants(session.id, job.hosts)
            depth = self._depth(job.keyspace, job.range)
            result = await repair_range(
                job.keyspace, job.range, participants, depth, preview=session.options.preview
            )
            self._account(session, job, result)

    def _participants(self, session_id: str, hosts: list[str]) -> dict[str, Participant]:
        out: dict[str, Participant] = {}
        for host in hosts:
            address = self.cluster.address(host)
            if host == self.cluster.local_host_id:
                out[address] = LocalParticipant(self.replica, session_id)
            else:
                out[address] = RemoteParticipant(self.call, address, session_id, self.timeout)
        return out

    async def repair_piece(self, keyspace: str, rng: Range, hosts: list[str]) -> RangeResult:
        """Repair ``rng`` among ``hosts`` now, outside any session (background anti-entropy),
        and record it in the history."""
        session = Session(f"ae-{uuid.uuid4().hex[:8]}", self.local_address, RepairOptions())
        session.participants = {self.cluster.address(h) for h in hosts}
        completed: list[tuple[str, Range]] = []
        try:
            result = await repair_range(
                keyspace, rng, self._participants(session.id, hosts), self._depth(keyspace, rng)
            )
            completed.append((keyspace, rng))
        finally:
            await self._release(session, completed)
        return result

    def _rows(self, keyspace: str) -> tuple[int, int]:
        """Rows and bytes of ``keyspace`` stored here (estimates from the engine's stats)."""
        stats = self.replica.engine.stats().get(keyspace, {})
        rows = int(stats.get("rows_on_disk", 0)) + int(stats.get("memtable_rows", 0))
        size = int(stats.get("bytes_on_disk", 0)) + int(stats.get("memtable_bytes", 0))
        return rows, size

    def _depth(self, keyspace: str, rng: Range) -> int:
        """The tree depth for ``rng``: about ROWS_PER_LEAF of this node's rows a leaf."""
        rows, _ = self._rows(keyspace)
        return depth_for(int(rows * rng.fraction))

    def row_size(self, keyspace: str) -> int:
        """The keyspace's average stored row size here, in bytes (at least 64)."""
        rows, size = self._rows(keyspace)
        return max(64, size // rows) if rows else 64

    def _account(self, session: Session, job: _Job, result: RangeResult) -> None:
        session.ranges_done += 1
        session.last_activity = time.time()
        session.rows_compared += result.rows_compared
        streamed = sum(result.rows_streamed.values())
        session.rows_streamed += streamed
        session.bytes_streamed += result.bytes_streamed
        entry = session.per_keyspace[job.keyspace]
        if result.consistent:
            entry["in_sync"] += 1
        for (a, b), _ in result.out_of_sync.items():
            pair = f"{a} <-> {b}"
            entry["out_of_sync"][pair] = entry["out_of_sync"].get(pair, 0) + 1
        entry["rows_streamed"] += streamed
        entry["bytes_streamed"] += result.bytes_streamed
        session.completed.append((job.keyspace, job.range))

    def cancel(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise InvalidRequest(f"no repair session {session_id!r} on this node")
        if session.state == "RUNNING":
            session.cancel_scope.cancel()
        return session

    def _trim(self) -> None:
        done = [s for s in self.sessions.values() if s.state != "RUNNING"]
        for s in sorted(done, key=lambda s: s.started)[
            : max(0, len(self.sessions) - MAX_SESSIONS_KEPT)
        ]:
            del self.sessions[s.id]

    # -- status -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Per keyspace: the oldest last-repair among this node's ranges, how many ranges were
        never repaired, and whether any is older than gc_grace; and the running sessions."""
        ring = self.cluster.ring
        local = self.cluster.local_host_id
        now = self.wall()
        out = []
        for ks in self.keyspaces.live():
            ranges = self.cluster.strategy(ks).ranges_for(ring, local)
            times = [self.history.last_repaired(ks.name, r) for r in ranges]
            repaired = [t for t in times if t is not None]
            never = len(times) - len(repaired)
            oldest = None if never or not repaired else min(repaired)
            out.append(
                {
                    "keyspace": ks.name,
                    "ranges": len(ranges),
                    "never_repaired": never,
                    "oldest_repair": oldest,
                    "gc_grace_seconds": ks.gc_grace_seconds,
                    # never repaired: stale once the definition is older than gc_grace
                    "stale": bool(ranges)
                    and now - (ks.timestamp / 1e6 if oldest is None else oldest)
                    > ks.gc_grace_seconds,
                }
            )
        running = [s.to_wire() for s in self.sessions.values() if s.state == "RUNNING"]
        return {"keyspaces": out, "running": running}


def _wanted(host: str, options: RepairOptions, cluster: Cluster, hosts: set[str] | None) -> bool:
    if hosts is not None:
        return host in hosts
    if options.dc is not None:
        return cluster.dc(host) == options.dc
    return True


def _overlap(a: Range, b: Range) -> bool:
    if a.is_full or b.is_full:
        return True
    return a.contains(b.end) or b.contains(a.end)


def _intersect(a: Range, b: Range) -> list[Range]:
    """The parts of vnode range ``a`` inside ``(b.start, b.end]`` (at most two pieces)."""
    if b.is_full:
        return [a]
    out = []
    for lo, hi in a.intervals():
        for blo, bhi in b.intervals():
            start, end = max(lo, blo), min(hi, bhi)
            if start <= end:  # the inclusive [start, end] as a range (start - 1, end]
                out.append(Range(MAX_TOKEN if start == MIN_TOKEN else start - 1, end))
    return out


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_reason(e) for e in exc.exceptions)
    if isinstance(exc, ProtocolError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"
