"""Handlers behind ringctl's admin commands (status, info, ring, describe*, gossip, storage),
``ping`` and the test hooks.

``Admin`` is given the collaborators it reads (engine, schema, topology, gossiper, clock,
messaging, coordinator metrics, configuration); ``verbs`` serves it. Each view returns plain
data (documented in docs/protocol.md); ringctl renders it as tables or JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

import ringd
from ringd.config import Config
from ringd.db.engine import StorageEngine
from ringd.dht.murmur3 import token_for
from ringd.gms.gossiper import Gossiper
from ringd.gms.state import AppState
from ringd.metrics import CoordinatorMetrics
from ringd.metrics import views as metric_views
from ringd.net.messaging import FilterRule, Messaging
from ringd.net.server import Handler, Session
from ringd.protocol.errors import InvalidRequest, Unauthorized
from ringd.protocol.messages import VERBS, arg
from ringd.schema import Schema
from ringd.service import requests
from ringd.service.clock_guard import ClockGuard
from ringd.service.hlc import HybridClock
from ringd.service.topology import Topology

log = logging.getLogger(__name__)

LOAD_REPORT_INTERVAL = 5.0


MAX_TEST_CLOCK_OFFSET_MS = 86_400_000  # the test_clock hook shifts a clock by a day at most


def _raw_ownership(ring: Any) -> dict[str, float]:
    """Share of the token space each node is the primary owner of."""
    from ringd.dht.tokens import RING_SIZE

    owns: dict[str, float] = {}
    for rng, owner in ring.ranges():
        size = (rng.end - rng.start) % RING_SIZE or RING_SIZE
        owns[owner] = owns.get(owner, 0.0) + size / RING_SIZE
    return owns


def _state_of(status: str | None) -> str:
    return {"NORMAL": "NORMAL", "JOINING": "JOINING", "LEAVING": "LEAVING", "LEFT": "LEFT"}.get(
        status or "", "NORMAL"
    )


class Admin:
    """``server_counts`` gives the server's (connections, requests served); ``wall`` is the
    clock ``started_at`` was read from."""

    def __init__(
        self,
        *,
        host_id: str,
        generation: int,
        started_at: float,
        wall: Callable[[], float],
        config: Config,
        engine: StorageEngine,
        schema: Schema,
        topology: Topology,
        gossiper: Gossiper,
        clock: HybridClock,
        messaging: Messaging,
        metrics: CoordinatorMetrics,
        server_counts: Callable[[], tuple[int, int]],
        clock_guard: ClockGuard | None = None,
        repair_warnings: Callable[[], list[str]] = list,
        stages: Callable[[], dict[str, dict[str, int]]] = dict,
        hints_pending: Callable[[], list[dict[str, Any]]] = list,
        repair_status: Callable[[], dict[str, Any]] = dict,
        mode: Callable[[], str] = lambda: "NORMAL",
        streams: Callable[[], list[dict[str, Any]]] = list,
        server_limits: Callable[[], dict[str, int]] = dict,
        served: Callable[[], dict[str, dict[str, Any]]] = dict,
        repair_incoming: Callable[[], list[dict[str, Any]]] = list,
    ) -> None:
        self.host_id = host_id
        self.generation = generation
        self.started_at = started_at
        self.wall = wall
        self.config = config
        self.engine = engine
        self.schema = schema
        self.topology = topology
        self.gossiper = gossiper
        self.clock = clock
        self.messaging = messaging
        self.metrics = metrics
        self.server_counts = server_counts
        self.server_limits = server_limits
        self.clock_guard = clock_guard
        self.repair_warnings = repair_warnings
        self.stages = stages
        self.hints_pending = hints_pending
        self.repair_status = repair_status
        self.mode = mode
        self.served = served
        self.repair_incoming = repair_incoming
        self.streams = streams

    async def report_load(self) -> None:
        """Keep this node's LOAD (bytes on disk) current in gossip."""
        last = None
        while True:
            load = self.storage_load()
            if load != last:
                self.gossiper.set_application_state("LOAD", load)
                last = load
            await trio.sleep(LOAD_REPORT_INTERVAL)

    def storage_load(self) -> int:
        stats = self.engine.stats()
        return sum(
            int(s.get("bytes_on_disk", 0)) + int(s.get("memtable_bytes", 0)) for s in stats.values()
        )

    def _ownership(self, keyspace: str | None) -> tuple[dict[str, float], bool]:
        """Effective ownership per host (for the keyspace, or the one replication all share)."""
        from ringd.locator.strategies import effective_ownership

        topology = self.topology
        if keyspace is not None:
            ks = self.schema.require(keyspace)
            return effective_ownership(topology.ring, topology.strategy(ks)), True
        settings = {repr(sorted(k.replication.items())): k for k in self.schema.live()}
        if len(settings) == 1:
            ks = next(iter(settings.values()))
            return effective_ownership(topology.ring, topology.strategy(ks)), True
        return _raw_ownership(topology.ring), False

    def status(self, keyspace: str | None) -> dict[str, Any]:
        owns, effective = self._ownership(keyspace)
        gossip = self.gossiper.endpoint_states()
        topology = self.topology
        rows = []
        nodes = dict(topology.ring.nodes)
        if topology.future_ring is not None:  # joining nodes are listed too (UJ)
            for host_id, info in topology.future_ring.nodes.items():
                nodes.setdefault(host_id, info)
        for host_id, info in nodes.items():
            state = gossip.get(host_id)
            local = host_id == self.host_id
            load = self.storage_load() if local else (state.load if state is not None else None)
            offset = state.get(AppState.CLOCK_OFFSET_MS.value) if state is not None else None
            rows.append(
                {
                    "address": info.address,
                    "dc": info.dc,
                    "rack": info.rack,
                    "host_id": host_id,
                    "status": "UP" if topology.is_alive(host_id) else "DOWN",
                    "state": _state_of(state.status if state is not None else "NORMAL"),
                    "load": load or 0,
                    "tokens": len(info.tokens),
                    "owns": round(owns.get(host_id, 0.0), 6),
                    "clock_offset_ms": offset if type(offset) is int else None,
                }
            )
        rows.sort(key=lambda r: (r["dc"], r["address"]))
        return {
            "cluster": self.config.cluster_name,
            "keyspace": keyspace,
            "effective": effective,
            "nodes": rows,
            "repair_warnings": self.repair_warnings(),
        }

    def info(self) -> dict[str, Any]:
        stats = self.engine.stats()
        config, topology = self.config, self.topology
        connections, served = self.server_counts()
        return {
            "host_id": self.host_id,
            "address": config.listen,
            "cluster": config.cluster_name,
            "dc": config.dc,
            "rack": config.rack,
            "version": ringd.__version__,
            "generation": self.generation,
            "uptime_seconds": round(self.wall() - self.started_at, 1),
            "load": self.storage_load(),
            "tokens": len(topology.tokens),
            "schema_version": self.schema.version,
            "keyspaces": len(self.schema.live()),
            "live_nodes": sum(1 for h in topology.ring.nodes if topology.is_alive(h)),
            "ring_nodes": len(topology.ring.nodes),
            "sstables": sum(int(s.get("sstable_count", 0)) for s in stats.values()),
            "memtable_bytes": sum(int(s.get("memtable_bytes", 0)) for s in stats.values()),
            "commitlog_sync": config.commitlog_sync,
            "connections": connections,
            "requests": served,
            "connection_limits": self.server_limits(),
            "clock_offset_ms": self.clock.offset_ms,
            **self._measured_offset(),
            "hlc_us": self.clock.peek(),
            "test_hooks": config.enable_test_hooks,
        }

    def _measured_offset(self) -> dict[str, Any]:
        """This node's clock minus the cluster's as measured by gossip, and the bound."""
        offset = self.gossiper.local_clock_offset()
        guard = self.clock_guard
        return {
            "measured_offset_ms": None if offset is None else round(offset.seconds * 1000),
            "measured_offset_error_ms": None if offset is None else round(offset.error * 1000),
            "max_clock_offset_ms": self.config.max_clock_offset_ms,
            "writes_refused_for_clock": guard is not None and guard.exceeded_ms is not None,
        }

    def ring(self) -> dict[str, Any]:
        topology = self.topology
        entries = []
        for token, host_id in zip(topology.ring.tokens, topology.ring.token_owners, strict=True):
            info = topology.ring.node(host_id)
            entries.append(
                {
                    "token": token,
                    "address": info.address,
                    "host_id": host_id,
                    "dc": info.dc,
                    "rack": info.rack,
                    "status": "UP" if topology.is_alive(host_id) else "DOWN",
                }
            )
        return {"tokens": entries}

    def describecluster(self) -> dict[str, Any]:
        versions: dict[str, list[str]] = {}
        unreachable: list[str] = []
        gossip = self.gossiper.endpoint_states()
        topology = self.topology
        for host_id, info in topology.ring.nodes.items():
            if not topology.is_alive(host_id):
                unreachable.append(info.address)
                continue
            version = (
                self.schema.version if host_id == self.host_id else (gossip[host_id].schema or "?")
            )
            versions.setdefault(version, []).append(info.address)
        return {
            "name": self.config.cluster_name,
            "partitioner": "Murmur3Partitioner",
            "schema_versions": {v: sorted(a) for v, a in versions.items()},
            "unreachable": sorted(unreachable),
            "datacenters": sorted({i.dc for i in topology.ring.nodes.values()}),
        }

    def describering(self, keyspace: str) -> dict[str, Any]:
        ks = self.schema.require(keyspace)
        topology = self.topology
        ranges = []
        for rng, _owner in topology.ring.ranges():
            replicas = topology.replicas(ks, rng.end)
            ranges.append(
                {
                    "start_token": rng.start,
                    "end_token": rng.end,
                    "endpoints": [topology.address(h) for h in replicas],
                    "endpoint_details": [
                        {
                            "host": topology.address(h),
                            "dc": topology.dc(h),
                            "rack": topology.ring.rack_of(h),
                        }
                        for h in replicas
                    ],
                }
            )
        return {"keyspace": keyspace, "ranges": ranges}

    def getendpoints(self, keyspace: str, key: bytes) -> dict[str, Any]:
        ks = self.schema.require(keyspace)
        token = token_for(key)
        replicas = self.topology.replicas(ks, token)
        fallbacks = self.topology.fallbacks(replicas, token) if ks.sloppy_quorum else {}
        return {
            "keyspace": keyspace,
            "key": requests.key_out(key),
            "token": token,
            "endpoints": [self.topology.address(h) for h in replicas],
            "host_ids": replicas,
            # sloppy quorum: the live nodes that stand in for down replicas now
            "fallbacks": {
                self.topology.address(h): self.topology.address(f) for h, f in fallbacks.items()
            },
        }

    def tpstats(self) -> dict[str, Any]:
        return metric_views.tpstats(self.stages(), self.messaging.verbs, self.served())

    def tablehistograms(self, keyspace: str) -> dict[str, Any]:
        self.schema.require(keyspace)
        return metric_views.tablehistograms(keyspace, self.engine.table_metrics().get(keyspace))

    def netstats(self) -> dict[str, Any]:
        ring = self.topology.ring
        return metric_views.netstats(
            mode=self.mode(),
            hints=self.hints_pending(),
            addresses={h: info.address for h, info in ring.nodes.items()},
            repair=self.repair_status(),
            metrics=self.metrics,
            incoming=self.repair_incoming(),
            streams=self.streams(),
        )

    async def cleanup(self, keyspace: str | None) -> dict[str, Any]:
        """Remove the data of ``keyspace`` (or of every keyspace) that this node no longer
        replicates, after a node joined; refused while nodes are joining or leaving (the
        ranges are still moving)."""
        topology = self.topology
        if topology.changing:
            raise InvalidRequest(
                "nodes are joining or leaving the ring: cleanup would remove data still "
                "needed; run it once every node is NORMAL"
            )
        names = [keyspace] if keyspace is not None else [k.name for k in self.schema.live()]
        done = []
        for name in names:
            ks = self.schema.require(name)
            before = self.engine.stats().get(name, {}).get("bytes_on_disk", 0)
            removed = await self.engine.cleanup(name, topology.owned(ks))
            after = self.engine.stats().get(name, {}).get("bytes_on_disk", 0)
            log.info(
                "cleanup of %s: %d rows removed (%d -> %d bytes)", name, removed, before, after
            )
            done.append(
                {
                    "keyspace": name,
                    "rows_removed": removed,
                    "bytes_before": before,
                    "bytes_after": after,
                }
            )
        return {"keyspaces": done}

    def snapshot(self) -> dict[str, Any]:
        """Every metric view at once, for the Prometheus exporter."""
        return {
            "now": self.wall(),
            "tpstats": self.tpstats(),
            "netstats": self.netstats(),
            "proxyhistograms": self.metrics.summary(),
            "tablehistograms": {k.name: self.tablehistograms(k.name) for k in self.schema.live()},
            "repair": self.repair_status(),
        }

    def set_filter(self, args: dict[str, Any]) -> dict[str, Any]:
        """Test hook: add drop/delay rules for messages to the given peers, clear them, or list."""
        flt = self.messaging.filter
        action = arg(args, "action", str)
        if action == "clear":
            targets = set(arg(args, "to", list, []))
            flt.rules = [r for r in flt.rules if targets and r.to not in targets]
        elif action in ("drop", "delay"):
            targets = arg(args, "to", list)
            verbs = frozenset(arg(args, "verbs", list, []))
            unknown = sorted(str(v) for v in verbs if v not in VERBS)
            if unknown:
                raise InvalidRequest(f"unknown verbs: {', '.join(unknown)}")
            delay = arg(args, "delay_ms", int, 0)
            if action == "delay" and not 0 < delay <= 600_000:
                raise InvalidRequest("delay_ms must be between 1 and 600000")
            for to in targets:
                if not isinstance(to, str):
                    raise InvalidRequest("to must list HOST:PORT addresses")
                flt.rules.append(FilterRule(to, verbs, action, delay))
        elif action != "list":
            raise InvalidRequest("action must be drop, delay, clear or list")
        return {
            "rules": [r.to_wire() for r in flt.rules],
            "dropped": flt.dropped,
            "delayed": flt.delayed,
            "sent": self.messaging.sent,
        }

    def hooks_enabled(self) -> None:
        if not self.config.enable_test_hooks:
            raise Unauthorized(
                "test hooks are disabled on this node; start ringd with --enable-test-hooks"
            )


def verbs(admin: Admin) -> dict[str, Handler]:
    """``ping``, the admin views, flush/compact/verify and the test hooks."""
    engine, schema, clock = admin.engine, admin.schema, admin.clock

    def ping(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return {"version": ringd.__version__, "host_id": admin.host_id, "time_us": clock.peek()}

    def _status(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return admin.status(arg(args, "keyspace", str, None))

    def _info(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return admin.info()

    def _ring(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return admin.ring()

    def _describecluster(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return admin.describecluster()

    def _describering(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return admin.describering(arg(args, "keyspace", str))

    def _getendpoints(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return admin.getendpoints(arg(args, "keyspace", str), requests.key_bytes(args))

    def _gossipinfo(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return admin.gossiper.gossip_info()

    def _proxyhistograms(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return admin.metrics.summary()

    def _tpstats(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return admin.tpstats()

    def _tablehistograms(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return admin.tablehistograms(arg(args, "keyspace", str))

    def _netstats(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return admin.netstats()

    def _optional_keyspace(args: dict[str, Any]) -> str | None:
        """The ``keyspace`` argument (which must exist) or ``None`` for all keyspaces."""
        keyspace = arg(args, "keyspace", str, None)
        if keyspace is not None:
            schema.require(keyspace)
        return keyspace

    async def _flush(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        keyspace = _optional_keyspace(args)
        await engine.flush(keyspace)
        return {"flushed": keyspace or "all"}

    async def _compact(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        keyspace = _optional_keyspace(args)
        await engine.compact(keyspace)
        return {"compacted": keyspace or "all"}

    async def _cleanup(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return await admin.cleanup(_optional_keyspace(args))

    def _compactionstats(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return engine.compaction_stats()

    def _tablestats(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        keyspace = _optional_keyspace(args)
        stats = engine.stats()
        in_memory = engine.memtable_cells()
        names = [keyspace] if keyspace is not None else [k.name for k in schema.live()]
        out = {}
        for n in names:
            counts = dict(stats.get(n, _empty_stats()))
            live, tomb = in_memory.get(n, (0, 0))
            counts["live_cells"] += live
            counts["tombstone_cells"] += tomb
            out[n] = counts
        return {"keyspaces": out}

    async def _verify(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        problems = await trio.to_thread.run_sync(engine.verify)
        return {"ok": not problems, "problems": problems}

    def assassinate(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        address = arg(args, "address", str)
        try:
            host_id = admin.gossiper.assassinate(address)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        return {"address": address, "host_id": host_id}

    def test_filter(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        admin.hooks_enabled()
        return admin.set_filter(args)

    def test_clock(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        admin.hooks_enabled()
        offset = arg(args, "offset_ms", int)
        if abs(offset) > MAX_TEST_CLOCK_OFFSET_MS:
            raise InvalidRequest(
                f"offset_ms must be within ±{MAX_TEST_CLOCK_OFFSET_MS} (one day); 0 removes it"
            )
        clock.set_offset(offset)
        return {"offset_ms": offset, "wall_us": int(clock.wall_seconds() * 1e6)}

    return {
        "ping": ping,
        "status": _status,
        "info": _info,
        "ring": _ring,
        "describecluster": _describecluster,
        "describering": _describering,
        "getendpoints": _getendpoints,
        "gossipinfo": _gossipinfo,
        "proxyhistograms": _proxyhistograms,
        "tpstats": _tpstats,
        "tablehistograms": _tablehistograms,
        "netstats": _netstats,
        "flush": _flush,
        "compact": _compact,
        "cleanup": _cleanup,
        "compactionstats": _compactionstats,
        "tablestats": _tablestats,
        "verify": _verify,
        "assassinate": assassinate,
        "test_filter": test_filter,
        "test_clock": test_clock,
    }


def _empty_stats() -> dict[str, int]:
    return {
        "sstable_count": 0,
        "live_cells": 0,
        "tombstone_cells": 0,
        "bytes_on_disk": 0,
        "memtable_bytes": 0,
        "memtable_rows": 0,
    }
