"""The clock-offset bound: a node whose clock is too far off the cluster's stops coordinating
writes (CockroachDB's maximum offset), so its timestamps cannot order writes wrongly.

This node's offset comes from gossip round trips (``Gossiper.local_clock_offset``: its clock
minus the median node's, within an error of half a round trip). The bound is exceeded only when
the offset is certainly beyond it, ``|offset| - error > max_clock_offset_ms``; while live peers
are not measured yet (just after this node's clock was stepped) nothing changes, and with no live
peer the bound is not exceeded. While exceeded, put and delete coordinated here are
``UNAVAILABLE``; reads, replica work for other coordinators, and every other node go on. The
state is checked every gossip interval (``max_clock_offset_ms`` 0: never exceeded); the change is logged once each way and counted in the
coordinator counters (``clock_offset_exceeded``, ``write_clock_refused``).
"""

from __future__ import annotations

import logging

import trio

from ringd.gms.gossiper import Gossiper
from ringd.metrics import CoordinatorMetrics
from ringd.protocol.errors import Unavailable

log = logging.getLogger(__name__)


class ClockGuard:
    def __init__(
        self,
        *,
        gossiper: Gossiper,
        metrics: CoordinatorMetrics,
        max_offset_ms: int,
        interval: float,
    ) -> None:
        self.gossiper = gossiper
        self.metrics = metrics
        self.max_offset_ms = max_offset_ms
        self.interval = interval
        #: the offset (ms) while it is beyond the bound, else None
        self.exceeded_ms: int | None = None

    def check(self) -> None:
        """Compare the measured offset with the bound; log and count when that changes."""
        offset = self.gossiper.local_clock_offset()
        if offset is None and len(self.gossiper.live_members()) > 1:
            return  # live peers not measured yet: keep the state until they are
        beyond = (
            self.max_offset_ms > 0
            and offset is not None
            and (abs(offset.seconds) - offset.error) * 1000 > self.max_offset_ms
        )
        if beyond and offset is not None:
            ms = round(offset.seconds * 1000)
            if self.exceeded_ms is None:
                self.metrics.counters["clock_offset_exceeded"] += 1
                log.error(
                    "this node's clock is %d ms off the cluster (limit %d ms, max_clock_offset_ms):"
                    " refusing to coordinate writes until it is back within bounds; fix its time"
                    " synchronisation (NTP)",
                    ms,
                    self.max_offset_ms,
                )
            self.exceeded_ms = ms
        elif self.exceeded_ms is not None:
            log.warning(
                "this node's clock is back within %d ms of the cluster: coordinating writes again",
                self.max_offset_ms,
            )
            self.exceeded_ms = None

    def check_write(self) -> None:
        """``UNAVAILABLE`` naming the clock while the offset is beyond the bound."""
        ms = self.exceeded_ms
        if ms is None:
            return
        self.metrics.counters["write_clock_refused"] += 1
        raise Unavailable(
            f"this node's clock is {ms} ms off the cluster (limit {self.max_offset_ms} ms); "
            "writes are refused until it is back within bounds; write through another node",
            clock_offset_ms=ms,
            max_clock_offset_ms=self.max_offset_ms,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Check every ``interval`` until cancelled."""
        task_status.started()
        while True:
            self.check()
            await trio.sleep(self.interval)
