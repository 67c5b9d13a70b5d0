"""Clock offsets between nodes, measured from gossip round trips (NTP's way).

A node sends ``gossip_syn`` at its wall time ``t0``; the peer answers with its wall time ``tp``;
the answer arrives at ``t1``. The peer's clock is then ``tp - (t0 + t1) / 2`` ahead, give or take
half the round trip. Of the last few samples per peer the one with the shortest round trip is the
estimate (NTP's clock filter), so one slow exchange does not swing it.

This node's offset *from the cluster* is minus the median of {0 (itself)} and every live peer's
offset: when this node's clock is off, every peer looks off by the same amount the other way; when
one peer's clock is off, the median ignores it. With two or more live peers it needs at least two
measured (one peer against this node cannot say which of the two is off: with a single live peer
the estimate is half the difference).

When this node's own wall clock is stepped (its wall minus monotonic time moves by more than
``STEP_S`` between samples, or within one exchange), every sample taken before is off by the step
and all are dropped; a sample taken across the step is dropped too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from statistics import median
from typing import NamedTuple

SAMPLES = 8
STEP_S = 0.05  # NTP slews at most 0.5 ms/s: a larger move between samples is a step


class Offset(NamedTuple):
    seconds: float  # the peer's clock minus ours
    error: float  # half the round trip of the sample it came from


class ClockOffsets:
    def __init__(self, samples: int = SAMPLES) -> None:
        self._samples: dict[str, deque[Offset]] = {}
        self._size = samples
        self._base: float | None = None  # our wall minus monotonic time at the last sample

    def record(
        self,
        host_id: str,
        sent: float,
        peer_time: float,
        received: float,
        *,
        monotonic: tuple[float, float] | None = None,
    ) -> None:
        """One exchange: our wall times at send and receipt, the peer's wall time between, and
        (to notice steps of our own clock) our monotonic times at send and receipt."""
        if monotonic is not None:
            base = received - monotonic[1]
            stepped_within = abs(base - (sent - monotonic[0])) > STEP_S
            if stepped_within or (self._base is not None and abs(base - self._base) > STEP_S):
                self._samples.clear()
            self._base = base
            if stepped_within:
                return
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
        """This node's clock minus the cluster's (the median node's); None without live peers,
        or with two or more of them and fewer than two measured."""
        live = list(live_peers)
        measured = [o for o in (self.of(h) for h in live) if o is not None]
        if len(measured) < min(2, len(live)):
            return None
        mid = median([0.0, *(o.seconds for o in measured)])
        error = max((o.error for o in measured), default=0.0)
        return Offset(-mid, error)
