"""Garbage-collector settings for a serving ``ringd`` process (not for in-process test nodes).

Once the node listens, :func:`settle` collects once and freezes what is left (modules, the
configuration, schema, loaded sstable indexes): later full collections no longer walk it, which
shortens the pauses that otherwise land in the request path's tail latency. The young
generation is also collected less often; the request path makes short-lived containers in
bursts, most of which are gone by the next collection anyway.
"""

from __future__ import annotations

import gc

#: allocations (minus deallocations) of tracked objects between young collections (default 700)
GEN0_THRESHOLD = 10_000


def settle() -> None:
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
