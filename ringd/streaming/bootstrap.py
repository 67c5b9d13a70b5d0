"""Bootstrap: what a new node streams before it serves reads, and from whom.

The joining node has chosen its tokens and announced STATUS JOINING (with its tokens), so
coordinators send it the writes of the ranges it is about to own (pending ranges,
``Topology.pending_replicas``) while it streams. For each keyspace, each range of the future ring
(the ring with this node) that the node will replicate is streamed from the replica *losing*
it — the one that drops out of the range's replicas — so that after the join every replica set
holds at least the copies it held before (Cassandra's consistent range movement). If that replica
is down the bootstrap fails, unless ``allow_inconsistent_bootstrap``: then another live replica
of the range is the source. When no replica loses the range (fewer nodes than the replication
factor), any live replica is the source.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import trio

from ringd.dht.ring import NodeInfo, Ring
from ringd.dht.tokens import Range

log = logging.getLogger(__name__)

PLAN = "bootstrap"


class BootstrapError(Exception):
    """The node cannot bootstrap; the message is the one-line reason."""


def range_sources(
    before: Ring,
    me: NodeInfo,
    strategy: Any,
    is_alive: Callable[[str], bool],
    *,
    strict: bool,
    keyspace: str = "",
) -> dict[str, list[Range]]:
    """``{source host: [ranges]}``: every range ``me`` replicates once it joins ``before``
    (under ``strategy``) and the replica to stream it from."""
    after = before.with_node(me)
    tokens = after.tokens
    out: dict[str, list[Range]] = defaultdict(list)
    for i, token in enumerate(tokens):
        new = strategy.replicas(after, token)
        if me.host_id not in new:
            continue
        rng = Range(tokens[i - 1], token)  # i == 0: from the last token, wrapping
        old = [h for h in strategy.replicas(before, token) if h != me.host_id]
        if not old:
            continue  # nobody held it: nothing to stream
        losing = [h for h in old if h not in new]
        if strict and losing:
            source = losing[0]
            if not is_alive(source):
                raise BootstrapError(
                    f"replica {before.node(source).address} ({source}), which holds range {rng} "
                    f"of {keyspace} now, is down: a consistent bootstrap needs it; start it, or "
                    "remove it (ringctl removenode), or bootstrap from another replica with "
                    "--allow-inconsistent-bootstrap"
                )
        else:
            alive = [h for h in losing + old if is_alive(h)]
            if not alive:
                raise BootstrapError(f"no replica of range {rng} of {keyspace} is up")
            source = alive[0]
        out[source].append(rng)
    return dict(out)


async def wait_for_schema(
    local_version: Callable[[], str],
    peer_versions: Callable[[], list[str]],
    timeout: float,
    interval: float,
) -> bool:
    """Wait (at most ``timeout``) until every live peer gossips this node's schema version, so
    that the keyspaces to stream are known; whether they agreed (no live peer: nothing to
    wait for, False)."""
    with trio.move_on_after(timeout):
        while True:
            peers = peer_versions()
            if not peers:
                return False
            if all(v == local_version() for v in peers):
                return True
            await trio.sleep(interval)
    log.warning("schema versions did not agree within %g s; bootstrapping what is known", timeout)
    return False


def replace_sources(
    ring: Ring, replaced: str, strategy: Any, is_alive: Callable[[str], bool], keyspace: str = ""
) -> dict[str, list[Range]]:
    """Replace: ``{source host: [ranges]}`` for every range the dead node ``replaced``
    replicates (the replacement takes its tokens, so exactly those), each from a live other
    replica of it."""
    tokens = ring.tokens
    out: dict[str, list[Range]] = defaultdict(list)
    for i, token in enumerate(tokens):
        replicas = strategy.replicas(ring, token)
        if replaced not in replicas:
            continue
        rng = Range(tokens[i - 1], token)
        alive = [h for h in replicas if h != replaced and is_alive(h)]
        if not alive:
            if len(replicas) == 1:
                continue  # it was the only replica: the data is gone, nothing to stream
            raise BootstrapError(f"no live replica of range {rng} of {keyspace} to copy it from")
        out[alive[0]].append(rng)
    return dict(out)
