"""The cluster as this node sees it: the ring built from gossip, liveness, and the schema's spread.

The ring is an immutable snapshot rebuilt whenever gossip reports a change in membership or
tokens, so a replica lookup is a bisect and a cached list. Keyspace changes are stamped by the
hybrid clock, merged locally, announced in gossip as a schema version, and pushed to live peers;
a node that sees a peer with another schema version pulls and merges its definitions.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from typing import TYPE_CHECKING, Any

import trio

from ringd.dht.ring import NodeInfo, Ring
from ringd.dht.tokens import MAX_TOKEN
from ringd.locator import consistency as cl
from ringd.locator.strategies import strategy_from_config
from ringd.protocol.errors import InvalidRequest, ProtocolError
from ringd.schema import Keyspace

if TYPE_CHECKING:
    from ringd.node import Node
    from ringd.service.proxy import Consistency

log = logging.getLogger(__name__)

# nodes that own their tokens (a SHUTDOWN node is down, not gone: it keeps its place on the ring)
RING_STATUSES = ("NORMAL", "LEAVING", "SHUTDOWN")


class Topology:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.local_host_id = node.host_id
        self.local_dc = node.config.dc
        self.ring = Ring([self._local_info()])
        self._strategies: dict[tuple[Any, ...], Any] = {}
        self._changed = trio.Event()

    def _local_info(self) -> NodeInfo:
        c = self.node.config
        return NodeInfo(self.local_host_id, c.listen, c.dc, c.rack, tuple(self.node.tokens))

    # ---- membership --------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Rebuild the ring on gossip changes; pull schema from peers that disagree."""
        gossiper = self.node.gossiper
        gossiper.subscribe(self._on_gossip)
        task_status.started()
        interval = self.node.config.gossip_interval_ms / 1000.0
        while True:
            with trio.move_on_after(interval * 4):
                await self._changed.wait()
            self._changed = trio.Event()
            self.rebuild()
            await self._sync_schema()

    def _on_gossip(self, event: str, host_id: str, state: Any) -> None:
        self._changed.set()

    def rebuild(self) -> None:
        infos = [self._local_info()]
        for host_id, state in self.node.gossiper.endpoint_states().items():
            if host_id == self.local_host_id:
                continue
            if state.status not in RING_STATUSES or not state.tokens or not state.address:
                continue
            try:
                infos.append(
                    NodeInfo(
                        host_id,
                        state.address,
                        state.dc or "dc1",
                        state.rack or "rack1",
                        tuple(state.tokens),
                    )
                )
            except ValueError as exc:
                log.warning("ignoring bad gossip state of %s: %s", host_id, exc)
        ring = Ring(infos)
        if ring != self.ring:
            self.ring = ring
            log.info("ring now has %d nodes", len(ring.nodes))

    def is_alive(self, host_id: str) -> bool:
        return host_id == self.local_host_id or self.node.gossiper.is_alive(host_id)

    def address(self, host_id: str) -> str:
        return self.ring.node(host_id).address

    def dc(self, host_id: str) -> str:
        return self.ring.dc_of(host_id)

    # ---- replicas and plans --------------------------------------------------------------

    def strategy(self, keyspace: Keyspace) -> Any:
        key = (keyspace.name, tuple(sorted(keyspace.replication.items())))
        strategy = self._strategies.get(key)
        if strategy is None:
            strategy = self._strategies[key] = strategy_from_config(keyspace.replication)
        return strategy

    def replicas(self, keyspace: Keyspace, token: int) -> list[str]:
        return list(self.strategy(keyspace).replicas(self.ring, token))

    def plan(
        self, keyspace: Keyspace, natural: list[str], consistency: Consistency, *, write: bool
    ) -> cl.ReplicaPlan:
        """Whom to contact and how many must answer; ``Unavailable`` if too few are alive."""
        try:
            plan = cl.plan_request(
                cl.RequestKind.WRITE if write else cl.RequestKind.READ,
                strategy=self.strategy(keyspace),
                natural={h: self.dc(h) for h in natural},
                alive=[h for h in natural if self.is_alive(h)],
                local_dc=self.local_dc,
                level=consistency.level or None,
                count=consistency.count,
                coordinator=self.local_host_id,
            )
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        if not plan.contacts:
            # ANY with no live replica would need a hint, which this node does not keep yet
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

    # ---- schema ------------------------------------------------------------------------

    async def change_schema(self, ks: Keyspace) -> dict[str, Any]:
        """Apply a keyspace change made through this node and spread it to the live peers."""
        node = self.node
        stamped = node.schema.with_change(ks, node.clock.now())
        stamped.validate()
        self._apply_schema([stamped])
        peers = [h for h in self.ring.nodes if h != self.local_host_id and self.is_alive(h)]
        args = {"keyspaces": [stamped.to_wire()]}
        async with trio.open_nursery() as nursery:
            for host in peers:
                nursery.start_soon(self._push_schema, self.address(host), args)
        return stamped.to_wire()

    async def _push_schema(self, address: str, args: dict[str, Any]) -> None:
        try:
            await self.node.messaging.call(address, "schema_push", args, 2.0)
        except (ProtocolError, OSError) as exc:
            log.debug("schema push to %s failed: %s (gossip will catch up)", address, exc)

    def merge_schema(self, raw: Any) -> None:
        if not isinstance(raw, list):
            raise InvalidRequest("keyspaces must be a list")
        self._apply_schema([Keyspace.from_wire(d) for d in raw])

    def _apply_schema(self, definitions: list[Keyspace]) -> None:
        node = self.node
        for ks in node.schema.merge(definitions):
            if ks.dropped:
                node.engine.drop_keyspace(ks.name)
                log.info("dropped keyspace %s", ks.name)
            else:
                log.info("keyspace %s defined: %s", ks.name, ks.replication)
        node.gossiper.set_application_state("SCHEMA", node.schema.version)

    async def _sync_schema(self) -> None:
        node = self.node
        mine = node.schema.version
        for host_id, state in node.gossiper.endpoint_states().items():
            if host_id == self.local_host_id or not self.is_alive(host_id):
                continue
            if state.schema and state.schema != mine and state.address:
                try:
                    result = await node.messaging.call(state.address, "schema_pull", {}, 2.0)
                    self.merge_schema(result.get("keyspaces", []))
                except (ProtocolError, OSError) as exc:
                    log.debug("schema pull from %s failed: %s", state.address, exc)
                mine = node.schema.version
