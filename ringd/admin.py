"""Handlers behind ringctl's admin commands: status, info, ring, describe*, gossip, storage.

Each returns plain data (documented in docs/protocol.md); ringctl renders it as tables or JSON.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import trio

import ringd
from ringd.dht.murmur3 import token_for
from ringd.net.messaging import FilterRule
from ringd.net.server import Handler, Session
from ringd.protocol.errors import InvalidRequest
from ringd.protocol.messages import VERBS, arg
from ringd.service import requests

if TYPE_CHECKING:
    from ringd.node import Node

LOAD_REPORT_INTERVAL = 5.0


async def report_load(node: Node) -> None:
    """Keep this node's LOAD (bytes on disk) current in gossip."""
    last = None
    while True:
        load = storage_load(node)
        if load != last:
            node.gossiper.set_application_state("LOAD", load)
            last = load
        await trio.sleep(LOAD_REPORT_INTERVAL)


def storage_load(node: Node) -> int:
    stats = node.engine.stats()
    return sum(
        int(s.get("bytes_on_disk", 0)) + int(s.get("memtable_bytes", 0)) for s in stats.values()
    )


def _ownership(node: Node, keyspace: str | None) -> tuple[dict[str, float], bool]:
    """Effective ownership per host (for the keyspace, or the one replication all share)."""
    from ringd.locator.strategies import effective_ownership

    topology = node.topology
    if keyspace is not None:
        ks = node.schema.require(keyspace)
        return effective_ownership(topology.ring, topology.strategy(ks)), True
    settings = {repr(sorted(k.replication.items())): k for k in node.schema.live()}
    if len(settings) == 1:
        ks = next(iter(settings.values()))
        return effective_ownership(topology.ring, topology.strategy(ks)), True
    return _raw_ownership(topology.ring), False


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


def status(node: Node, keyspace: str | None) -> dict[str, Any]:
    owns, effective = _ownership(node, keyspace)
    gossip = node.gossiper.endpoint_states()
    ring = node.topology.ring
    rows = []
    for host_id, info in ring.nodes.items():
        state = gossip.get(host_id)
        local = host_id == node.host_id
        load = storage_load(node) if local else (state.load if state is not None else None)
        rows.append(
            {
                "address": info.address,
                "dc": info.dc,
                "rack": info.rack,
                "host_id": host_id,
                "status": "UP" if node.topology.is_alive(host_id) else "DOWN",
                "state": _state_of(state.status if state is not None else "NORMAL"),
                "load": load or 0,
                "tokens": len(info.tokens),
                "owns": round(owns.get(host_id, 0.0), 6),
            }
        )
    rows.sort(key=lambda r: (r["dc"], r["address"]))
    return {
        "cluster": node.config.cluster_name,
        "keyspace": keyspace,
        "effective": effective,
        "nodes": rows,
    }


def info(node: Node) -> dict[str, Any]:
    stats = node.engine.stats()
    return {
        "host_id": node.host_id,
        "address": node.config.listen,
        "cluster": node.config.cluster_name,
        "dc": node.config.dc,
        "rack": node.config.rack,
        "version": ringd.__version__,
        "generation": node.generation,
        "uptime_seconds": round(time.time() - node.started_at, 1),
        "load": storage_load(node),
        "tokens": len(node.tokens),
        "schema_version": node.schema.version,
        "keyspaces": len(node.schema.live()),
        "live_nodes": sum(1 for h in node.topology.ring.nodes if node.topology.is_alive(h)),
        "ring_nodes": len(node.topology.ring.nodes),
        "sstables": sum(int(s.get("sstable_count", 0)) for s in stats.values()),
        "memtable_bytes": sum(int(s.get("memtable_bytes", 0)) for s in stats.values()),
        "commitlog_sync": node.config.commitlog_sync,
        "connections": node.server.connections,
        "requests": node.server.requests,
        "clock_offset_ms": node.clock.offset_ms,
        "hlc_us": node.clock.peek(),
        "test_hooks": node.config.enable_test_hooks,
    }


def ring(node: Node) -> dict[str, Any]:
    topology = node.topology
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


def describecluster(node: Node) -> dict[str, Any]:
    versions: dict[str, list[str]] = {}
    unreachable: list[str] = []
    gossip = node.gossiper.endpoint_states()
    for host_id, info in node.topology.ring.nodes.items():
        if not node.topology.is_alive(host_id):
            unreachable.append(info.address)
            continue
        version = (
            node.schema.version if host_id == node.host_id else (gossip[host_id].schema or "?")
        )
        versions.setdefault(version, []).append(info.address)
    return {
        "name": node.config.cluster_name,
        "partitioner": "Murmur3Partitioner",
        "schema_versions": {v: sorted(a) for v, a in versions.items()},
        "unreachable": sorted(unreachable),
        "datacenters": sorted({i.dc for i in node.topology.ring.nodes.values()}),
    }


def describering(node: Node, keyspace: str) -> dict[str, Any]:
    ks = node.schema.require(keyspace)
    topology = node.topology
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


def getendpoints(node: Node, keyspace: str, key: bytes) -> dict[str, Any]:
    ks = node.schema.require(keyspace)
    token = token_for(key)
    replicas = node.topology.replicas(ks, token)
    return {
        "keyspace": keyspace,
        "key": requests.key_out(key),
        "token": token,
        "endpoints": [node.topology.address(h) for h in replicas],
        "host_ids": replicas,
    }


def set_filter(node: Node, args: dict[str, Any]) -> dict[str, Any]:
    """Test hook: add drop/delay rules for messages to the given peers, clear them, or list."""
    flt = node.messaging.filter
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
        "sent": node.messaging.sent,
    }


def table(node: Node) -> dict[str, Handler]:
    def _status(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return status(node, arg(args, "keyspace", str, None))

    def _info(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return info(node)

    def _ring(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return ring(node)

    def _describecluster(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return describecluster(node)

    def _describering(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return describering(node, arg(args, "keyspace", str))

    def _getendpoints(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return getendpoints(node, arg(args, "keyspace", str), requests.key_bytes(args))

    def _gossipinfo(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return node.gossiper.gossip_info()

    def _proxyhistograms(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        proxy = node.proxy
        return {
            "read": proxy.read_latency.summary(),
            "write": proxy.write_latency.summary(),
            "range": proxy.range_latency.summary(),
            "counters": dict(proxy.counters),
        }

    def _optional_keyspace(args: dict[str, Any]) -> str | None:
        """The ``keyspace`` argument (which must exist) or ``None`` for all keyspaces."""
        keyspace = arg(args, "keyspace", str, None)
        if keyspace is not None:
            node.schema.require(keyspace)
        return keyspace

    async def _flush(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        keyspace = _optional_keyspace(args)
        await node.engine.flush(keyspace)
        return {"flushed": keyspace or "all"}

    async def _compact(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        keyspace = _optional_keyspace(args)
        await node.engine.compact(keyspace)
        return {"compacted": keyspace or "all"}

    def _compactionstats(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return node.engine.compaction_stats()

    def _tablestats(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        keyspace = _optional_keyspace(args)
        stats = node.engine.stats()
        in_memory = node.engine.memtable_cells()
        names = [keyspace] if keyspace is not None else [k.name for k in node.schema.live()]
        out = {}
        for n in names:
            counts = dict(stats.get(n, _empty_stats()))
            live, tomb = in_memory.get(n, (0, 0))
            counts["live_cells"] += live
            counts["tombstone_cells"] += tomb
            out[n] = counts
        return {"keyspaces": out}

    async def _verify(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        problems = await trio.to_thread.run_sync(node.engine.verify)
        return {"ok": not problems, "problems": problems}

    return {
        "status": _status,
        "info": _info,
        "ring": _ring,
        "describecluster": _describecluster,
        "describering": _describering,
        "getendpoints": _getendpoints,
        "gossipinfo": _gossipinfo,
        "proxyhistograms": _proxyhistograms,
        "flush": _flush,
        "compact": _compact,
        "compactionstats": _compactionstats,
        "tablestats": _tablestats,
        "verify": _verify,
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
