"""Keyspace definitions spread across the cluster, and the schema verbs.

A keyspace change made through this node is stamped by the hybrid clock, merged locally,
announced in gossip as a schema version and pushed to the live peers (``schema_push``); a node
that sees a live peer with another schema version pulls its definitions (``schema_pull``) and
merges them. For the same name the larger timestamp wins everywhere.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from ringd.db.engine import StorageEngine
from ringd.gms.gossiper import Gossiper
from ringd.net.messaging import Messaging
from ringd.net.server import Handler, Session
from ringd.protocol.errors import InvalidRequest, ProtocolError
from ringd.schema import Keyspace, Schema
from ringd.service.hlc import HybridClock
from ringd.service.messages import (
    SchemaPullRequest,
    SchemaPullResponse,
    SchemaPushRequest,
    SchemaPushResponse,
)
from ringd.service.topology import Topology

log = logging.getLogger(__name__)


class SchemaSync:
    def __init__(
        self,
        *,
        schema: Schema,
        engine: StorageEngine,
        clock: HybridClock,
        gossiper: Gossiper,
        topology: Topology,
        messaging: Messaging,
        timeout: float,
        interval: float,
        max_future_ms: int = 60_000,
    ) -> None:
        self.max_future_ms = max_future_ms  # a peer's definition stamped further ahead: refused
        self.schema = schema
        self.engine = engine
        self.clock = clock
        self.gossiper = gossiper
        self.topology = topology
        self.messaging = messaging
        self.timeout = timeout  # of one push or pull
        self.interval = interval  # compare versions at least every four of these (seconds)
        self._changed = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Pull definitions from live peers whose schema version differs, on gossip changes."""
        self.gossiper.subscribe(self._on_gossip)
        task_status.started()
        while True:
            with trio.move_on_after(self.interval * 4):
                await self._changed.wait()
            self._changed = trio.Event()
            await self._sync()

    def _on_gossip(self, event: str, host_id: str, state: Any) -> None:
        self._changed.set()

    async def change(self, ks: Keyspace) -> dict[str, Any]:
        """Apply a keyspace change made through this node and spread it to the live peers."""
        stamped = self.schema.with_change(ks, self.clock.now())
        stamped.validate()
        self.apply([stamped])
        topology = self.topology
        peers = [
            h for h in topology.ring.nodes if h != topology.local_host_id and topology.is_alive(h)
        ]
        args = SchemaPushRequest((stamped,)).to_wire()
        async with trio.open_nursery() as nursery:
            for host in peers:
                nursery.start_soon(self._push, topology.address(host), args)
        return stamped.to_wire()

    async def _push(self, address: str, args: dict[str, Any]) -> None:
        try:
            await self.messaging.call(address, "schema_push", args, self.timeout)
        except (ProtocolError, OSError) as exc:
            log.debug("schema push to %s failed: %s (gossip will catch up)", address, exc)

    def apply(self, definitions: list[Keyspace] | tuple[Keyspace, ...]) -> None:
        """Merge definitions; drop the data of dropped keyspaces; announce the new version."""
        for ks in self.schema.merge(list(definitions)):
            if ks.dropped:
                self.engine.drop_keyspace(ks.name)
                log.info("dropped keyspace %s", ks.name)
            else:
                log.info("keyspace %s defined: %s", ks.name, ks.replication)
        self.gossiper.set_application_state("SCHEMA", self.schema.version)

    def check_from_peer(self, definitions: tuple[Keyspace, ...]) -> None:
        """INVALID (nothing applied) if a peer's definition is stamped further ahead of this
        node's clock than ``max_future_timestamp_ms``: such a change (a drop, say) could never
        be overridden by a real one."""
        limit_us = self.clock.wall_seconds() * 1_000_000 + self.max_future_ms * 1000
        for ks in definitions:
            if ks.timestamp > limit_us:
                ahead_ms = int((ks.timestamp - limit_us) / 1000) + self.max_future_ms
                raise InvalidRequest(
                    f"keyspace definition {ks.name!r} is stamped {ahead_ms} ms ahead of this "
                    f"node's clock (limit max_future_timestamp_ms {self.max_future_ms}); refused"
                )

    async def _sync(self) -> None:
        topology = self.topology
        mine = self.schema.version
        for host_id, state in self.gossiper.endpoint_states().items():
            if host_id == topology.local_host_id or not topology.is_alive(host_id):
                continue
            if state.schema and state.schema != mine and state.address:
                try:
                    value = await self.messaging.call(
                        state.address, "schema_pull", SchemaPullRequest().to_wire(), self.timeout
                    )
                    pulled = SchemaPullResponse.from_wire(value).keyspaces
                    self.check_from_peer(pulled)
                    self.apply(pulled)
                except (ProtocolError, OSError) as exc:
                    log.debug("schema pull from %s failed: %s", state.address, exc)
                mine = self.schema.version


def verbs(sync: SchemaSync) -> dict[str, Handler]:
    """``schema_pull`` (every definition held, dropped ones too) and ``schema_push``."""

    def schema_pull(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        SchemaPullRequest.from_wire(args)
        return SchemaPullResponse(tuple(sync.schema.all_definitions())).to_wire()

    def schema_push(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        pushed = SchemaPushRequest.from_wire(args).keyspaces
        sync.check_from_peer(pushed)
        sync.apply(pushed)
        return SchemaPushResponse(sync.schema.version).to_wire()

    return {"schema_pull": schema_pull, "schema_push": schema_push}
