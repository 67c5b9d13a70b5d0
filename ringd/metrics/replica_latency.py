"""One-way replica latencies for consistency prediction (PBS): W, A, R and S.

PBS (probabilistically bounded staleness, Bailis et al.; Cassandra's CASSANDRA-4261) models a
request to a replica as two one-way trips: a write's **W** (coordinator sends ``mutate`` until
the replica has applied it) and **A** (the acknowledgement back), a read's **R** (coordinator
sends ``read_local`` until the replica reads) and **S** (the response back). The coordinator
sees only the round trip, so each remote answer is split with the replica's clock: the answer
carries the replica's hybrid-clock reading when it applied or read (``hlc``, µs), the
coordinator knows its own wall clock at the send (now minus the round trip) and the peer's clock
offset measured by gossip (``ringd.gms.clock``), so

    out  = replica_hlc - peer_offset - send_wall      (clamped to [0, round trip])
    back = round trip - out

When the clocks cannot be trusted for this answer (the estimate falls outside the round trip by
more than the offset's own error) the round trip is split in half. See docs/metrics.md.

Each trip is a decaying ``Histogram`` (recent one to two minutes), exported as HDR buckets
(``[[value_us, count], ...]``) for ``ringctl predictconsistency``. **Cost**: a recorded answer
costs about 2 µs, so at most ``TARGET_PER_S`` answers are recorded per second (the first ones of
each second; a skipped answer costs two comparisons). A few hundred answers a second describe
the distributions as well as all of them, and a quiet cluster has every answer recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ringd.metrics.histogram import Histogram

#: the four trips, in the order the PBS model names them
TRIPS = ("write", "ack", "read", "response")
OFFSET_REFRESH_S = 1.0
TARGET_PER_S = 512  # answers recorded per second at most


def split(rtt: float, send_wall: float, replica_time: float, offset: float, error: float) -> float:
    """Seconds of the outgoing trip of a round trip of ``rtt`` seconds sent at ``send_wall``
    (this node's clock) and handled by a replica whose clock read ``replica_time`` then and runs
    ``offset`` ± ``error`` seconds ahead of ours. Always within ``[0, rtt]``."""
    if rtt <= 0:
        return 0.0
    out = replica_time - offset - send_wall
    if out < -error or out > rtt + error:  # clocks disagree with the round trip: no split known
        return rtt / 2
    return min(rtt, max(0.0, out))


class ReplicaLatencies:
    """Outgoing and returning trips of remote writes and reads, as seen by this coordinator.

    ``offset_of(host_id)`` gives ``(seconds the peer's clock is ahead, error)`` or None (node.py
    connects it to gossip's clock offsets); ``wall`` is this node's wall clock in seconds."""

    __slots__ = (
        "write",
        "ack",
        "read",
        "response",
        "offset_of",
        "wall",
        "_offsets",
        "_fresh",
        "_left",
        "_second_ends",
    )

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        offset_of: Callable[[str], tuple[float, float] | None] = lambda host: None,
    ) -> None:
        self.write = Histogram()
        self.ack = Histogram()
        self.read = Histogram()
        self.response = Histogram()
        self.wall = wall
        self.offset_of = offset_of
        # peers' offsets, asked of gossip at most once per OFFSET_REFRESH_S (cheap per answer)
        self._offsets: dict[str, tuple[float, float]] = {}
        self._fresh = 0.0
        self._left = 0  # answers still to record this second
        self._second_ends = -1.0

    def _skip(self, now: float) -> bool:
        """Whether to leave out an answer that came at ``now`` (monotonic seconds)."""
        if now >= self._second_ends:
            self._second_ends = now + 1.0
            self._left = TARGET_PER_S
        elif not self._left:
            return True
        self._left -= 1
        return False

    def _split(self, host: str, rtt: float, replica_us: int) -> tuple[float, float]:
        now = self.wall()
        if now >= self._fresh:  # peers' offsets are asked of gossip again once a second
            self._offsets.clear()
            self._fresh = now + OFFSET_REFRESH_S
        known = self._offsets.get(host)
        if known is None:
            known = self._offsets[host] = self.offset_of(host) or (0.0, 0.0)
        out = split(rtt, now - rtt, replica_us / 1e6, known[0], known[1])
        return out, rtt - out

    def mutated(self, host: str, now: float, rtt: float, replica_us: int) -> None:
        """A remote ``mutate`` answered at ``now`` (trio's clock) after ``rtt`` seconds; the
        replica's clock read ``replica_us`` when it answered."""
        if self._skip(now):
            return
        out, back = self._split(host, rtt, replica_us)
        self.write.add(out)
        self.ack.add(back)

    def read_done(self, host: str, now: float, rtt: float, replica_us: int) -> None:
        """A remote ``read_local`` answered (arguments as for :meth:`mutated`)."""
        if self._skip(now):
            return
        out, back = self._split(host, rtt, replica_us)
        self.read.add(out)
        self.response.add(back)

    def export(self) -> dict[str, Any]:
        """Each trip's recent samples as ``[[value_us, count], ...]`` (HDR buckets, ascending;
        a value is its bucket's highest), and its all-time count."""
        out: dict[str, Any] = {}
        for name in TRIPS:
            hist: Histogram = getattr(self, name)
            recent = hist.recent()
            out[name] = {
                "count": hist.count,
                "buckets": [
                    [int(b.value_iterated_to), int(b.count_at_value_iterated_to)]
                    for b in recent.get_recorded_iterator()
                ],
            }
        return out
