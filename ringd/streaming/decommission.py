"""Decommission: a live node hands its ranges to the nodes that take them over, then leaves.

The node checks that no keyspace would lose replicas (fewer nodes than its replication factor)
and that no other node is joining or leaving (one change at a time), announces STATUS LEAVING
(coordinators send the writes of its ranges to the nodes gaining them too: pending ranges),
waits until every node has seen that, and asks each node gaining a range to pull it from it
(``stream_request``; the receiver records what it received under the plan
``decommission-HOST``, so a decommission restarted after a crash streams only what is missing).
Then it hands its stored hints to another node (each stays a hint for its target), announces
LEFT, and stops; its data directory is marked so that it cannot silently rejoin.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ringd.dht.ring import Ring
from ringd.dht.tokens import Range

log = logging.getLogger(__name__)

PLAN_PREFIX = "decommission-"
REQUEST_TIMEOUT_S = 24 * 3600.0  # one stream_request waits for its whole session

Call = Callable[[str, str, dict[str, Any], float], Awaitable[Any]]


class DecommissionError(Exception):
    """Decommission refused or failed; the message says why."""


def check_replicas(ring: Ring, leaving: str, strategy: Any, keyspace: str) -> None:
    """``DecommissionError`` if a range of ``keyspace`` would have fewer replicas without
    ``leaving`` (too few nodes for its replication factor)."""
    future = ring.without_node(leaving)
    for token in ring.tokens:
        now, after = len(strategy.replicas(ring, token)), len(strategy.replicas(future, token))
        if after < now:
            raise DecommissionError(
                f"keyspace {keyspace} would have {after} replicas instead of {now} without this "
                "node: its replication factor needs more nodes (lower it, or add a node first)"
            )


def range_targets(ring: Ring, leaving: str, strategy: Any) -> dict[str, list[Range]]:
    """``{gaining host: [ranges]}``: every range ``leaving`` replicates now, for each node that
    replicates it once ``leaving`` is gone and does not now."""
    future = ring.without_node(leaving)
    tokens = ring.tokens
    out: dict[str, list[Range]] = defaultdict(list)
    for i, token in enumerate(tokens):
        old = strategy.replicas(ring, token)
        if leaving not in old:
            continue
        for host in strategy.replicas(future, token):
            if host not in old:
                out[host].append(Range(tokens[i - 1], token))
    return dict(out)


def removal_targets(
    ring: Ring, removed: str, strategy: Any, is_alive: Callable[[str], bool], keyspace: str = ""
) -> dict[tuple[str, str], list[Range]]:
    """Removenode: ``{(gaining host, source host): [ranges]}`` for every range the dead node
    ``removed`` replicated: each node that replicates it without ``removed`` and does not now
    streams it from a live surviving replica. ``DecommissionError`` if a range has none."""
    future = ring.without_node(removed)
    tokens = ring.tokens
    out: dict[tuple[str, str], list[Range]] = defaultdict(list)
    for i, token in enumerate(tokens):
        old = strategy.replicas(ring, token)
        if removed not in old:
            continue
        rng = Range(tokens[i - 1], token)
        gaining = [h for h in strategy.replicas(future, token) if h not in old]
        if not gaining:
            continue
        sources = [h for h in old if h != removed and is_alive(h)]
        if not sources:
            raise DecommissionError(
                f"no live replica of range {rng} of {keyspace} is left to copy it from "
                "(start one, or 'removenode force' and accept the loss)"
            )
        for host in gaining:
            out[(host, sources[0])].append(rng)
    return dict(out)


async def request_streams(
    call: Call, plan: str, targets: list[tuple[str, str, str, list[Range]]]
) -> list[dict[str, Any]]:
    """Ask each ``(keyspace, target address, source address, ranges)`` target to pull its
    ranges from the source, all at once; their sessions; ``DecommissionError`` naming the
    first failure."""
    sessions: list[dict[str, Any]] = []
    errors: list[str] = []

    async def one(ks: str, address: str, source: str, ranges: list[Range]) -> None:
        args = {
            "plan": plan,
            "source": source,
            "ks": ks,
            "ranges": [[r.start, r.end] for r in ranges],
        }
        try:
            sessions.append(await call(address, "stream_request", args, REQUEST_TIMEOUT_S))
        except Exception as exc:  # a failure of one target fails the whole change
            errors.append(f"{address} could not take {len(ranges)} ranges of {ks}: {exc}")

    async with trio.open_nursery() as nursery:
        for ks, address, source, ranges in targets:
            nursery.start_soon(one, ks, address, source, ranges)
    if errors:
        raise DecommissionError(errors[0])
    return sessions
