"""Distributed hash table: tokens, ranges and the ring.

Parts:

- ``murmur3``: the Murmur3 partitioner. ``token_for(key)`` maps key bytes to the signed 64-bit
  token Cassandra's ``Murmur3Partitioner`` computes (``MIN_TOKEN`` .. ``MAX_TOKEN``).
"""
