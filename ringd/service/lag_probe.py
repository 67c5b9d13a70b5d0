"""The replica lag probe: t-visibility in practice, measured by a canary write at ONE.

Every ``replica_lag_probe_interval_s`` seconds (0: off) the node writes a canary row (key: its
host id, one cell holding the time) to every live node of the ring: itself in-process, the others
with ``mutate``, exactly as a write's replicas are sent it. The canary lives in the internal
keyspace ``system.lag_probe`` (``ringd.service.replica.CANARY_KEYSPACE``): no schema holds it,
no listing shows it, and it is one row per node, overwritten each time, so it stays tiny.

A write at ONE commits when the first replica acknowledges; the canary measures how long after
that the **last** replica acknowledged (each acknowledgement means that replica applied the row,
durably as its commit-log mode promises): that lag goes into the ``lag`` histogram of
``StalenessMetrics``. It includes the last acknowledgement's trip back, so it overstates the
visibility lag by about one one-way network trip. Nodes that gossip thinks are down are not
written to (their backlog shows in hints); a canary that a contacted node did not acknowledge
within the write timeout counts as ``incomplete`` and records no lag. One canary at a time.
"""

from __future__ import annotations

import logging
import math
from functools import partial
from typing import Any

import trio

from ringd.db.cells import Cell, Row
from ringd.metrics.staleness import StalenessMetrics
from ringd.net.messaging import Messaging
from ringd.protocol.errors import ProtocolError
from ringd.service.hlc import HybridClock
from ringd.service.messages import MutateRequest
from ringd.service.replica import CANARY_KEYSPACE, Replica
from ringd.service.topology import Topology

log = logging.getLogger(__name__)


class LagProbe:
    def __init__(
        self,
        *,
        topology: Topology,
        replica: Replica,
        messaging: Messaging,
        clock: HybridClock,
        metrics: StalenessMetrics,
        interval: float,
        timeout: float,
    ) -> None:
        self.topology = topology
        self.replica = replica
        self.messaging = messaging
        self.clock = clock
        self.metrics = metrics
        self.interval = interval
        self.timeout = timeout

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if self.interval <= 0:
            return
        while True:
            await trio.sleep(self.interval)
            try:
                await self.probe()
            except Exception:  # a bug: never let it take the node down
                log.exception("replica lag probe failed")

    async def probe(self) -> float | None:
        """Write one canary and record its lag; the lag in seconds, or None if incomplete."""
        topology = self.topology
        hosts = [h for h in topology.ring.nodes if topology.is_alive(h)]
        local = topology.local_host_id
        now = self.clock.now()
        row = Row({"t": Cell(now, str(now).encode(), None)}, None)
        request = MutateRequest(CANARY_KEYSPACE, local.encode(), row, now)
        acks: dict[str, float] = {}
        replied: set[str] = set()
        all_in = trio.Event()
        start = trio.current_time()

        def answered(host: str, value: Any, error: Any) -> None:
            replied.add(host)
            if error is None and not isinstance(value, ProtocolError):
                acks[host] = trio.current_time() - start
            else:
                log.debug("canary to %s failed: %s", host, error or value)
            if len(replied) == len(hosts):
                all_in.set()

        wire = request.to_wire()
        for host in hosts:
            if host == local:
                try:
                    self.replica.start_mutate(request, partial(answered, host, error=None))
                except ProtocolError as exc:
                    answered(host, None, exc)
            else:
                self.messaging.send(
                    topology.address(host),
                    "mutate",
                    wire,
                    partial(answered, host),
                    self.timeout,
                )
        with trio.move_on_after(self.timeout):
            await all_in.wait()
        metrics = self.metrics
        metrics.canaries += 1
        for host, seconds in acks.items():
            metrics.last_acks_ms[topology.address(host)] = round(seconds * 1000, 3)
        if len(acks) < len(hosts) or not acks:
            metrics.incomplete += 1
            return None
        lag = max(acks.values()) - min(acks.values())
        metrics.lag.add(lag if math.isfinite(lag) else 0.0)
        return lag
