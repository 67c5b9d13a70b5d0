"""The storage proxy: the coordinator's three paths behind one front door.

``writes`` (``Writes.start_write``), ``reads`` (``Reads.start_read``) and ``scans``
(``Scans.scan_page``) share the topology, one ``Deadlines`` heap for every read and write in
flight, and one ``CoordinatorMetrics``. :meth:`run` starts what they need in the background.
"""

from __future__ import annotations

import trio

from ringd.db.engine import StorageEngine
from ringd.hints.service import HintsService
from ringd.metrics import CoordinatorMetrics
from ringd.net.deadlines import Deadlines
from ringd.net.messaging import Messaging
from ringd.service.hlc import HybridClock
from ringd.service.reads import Reads
from ringd.service.replica import Replica
from ringd.service.scans import Scans
from ringd.service.timeouts import Timeouts
from ringd.service.topology import Topology
from ringd.service.writes import Writes


class StorageProxy:
    def __init__(
        self,
        *,
        topology: Topology,
        engine: StorageEngine,
        replica: Replica,
        messaging: Messaging,
        clock: HybridClock,
        metrics: CoordinatorMetrics,
        timeouts: Timeouts,
        hints: HintsService | None = None,
    ) -> None:
        self.metrics = metrics
        self.deadlines = Deadlines()  # the timeouts of every read and write in flight
        self.writes = Writes(
            topology=topology,
            engine=engine,
            replica=replica,
            messaging=messaging,
            clock=clock,
            deadlines=self.deadlines,
            metrics=metrics,
            timeout=timeouts.write,
            hints=hints,
        )
        self.reads = Reads(
            topology=topology,
            engine=engine,
            messaging=messaging,
            clock=clock,
            deadlines=self.deadlines,
            metrics=metrics,
            timeout=timeouts.read,
            hints=hints,
        )
        self.scans = Scans(
            topology=topology,
            replica=replica,
            messaging=messaging,
            metrics=metrics,
            range_timeout=timeouts.scan_range,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.deadlines.run)
            await nursery.start(self.reads.run)
            task_status.started()
            await trio.sleep_forever()
