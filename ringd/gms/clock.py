"""Clock offsets between nodes, measured from gossip round trips (NTP's way).

A node sends ``gossip_syn`` at its wall time ``t0``; the peer answers with its wall time ``tp``;
the answer arrives at ``t1``. The peer's clock is then ``tp - (t0 + t1) / 2`` ahead, give or take
half the round trip. Of the last few samples per peer the one with the shortest round trip is the
estimate (NTP's clock filter), so one slow exchange does not swing it.

This node's offset *from the cluster* is minus the median of {0 (itself)} and every live peer's
offset: when this node's clock is off, every peer looks off by the same amount the other way; when
one peer's clock is off, the median ignores it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from statistics import median
from typing import NamedTuple

SAMPLES = 8


class Offset(NamedTuple):
    seconds: float  # the peer's clock minus ours
    error: float  # half the round trip of the sample it came from


class ClockOffsets:
    def __init__(self, samples: int = SAMPLES) -> None:
        self._samples: dict[str, deque[Offset]] = {}
        self._size = samples

    def record(self, host_id: str, sent: float, peer_time: float, received: float) -> None:
        """One exchange: our wall times at send and receipt, the peer's wall time between."""
        if received < sent:
            return  # our clock stepped back mid-exchange: the sample means nothing
        sample = Offset(peer_time - (sent + received) / 2, (received - sent) / 2)
        self._samples.setdefault(host_id, deque(maxlen=self._size)).append(sample)

    def of(self, host_id: str) -> Offset | None:
        """The best estimate of ``host_id``'s offset from this node, if measured."""
        samples = self._samples.get(host_id)
        if not samples:
            return None
        return min(samples, key=lambda s: s.error)

    def forget(self, host_id: str) -> None:
        self._samples.pop(host_id, None)

    def local_offset(self, live_peers: Iterable[str]) -> Offset | None:
        """This node's clock minus the cluster's (the median node's); None without peers."""
        measured = [o for o in (self.of(h) for h in live_peers) if o is not None]
        if not measured:
            return None
        mid = median([0.0, *(o.seconds for o in measured)])
        error = max((o.error for o in measured), default=0.0)
        return Offset(-mid, error)
