"""Consistency levels and replica plans: how many acknowledgements a request needs, and from whom.

The arithmetic follows Cassandra's ``ConsistencyLevel``:

==============  =========================================  =====================================
level           acknowledgements required                  counted from
==============  =========================================  =====================================
ANY             1 (a hint counts; writes only)             anywhere, hints included
ONE/TWO/THREE   1 / 2 / 3                                  any natural replica
QUORUM          ``n // 2 + 1``, n = sum of all dc factors  any natural replica
ALL             n                                          any natural replica
LOCAL_ONE       1                                          natural replicas in the local dc
LOCAL_QUORUM    ``factor(local dc) // 2 + 1``              natural replicas in the local dc
EACH_QUORUM     ``factor(dc) // 2 + 1`` in every dc        each dc separately
explicit w / r  the number given (1 .. n)                  any natural replica
==============  =========================================  =====================================

(With SimpleStrategy, which has no per-dc factors, LOCAL_QUORUM uses n and EACH_QUORUM is QUORUM.)

A request is *unavailable* when fewer live natural replicas exist (where they are counted) than it
requires: it then fails at once with :class:`Unavailable` before any work is done. ANY is never
unavailable: the coordinator can always store a hint.

:func:`plan_request` turns a level and the replica state into a :class:`ReplicaPlan`. Writes go to
every live natural replica; reads ask exactly the required number, preferring the coordinator
itself, then its datacenter, the first for data and the rest for digests. An :class:`AckTracker`
counts responses against a plan. :func:`fallback_nodes` lists the healthy nodes past the natural
replicas on the ring walk, where a sloppy quorum sends writes meant for dead replicas.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

from ringd.dht.ring import HostId, Ring
from ringd.locator.strategies import NetworkTopologyStrategy, ReplicationStrategy
from ringd.words import plural

__all__ = [
    "AckTracker",
    "ConsistencyLevel",
    "ReplicaPlan",
    "RequestKind",
    "Unavailable",
    "fallback_nodes",
    "plan_for_token",
    "plan_request",
    "quorum_for",
]


class ConsistencyLevel(StrEnum):
    """How many replicas must answer. The value is the wire/CLI name."""

    ANY = "ANY"
    ONE = "ONE"
    TWO = "TWO"
    THREE = "THREE"
    QUORUM = "QUORUM"
    ALL = "ALL"
    LOCAL_ONE = "LOCAL_ONE"
    LOCAL_QUORUM = "LOCAL_QUORUM"
    EACH_QUORUM = "EACH_QUORUM"

    @classmethod
    def parse(cls, text: str | ConsistencyLevel) -> ConsistencyLevel:
        """Parse a level name, case-insensitively (``"quorum"``, ``"Local_Quorum"``,
        ``"local-quorum"``). Raises ``ValueError`` listing the valid names."""
        if isinstance(text, ConsistencyLevel):
            return text
        if isinstance(text, str):
            name = text.strip().upper().replace("-", "_")
            try:
                return cls[name]
            except KeyError:
                pass
        valid = ", ".join(level.value for level in cls)
        raise ValueError(f"unknown consistency level {text!r}: expected one of {valid}")

    @property
    def is_local(self) -> bool:
        """Counted only in the coordinator's datacenter (LOCAL_ONE, LOCAL_QUORUM)."""
        return self in (ConsistencyLevel.LOCAL_ONE, ConsistencyLevel.LOCAL_QUORUM)

    @property
    def writes_only(self) -> bool:
        return self is ConsistencyLevel.ANY


class RequestKind(StrEnum):
    READ = "read"
    WRITE = "write"


class Unavailable(Exception):
    """Fewer live replicas than the request requires; nothing was attempted.

    ``dc`` names the datacenter that fell short for LOCAL_* and EACH_QUORUM, else ``None``.
    ``replicas`` is how many natural replicas exist where they were counted (alive or not):
    when it equals ``alive``, no replica is down and the replication factor exceeds the nodes.
    """

    def __init__(
        self,
        required: int,
        alive: int,
        dc: str | None = None,
        level: ConsistencyLevel | str | None = None,
        replicas: int | None = None,
    ) -> None:
        self.required = required
        self.alive = alive
        self.dc = dc
        self.level = level
        self.replicas = alive if replicas is None else replicas
        what = f"consistency level {level}" if level is not None else "the requested consistency"
        where = f" in datacenter {dc}" if dc is not None else ""
        super().__init__(
            f"cannot achieve {what}: {plural(required, 'replica')} required{where} "
            f"but only {alive} alive"
        )

    def __reduce__(
        self,
    ) -> tuple[type[Unavailable], tuple[int, int, str | None, object, int]]:
        return (Unavailable, (self.required, self.alive, self.dc, self.level, self.replicas))


def quorum_for(replication_factor: int) -> int:
    """``rf // 2 + 1``: a strict majority of ``replication_factor`` replicas."""
    return replication_factor // 2 + 1


_EMPTY: Mapping[str, int] = MappingProxyType({})


class ReplicaPlan(NamedTuple):
    """What one request needs and whom it contacts (an immutable value).

    - ``required``: acknowledgements needed in total (for EACH_QUORUM the sum of
      ``required_per_dc``, which must each be met).
    - ``counted_dc``: for LOCAL_* only acknowledgements from this datacenter count.
    - ``contacts``: for writes every live natural replica, in ring order; for reads the
      ``required`` replicas to ask, in preference order (``data_replica`` then
      ``digest_replicas``). Empty for ANY when no natural replica is alive.
    - ``hint_counts``: ANY: a hint stored for a replica counts as the acknowledgement.
    """

    kind: RequestKind
    level: ConsistencyLevel | None
    required: int
    contacts: tuple[HostId, ...]
    natural: tuple[HostId, ...]
    replica_dcs: Mapping[HostId, str]
    required_per_dc: Mapping[str, int] = _EMPTY
    counted_dc: str | None = None
    hint_counts: bool = False

    @property
    def is_write(self) -> bool:
        return self.kind is RequestKind.WRITE

    @property
    def data_replica(self) -> HostId | None:
        """Reads: the replica asked for the full data (``None`` for writes)."""
        if self.kind is RequestKind.READ and self.contacts:
            return self.contacts[0]
        return None

    @property
    def digest_replicas(self) -> tuple[HostId, ...]:
        """Reads: the replicas asked only for a digest."""
        if self.kind is RequestKind.READ:
            return self.contacts[1:]
        return ()

    def counts(self, host_id: HostId) -> bool:
        """Whether an acknowledgement from ``host_id`` counts towards ``required``."""
        dc = self.replica_dcs.get(host_id)
        if dc is None:
            return False
        return self.counted_dc is None or dc == self.counted_dc

    def tracker(self) -> AckTracker:
        return AckTracker(self)


_new_plan = ReplicaPlan._make


class AckTracker:
    """Counts acknowledgements against a :class:`ReplicaPlan`.

    ``ack(host_id)`` records a response from a natural replica (duplicates and replicas that do
    not count are ignored) and returns whether the plan is now satisfied. ``received`` is the
    number of counted acknowledgements, as reported in a timeout error.
    """

    __slots__ = ("_plan", "_acked", "_received", "_per_dc", "_hints")

    def __init__(self, plan: ReplicaPlan) -> None:
        self._plan = plan
        self._acked: set[HostId] = set()
        self._received = 0
        self._per_dc: dict[str, int] = dict.fromkeys(plan.required_per_dc, 0)
        self._hints = 0

    @property
    def received(self) -> int:
        return self._received + self._hints

    @property
    def satisfied(self) -> bool:
        plan = self._plan
        if self.received < plan.required:
            return False
        return all(self._per_dc[dc] >= need for dc, need in plan.required_per_dc.items())

    def ack(self, host_id: HostId) -> bool:
        plan = self._plan
        if host_id in self._acked or not plan.counts(host_id):
            return self.satisfied
        self._acked.add(host_id)
        self._received += 1
        if self._per_dc:
            dc = plan.replica_dcs[host_id]
            if dc in self._per_dc:
                self._per_dc[dc] += 1
        return self.satisfied

    def ack_hint(self) -> bool:
        """Record a stored hint; it counts only for ANY."""
        if self._plan.hint_counts:
            self._hints += 1
        return self.satisfied


def _check_kind(kind: RequestKind | str) -> RequestKind:
    try:
        return RequestKind(kind)
    except ValueError:
        raise ValueError(f"request kind must be 'read' or 'write', got {kind!r}") from None


def plan_request(
    kind: RequestKind | str,
    *,
    strategy: ReplicationStrategy,
    natural: Mapping[HostId, str],
    alive: Collection[HostId],
    local_dc: str,
    level: ConsistencyLevel | str | None = None,
    count: int | None = None,
    coordinator: HostId | None = None,
) -> ReplicaPlan:
    """Work out what a read or write needs.

    ``natural`` maps each natural replica to its datacenter, in ring-walk order (see
    :func:`plan_for_token`). Give either ``level`` or an explicit ``count`` (w for writes, r for
    reads). ``coordinator`` is the coordinating node's host id, preferred for reads.

    Raises :class:`Unavailable` when too few natural replicas are alive, and ``ValueError`` for a
    request that can never be satisfied as asked (ANY for a read, a count outside 1..n).
    """
    if not isinstance(kind, RequestKind):
        kind = _check_kind(kind)
    is_write = kind is RequestKind.WRITE
    rf = strategy.total_replication_factor
    natural_hosts = tuple(natural)
    replica_dcs = (
        natural if isinstance(natural, MappingProxyType) else MappingProxyType(dict(natural))
    )

    counted_dc: str | None = None
    per_dc: dict[str, int] = {}
    cl: ConsistencyLevel | None = None
    if count is not None:
        if level is not None:
            raise ValueError("give either a consistency level or an explicit count, not both")
        name = "w" if is_write else "r"
        if isinstance(count, bool) or not isinstance(count, int):
            raise ValueError(f"{name} must be an integer, got {count!r}")
        if count < 1:
            raise ValueError(f"{name}={count} must be at least 1")
        if count > rf:
            raise ValueError(f"{name}={count} exceeds replication factor {rf}")
        required = count
    else:
        if level is None:
            raise ValueError("a consistency level or an explicit count is required")
        cl = level if isinstance(level, ConsistencyLevel) else ConsistencyLevel.parse(level)
        if cl is ConsistencyLevel.ANY:
            if not is_write:
                raise ValueError("consistency level ANY is only valid for writes")
            contacts = tuple(h for h in natural_hosts if h in alive)
            return ReplicaPlan(
                kind=kind,
                level=cl,
                required=1,
                contacts=contacts,
                natural=natural_hosts,
                replica_dcs=replica_dcs,
                hint_counts=True,
            )
        if cl is ConsistencyLevel.ONE:
            required = 1
        elif cl is ConsistencyLevel.TWO:
            required = 2
        elif cl is ConsistencyLevel.THREE:
            required = 3
        elif cl is ConsistencyLevel.QUORUM:
            required = quorum_for(rf)
        elif cl is ConsistencyLevel.ALL:
            required = rf
        elif cl is ConsistencyLevel.LOCAL_ONE:
            required = 1
            counted_dc = local_dc
        elif cl is ConsistencyLevel.LOCAL_QUORUM:
            required = quorum_for(strategy.factor_for_dc(local_dc))
            counted_dc = local_dc
        elif isinstance(strategy, NetworkTopologyStrategy):  # EACH_QUORUM
            per_dc = {dc: quorum_for(f) for dc, f in strategy.factors.items() if f > 0}
            required = sum(per_dc.values())
        else:  # EACH_QUORUM without datacenters is QUORUM
            required = quorum_for(rf)

    alive_natural = [h for h in natural_hosts if h in alive]

    # Unavailable checks: count live replicas where they count.
    if per_dc:
        for dc in sorted(per_dc):
            live = sum(1 for h in alive_natural if replica_dcs[h] == dc)
            if live < per_dc[dc]:
                there = sum(1 for h in natural_hosts if replica_dcs[h] == dc)
                raise Unavailable(per_dc[dc], live, dc, cl, there)
    elif counted_dc is not None:
        live = sum(1 for h in alive_natural if replica_dcs[h] == counted_dc)
        if live < required:
            there = sum(1 for h in natural_hosts if replica_dcs[h] == counted_dc)
            raise Unavailable(required, live, counted_dc, cl, there)
    elif len(alive_natural) < required:
        raise Unavailable(required, len(alive_natural), None, cl, len(natural_hosts))

    if is_write:
        contacts = tuple(alive_natural)
    else:
        contacts = _read_contacts(
            alive_natural, replica_dcs, required, per_dc, counted_dc, local_dc, coordinator
        )
    # positional: this is on every request's path, and keyword construction costs more
    return _new_plan(
        (
            kind,
            cl,
            required,
            contacts,
            natural_hosts,
            replica_dcs,
            MappingProxyType(per_dc) if per_dc else _EMPTY,
            counted_dc,
            False,
        )
    )


def _read_contacts(
    alive_natural: Sequence[HostId],
    replica_dcs: Mapping[HostId, str],
    required: int,
    per_dc: Mapping[str, int],
    counted_dc: str | None,
    local_dc: str,
    coordinator: HostId | None,
) -> tuple[HostId, ...]:
    def rank(host_id: HostId) -> int:
        if host_id == coordinator:
            return 0
        return 1 if replica_dcs[host_id] == local_dc else 2

    # sorted() is stable: ties keep ring-walk order.
    preferred = sorted(alive_natural, key=rank)
    if per_dc:
        taken: dict[str, int] = dict.fromkeys(per_dc, 0)
        chosen: list[HostId] = []
        for host_id in preferred:
            dc = replica_dcs[host_id]
            if dc in taken and taken[dc] < per_dc[dc]:
                taken[dc] += 1
                chosen.append(host_id)
        return tuple(chosen)
    if counted_dc is not None:
        preferred = [h for h in preferred if replica_dcs[h] == counted_dc]
    return tuple(preferred[:required])


def plan_for_token(
    kind: RequestKind | str,
    *,
    ring: Ring,
    strategy: ReplicationStrategy,
    token: int,
    alive: Collection[HostId],
    local_dc: str,
    level: ConsistencyLevel | str | None = None,
    count: int | None = None,
    coordinator: HostId | None = None,
) -> ReplicaPlan:
    """:func:`plan_request` for the natural replicas of ``token`` on ``ring``."""
    return plan_request(
        kind,
        strategy=strategy,
        natural=strategy.replica_dcs(ring, token),
        alive=alive,
        local_dc=local_dc,
        level=level,
        count=count,
        coordinator=coordinator,
    )


def fallback_nodes(
    ring: Ring,
    token: int,
    natural: Collection[HostId],
    alive: Collection[HostId],
    count: int,
) -> list[HostId]:
    """The first ``count`` live nodes past the natural replicas on the clockwise walk from
    ``token`` (Dynamo's extended preference list, for sloppy quorum). May return fewer."""
    if count <= 0 or ring.is_empty:
        return []
    out: list[HostId] = []
    for host_id in ring.preference_list(token):
        if host_id in natural or host_id not in alive:
            continue
        out.append(host_id)
        if len(out) == count:
            break
    return out
