"""The cluster as this node sees it: the ring built from gossip, liveness, replicas and plans.

The ring is an immutable snapshot rebuilt whenever gossip reports a change in membership or
tokens, so a replica lookup is a bisect and a cached list. (The schema's spread is
``schema_sync``.)
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import trio

from ringd.dht.ring import NodeInfo, Ring
from ringd.dht.tokens import MAX_TOKEN
from ringd.gms.gossiper import Gossiper
from ringd.locator import consistency as cl
from ringd.locator.strategies import strategy_from_config
from ringd.protocol.errors import InvalidRequest
from ringd.schema import Keyspace

if TYPE_CHECKING:
    from ringd.service.coordination import Consistency

log = logging.getLogger(__name__)

# nodes that own their tokens (a SHUTDOWN node is down, not gone: it keeps its place on the ring)
PLAN_CACHE_SIZE = 4096
RING_STATUSES = ("NORMAL", "LEAVING", "SHUTDOWN")


class Topology:
    """This node (``host_id`` at ``address`` in ``dc``/``rack`` with ``tokens``) and the peers
    ``gossiper`` reports; ``interval``: rebuild at least this often (seconds)."""

    def __init__(
        self,
        *,
        host_id: str,
        address: str,
        dc: str,
        rack: str,
        tokens: Sequence[int],
        gossiper: Gossiper,
        interval: float,
    ) -> None:
        self.local_host_id = host_id
        self.local_address = address
        self.local_dc = dc
        self.local_rack = rack
        self.tokens = list(tokens)  # this node's; node.py replaces them once chosen
        self.gossiper = gossiper
        self.interval = interval
        self.ring = Ring([self._local_info()])
        #: this node announced JOINING (bootstrapping): not on the ring yet, only pending
        self.local_joining = False
        #: the host id of the dead node this (joining) node replaces, if any
        self.local_replaces: str | None = None
        #: the ring once the JOINING nodes joined and the LEAVING ones left; None when nobody
        #: is joining or leaving (then no range is pending)
        self.future_ring: Ring | None = None
        #: the nodes joining or leaving (this one included)
        self.changing: frozenset[str] = frozenset()
        self._strategies: dict[tuple[Any, ...], Any] = {}
        #: replica plans by (strategy, natural, alive, level, count, write); cleared when the
        #: ring changes (plans are immutable values)
        self._plans: dict[tuple[Any, ...], cl.ReplicaPlan] = {}
        #: what each node's ring entry was built from, as gossip last told it
        self._membership: dict[str, tuple[Any, ...]] = {}

    def local_node(self) -> NodeInfo:
        """This node as the ring knows it (whether or not it is on the ring yet)."""
        return self._local_info()

    def _local_info(self) -> NodeInfo:
        return NodeInfo(
            self.local_host_id,
            self.local_address,
            self.local_dc,
            self.local_rack,
            tuple(self.tokens),
        )

    # ---- membership --------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow gossip (``_on_gossip``), and rebuild the ring every four gossip intervals."""
        self.gossiper.subscribe(self._on_gossip)
        task_status.started()
        while True:
            await trio.sleep(self.interval * 4)
            self.rebuild()

    def _on_gossip(self, event: str, host_id: str, state: Any) -> None:
        """A change of what the ring is built from (status, tokens, address, dc, rack,
        replaces) is applied at once, inside the gossip update: a node that announces LEFT is
        marked down right after, and a write planned in between counted it as a replica that
        is down (UNAVAILABLE); a JOINING node gets the writes of its ranges from then on.
        Other news (liveness, load, schema) cannot change the ring."""
        key = (state.status, state.tokens, state.address, state.dc, state.rack, state.replaces)
        if self._membership.get(host_id) != key:
            self._membership[host_id] = key
            self.rebuild()

    def rebuild(self) -> None:
        """The ring from gossip (nodes NORMAL, LEAVING or SHUTDOWN), and the future ring when
        nodes are JOINING or LEAVING."""
        local = self._local_info()
        infos = [] if self.local_joining else [local]
        joining = [local] if self.local_joining else []
        leaving: set[str] = set()
        replaced: set[str] = set()  # dead nodes a NORMAL node took the tokens of
        states = self.gossiper.endpoint_states()
        for state in states.values():
            if state.replaces is None:
                continue
            if state.status == "JOINING":
                leaving.add(state.replaces)  # its replacement takes its ranges over
            elif state.status in RING_STATUSES:
                replaced.add(state.replaces)
        for host_id, state in states.items():
            if host_id == self.local_host_id:
                if state.status == "LEAVING":
                    leaving.add(host_id)
                continue
            if host_id in replaced:
                continue
            status = state.status
            if status not in (*RING_STATUSES, "JOINING") or not state.tokens or not state.address:
                continue
            try:
                info = NodeInfo(
                    host_id,
                    state.address,
                    state.dc or "dc1",
                    state.rack or "rack1",
                    tuple(state.tokens),
                )
            except ValueError as exc:
                log.warning("ignoring bad gossip state of %s: %s", host_id, exc)
                continue
            if status == "JOINING":
                joining.append(info)
            else:
                infos.append(info)
                if status == "LEAVING":
                    leaving.add(host_id)
        try:
            ring = Ring(infos)
        except ValueError as exc:  # two nodes claim a token: keep the last good ring
            log.warning("ignoring a gossip change: %s", exc)
            return
        leaving &= set(ring.nodes)
        future = None
        if joining or leaving:
            staying = [i for i in infos if i.host_id not in leaving]
            try:
                future = Ring(staying + joining)
            except ValueError as exc:  # a joining node claims a token already taken
                log.warning("ignoring joining nodes: %s", exc)
        self.changing = frozenset([i.host_id for i in joining] + sorted(leaving))
        if future != self.future_ring:
            self.future_ring = future
            self._plans.clear()
        if ring != self.ring:
            self.ring = ring
            self._plans.clear()
            log.info("ring now has %d nodes", len(ring.nodes))

    def owned(self, keyspace: Keyspace) -> Callable[[int], bool]:
        """Whether this node replicates a token of ``keyspace`` on the current ring (a pure
        function of a snapshot: safe in a worker thread)."""
        ring, strategy, me = self.ring, self.strategy(keyspace), self.local_host_id
        tokens = ring.tokens
        if not tokens:
            return lambda token: True
        mine = [me in strategy.replicas(ring, t) for t in tokens]

        def keep(token: int) -> bool:
            i = bisect_left(tokens, token)
            return mine[i if i < len(tokens) else 0]

        return keep

    def pending_replicas(self, keyspace: Keyspace, token: int) -> list[str]:
        """Nodes that will replicate ``token`` once the nodes joining or leaving are done, and
        do not now: writes go to them too (Cassandra's pending ranges)."""
        future = self.future_ring
        if future is None or future.is_empty:
            return []
        natural = self.replicas(keyspace, token)
        return [h for h in self.strategy(keyspace).replicas(future, token) if h not in natural]

    def is_alive(self, host_id: str) -> bool:
        return host_id == self.local_host_id or self.gossiper.is_alive(host_id)

    def _node(self, host_id: str) -> NodeInfo:
        nodes = self.ring.nodes
        if host_id in nodes or self.future_ring is None:
            return nodes[host_id]
        return self.future_ring.nodes[host_id]

    def address(self, host_id: str) -> str:
        return self._node(host_id).address

    def dc(self, host_id: str) -> str:
        return self._node(host_id).dc

    # ---- replicas and plans --------------------------------------------------------------

    def strategy(self, keyspace: Keyspace) -> Any:
        key = (keyspace.name, tuple(sorted(keyspace.replication.items())))
        strategy = self._strategies.get(key)
        if strategy is None:
            strategy = self._strategies[key] = strategy_from_config(keyspace.replication)
        return strategy

    def replicas(self, keyspace: Keyspace, token: int) -> list[str]:
        return list(self.strategy(keyspace).replicas(self.ring, token))

    def fallbacks(self, natural: list[str], token: int) -> dict[str, str]:
        """Sloppy quorum: for each natural replica that is down, the first live node past the
        natural replicas on the ring walk from ``token`` in the same datacenter (each used once;
        Dynamo's extended preference list). Down replicas with no such node are left out."""
        down = [h for h in natural if not self.is_alive(h)]
        if not down:
            return {}
        used = set(natural)
        out: dict[str, str] = {}
        candidates = [
            h for h in self.ring.preference_list(token) if h not in used and self.is_alive(h)
        ]
        for host in down:
            dc = self.dc(host)
            pick = next((c for c in candidates if self.dc(c) == dc), None)
            if pick is not None:
                out[host] = pick
                candidates.remove(pick)
        return out

    def request_replicas(
        self, keyspace: Keyspace, token: int, *, sloppy: bool
    ) -> tuple[list[str], dict[str, str]]:
        """The replicas a read or write of ``token`` goes to: the natural ones, and with
        ``sloppy`` (sloppy quorum) each down one replaced by its stand-in (:meth:`fallbacks`);
        and the stand-ins as ``{stand-in: the replica it stands for}``."""
        natural = self.replicas(keyspace, token)
        if not sloppy:
            return natural, {}
        stand_ins = {f: h for h, f in self.fallbacks(natural, token).items()}
        if not stand_ins:
            return natural, {}
        by_replica = {h: f for f, h in stand_ins.items()}
        return [by_replica.get(n, n) for n in natural], stand_ins

    def plan(
        self, keyspace: Keyspace, natural: list[str], consistency: Consistency, *, write: bool
    ) -> cl.ReplicaPlan:
        """Whom to contact and how many must answer; ``Unavailable`` if too few are alive.
        The same question (replicas, who of them is alive, level) gets the same plan, from a
        small cache."""
        strategy = self.strategy(keyspace)
        alive = tuple(h for h in natural if self.is_alive(h))
        key = (strategy, tuple(natural), alive, consistency.level, consistency.count, write)
        plan = self._plans.get(key)
        if plan is None:
            try:
                plan = cl.plan_request(
                    cl.RequestKind.WRITE if write else cl.RequestKind.READ,
                    strategy=strategy,
                    natural={h: self.dc(h) for h in natural},
                    alive=alive,
                    local_dc=self.local_dc,
                    level=consistency.level or None,
                    count=consistency.count,
                    coordinator=self.local_host_id,
                )
            except ValueError as exc:
                raise InvalidRequest(str(exc)) from None
            if len(self._plans) >= PLAN_CACHE_SIZE:
                self._plans.clear()
            self._plans[key] = plan
        if not plan.contacts and not plan.hint_counts:
            raise cl.Unavailable(plan.required, 0, replicas=len(natural))
        return plan

    def segment_after(
        self, keyspace: Keyspace, cursor: tuple[int, bytes | None]
    ) -> tuple[int, list[str]] | None:
        """The token segment ``(previous ring token, end]`` where a scan continues after
        ``cursor``, as its end token and natural replicas; ``None`` past the last token."""
        token, key = cursor
        if key is None:
            if token >= MAX_TOKEN:
                return None
            token += 1
        tokens = self.ring.tokens
        i = bisect_left(tokens, token)
        end = tokens[i] if i < len(tokens) else MAX_TOKEN
        return end, self.replicas(keyspace, end)
