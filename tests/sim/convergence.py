"""Convergence checks after the heal: hinted handoff (``--handoff``) and repair (``--repair``).

Handoff (issue 10): with hints on and no repair, wait (virtual time) until gossip is settled
and no node has hints pending, then every acknowledged write (any level) must be on every
natural replica of its key: the replica's row holds the write's version or a newer one (a put:
a cell or row tombstone at least as new; a delete: a row tombstone at least as new). One
exclusion, which the system legitimately has: a replica that never applied the write, when the
write's coordinator went down (crash, power loss or clean stop) between the client sending the
write and the coordinator's write deadline after the acknowledgement (``acked_at +
write_timeout``). The coordinator keeps a hint only when a replica fails, times out or was down
at the start; killed before that point it kept none. No other exclusion applies here: every
node is down for at most seconds (far inside ``max_hint_window``); a power loss discards only
unsynced commit log data, and a replica acknowledges a write in batch or group mode only once
it is synced (periodic mode has no power loss in the sim); hint files are not modelled as lost
at power loss.

Repair (issue 11): hints off, so that repair alone must make the replicas agree. After the heal,
with no client operations, every node repairs its primary ranges (``-pr``) in turn; every
session must complete; then for every vnode range of the ring, the Merkle tree of the range
built from each replica's engine (``ringd.repair.validation.build_tree``) has one root.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from ringd.db.cells import Row
from ringd.dht.murmur3 import token_for
from ringd.repair.service import RepairOptions
from ringd.repair.validation import build_tree, leaf_digests

from .history import Write, describe_row

if TYPE_CHECKING:
    from .runner import Simulation

KEYSPACE = "sim"
REPAIR_TIMEOUT = 300.0  # virtual seconds per session
TREE_DEPTH = 6


def _covers(write: Write, row: Row | None) -> bool:
    """The replica's row holds ``write`` or something newer that shadows it."""
    assert write.ts is not None
    if row is None:
        return False
    tombstone = row.tombstone.timestamp if row.tombstone is not None else 0
    if write.kind == "delete":
        return tombstone >= write.ts
    newest_cell = max((c.timestamp for c in row.cells.values()), default=0)
    return max(newest_cell, tombstone) >= write.ts


def _hints_settled(sim: Simulation) -> bool:
    return sim._converged() and all(  # noqa: SLF001
        n.node is not None and not n.node.hints.pending_hosts() and not n.node.hints.dispatching
        for n in sim.nodes
    )


async def check_handoff(sim: Simulation) -> None:
    """Wait for hinted handoff to finish, then check every acknowledged write is on every
    natural replica (see the module docstring for the one exclusion)."""
    history = sim.history
    if not await sim._until(
        "hinted handoff (no node with pending hints)", lambda: _hints_settled(sim)
    ):  # noqa: SLF001
        return
    first = sim.nodes[0].node
    assert first is not None
    ks = first.schema.require(KEYSPACE)
    write_timeout = first.timeouts.write
    by_host = {n.host_id: n for n in sim.nodes}
    checked = excluded = 0
    for write in history.writes.values():
        if write.outcome != "ok" or write.ts is None or write.acked_at is None:
            continue
        coordinator = sim.nodes[write.coordinator - 1]
        lost_coordinator = any(
            write.issued <= t <= write.acked_at + write_timeout for t, _ in coordinator.downs
        )
        for host in first.topology.replicas(ks, token_for(write.key)):
            replica = by_host[host]
            node = replica.node
            assert node is not None
            checked += 1
            row = node.engine.read(KEYSPACE, write.key)
            if _covers(write, row):
                continue
            if lost_coordinator and write.ts not in replica.applied.get(write.key, ()):
                excluded += 1
                continue
            downs = [f"{how} at {t:.3f}" for t, how in replica.downs if t >= write.issued]
            history.fail(
                f"handoff: op {write.op} ({write.kind} {write.key.decode()} at {write.level} "
                f"via n{write.coordinator}, ts {write.ts}, acked at {write.acked_at:.3f}) is not "
                f"on replica n{replica.index} after handoff: it holds {describe_row(row)}; "
                f"applied there: {write.ts in replica.applied.get(write.key, ())}; "
                f"replica downs since: {downs or 'none'}"
            )
    sim.stats["handoff copies checked"] = checked
    sim.stats["handoff copies excluded"] = excluded
    sim.stats["hints delivered"] = sum(
        n.node.hints.totals()["delivered"] for n in sim.nodes if n.node is not None
    )
    history.log.append(f"handoff: {checked} copies checked, {excluded} excluded")


async def check_repair(sim: Simulation) -> None:
    """Repair every node's primary ranges in turn, then compare every range's Merkle roots."""
    history = sim.history
    streamed = 0
    for sim_node in sim.nodes:
        node = sim_node.node
        assert node is not None
        session = node.repair.start(RepairOptions(keyspaces=[KEYSPACE], primary_range=True))
        with trio.move_on_after(REPAIR_TIMEOUT):
            await session.ended.wait()
        if session.state != "COMPLETED":
            history.fail(
                f"repair -pr on n{sim_node.index}: {session.state} "
                f"({session.ranges_done}/{session.ranges_total} ranges): {session.error}"
            )
            return
        streamed += session.rows_streamed
    history.log.append(f"repair: {streamed} rows streamed")
    sim.stats["repair rows streamed"] = streamed
    compare_replicas(sim)


def compare_replicas(sim: Simulation) -> None:
    """Every vnode range's Merkle root is the same on each of its replicas."""
    first = sim.nodes[0].node
    assert first is not None
    ks = first.schema.require(KEYSPACE)
    topology = first.topology
    by_host = {n.host_id: n for n in sim.nodes}
    ranges = 0
    for rng, replicas in topology.strategy(ks).range_replicas(topology.ring):
        ranges += 1
        roots = {}
        for host in replicas:
            node = by_host[host].node
            assert node is not None
            roots[host] = build_tree(node.engine, KEYSPACE, rng, TREE_DEPTH).root
        if len(set(roots.values())) > 1:
            detail = []
            for host in replicas:
                node = by_host[host].node
                assert node is not None
                pairs = leaf_digests(node.engine, KEYSPACE, rng)
                detail.append(
                    f"n{by_host[host].index} {roots[host].hex()[:12]} "
                    f"{[(k.decode(), d.hex()[:8]) for k, d in pairs]}"
                )
            sim.history.fail(f"repair: replicas of range {rng} differ: " + "; ".join(detail))
    sim.stats["ranges compared"] = ranges
