"""Replica placement and consistency arithmetic. Pure logic: no I/O, no trio.

Parts:

- ``strategies``: where replicas live. ``SimpleStrategy(rf)`` takes the first rf distinct nodes
  clockwise from the key's token; ``NetworkTopologyStrategy({dc: factor})`` fills each
  datacenter's factor on the same walk, spreading over racks as Cassandra does. Both give
  ``replicas(ring, token)`` in ring-walk order, cached per vnode range on the immutable
  ``ringd.dht.Ring`` snapshot, plus ``total_replication_factor``, ``factor_for_dc(dc)``,
  ``replica_dcs(ring, token)`` (replicas with their dc, cached), ``range_replicas(ring)`` and
  ``ranges_for(ring, host_id)``. ``strategy_from_config`` parses a keyspace's ``replication``
  setting (``ValueError`` on anything invalid) and ``effective_ownership`` gives each node's
  replicated share of the token space, as ``nodetool status`` "Owns (effective)".
- ``consistency``: ``ConsistencyLevel`` (ANY, ONE, TWO, THREE, QUORUM, ALL, LOCAL_ONE,
  LOCAL_QUORUM, EACH_QUORUM), ``plan_request``/``plan_for_token``, which turn a level or an
  explicit w/r plus the live replicas into a ``ReplicaPlan`` (required acknowledgements, per-dc
  requirements, whom to contact) or raise ``Unavailable(required, alive, dc)``; ``AckTracker``
  counts responses against a plan; ``fallback_nodes`` lists the healthy nodes past the natural
  replicas for sloppy quorum.

The coordinator (``ringd.service``) asks the strategy for a key's natural replicas, plans the
request against the failure detector's view of who is alive, and tracks acknowledgements.
"""

from ringd.locator.consistency import (
    AckTracker,
    ConsistencyLevel,
    ReplicaPlan,
    RequestKind,
    Unavailable,
    fallback_nodes,
    plan_for_token,
    plan_request,
    quorum_for,
)
from ringd.locator.strategies import (
    NetworkTopologyStrategy,
    ReplicationStrategy,
    SimpleStrategy,
    effective_ownership,
    strategy_from_config,
)

__all__ = [
    "AckTracker",
    "ConsistencyLevel",
    "NetworkTopologyStrategy",
    "ReplicaPlan",
    "ReplicationStrategy",
    "RequestKind",
    "SimpleStrategy",
    "Unavailable",
    "effective_ownership",
    "fallback_nodes",
    "plan_for_token",
    "plan_request",
    "quorum_for",
    "strategy_from_config",
]
