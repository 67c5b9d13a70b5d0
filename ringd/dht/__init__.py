"""Distributed hash table: tokens, token ranges and the ring. Pure logic: no I/O, no trio.

Parts, from the bottom up:

- ``murmur3``: the Murmur3 partitioner. ``token_for(key)`` maps key bytes to the signed 64-bit
  token Cassandra's ``Murmur3Partitioner.getToken`` computes, in ``[MIN_TOKEN, MAX_TOKEN]``
  (the empty key maps to ``MIN_TOKEN``; every other key lies strictly above it).
- ``tokens``: ``Range(start, end)``, the clockwise range ``(start, end]`` that wraps past
  ``MAX_TOKEN`` when ``start >= end`` (``start == end`` is the whole ring), with ``contains``,
  ``width``/``fraction``, ``intervals`` (inclusive pieces for storage scans) and ``split``;
  ``random_tokens(n, rng)`` picks distinct vnode tokens.
- ``ring``: ``NodeInfo(host_id, address, dc, rack, tokens)`` and the immutable ``Ring`` snapshot
  built from ``{host_id: NodeInfo}``: sorted tokens, ``owner(token)``, ``range_for(token)``,
  ``ranges()`` (every vnode range with its primary owner), ``primary_ranges(host_id)``,
  ``walk``/``preference_list`` (the clockwise successor walk), and ``derived(key, compute)``
  to memoise anything computed from the snapshot (the locator caches replica lists there).

The locator (``ringd.locator``) builds replica placement on top of ``Ring``; gossip builds a new
``Ring`` whenever membership or tokens change.
"""

from ringd.dht.murmur3 import MAX_TOKEN, MIN_TOKEN, token_for
from ringd.dht.ring import EmptyRingError, HostId, NodeInfo, Ring
from ringd.dht.tokens import RING_SIZE, Range, random_tokens

__all__ = [
    "MAX_TOKEN",
    "MIN_TOKEN",
    "RING_SIZE",
    "EmptyRingError",
    "HostId",
    "NodeInfo",
    "Range",
    "Ring",
    "random_tokens",
    "token_for",
]
