"""Background anti-entropy: each node keeps repairing its primary ranges, a small piece at a time.

Riak's active anti-entropy is the model (Cassandra leaves this to an external scheduler). The
node's primary ranges of every keyspace with more than one replica are cut into pieces; the
least recently repaired piece goes next, among its replicas that are alive. Pieces are paced so
that every range comes round once per ``interval`` and the scans stay within ``mb_per_s``
(estimated from the rows validated and the keyspace's average row size). Each piece is recorded
in the repair history, which ``ringctl repair status`` reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from ringd.dht.tokens import Range
from ringd.repair.service import RepairOptions, RepairService

log = logging.getLogger(__name__)

PIECES_PER_RANGE = 4


@dataclass
class AntiEntropySettings:
    interval_s: float = 24 * 3600.0  # every range at least once per interval
    mb_per_s: float = 4.0  # validation I/O budget
    first_delay_s: float = 10.0  # let gossip settle after start


class AntiEntropy:
    def __init__(self, service: RepairService, settings: AntiEntropySettings) -> None:
        self.service = service
        self.settings = settings
        self.pieces_done = 0
        self.rows_streamed = 0
        self.current: tuple[str, Range] | None = None
        self._warned: set[str] = set()

    def warn_gc_grace(self) -> list[str]:
        """Keyspaces whose gc_grace is shorter than the interval (warned once each): their
        ranges are not repaired often enough to keep deleted data deleted."""
        short = [
            ks.name
            for ks in self.service.keyspaces.live()
            if ks.gc_grace_seconds < self.settings.interval_s
        ]
        for name in short:
            if name not in self._warned:
                log.warning(
                    "keyspace %s: gc_grace_seconds is shorter than anti_entropy_interval_s "
                    "(%.0f s); run 'ringctl repair %s' within gc_grace or lower the interval",
                    name,
                    self.settings.interval_s,
                    name,
                )
        self._warned = set(short)
        return short

    def _pieces(self) -> list[tuple[str, Range, list[str]]]:
        out = []
        for job in self.service.plan(RepairOptions(primary_range=True)):
            for piece in job.range.split(PIECES_PER_RANGE):
                out.append((job.keyspace, piece, job.hosts))
        history = self.service.history
        out.sort(key=lambda p: history.last_repaired(p[0], p[1]) or 0.0)
        return out

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep(self.settings.first_delay_s)
        while True:
            self.warn_gc_grace()
            pieces = self._pieces()
            if not pieces:
                await trio.sleep(min(60.0, self.settings.interval_s))
                continue
            pace = self.settings.interval_s / len(pieces)
            for keyspace, piece, hosts in pieces:
                start = trio.current_time()
                scanned = await self._repair_piece(keyspace, piece, hosts)
                budget = scanned / (self.settings.mb_per_s * 1024 * 1024)
                await trio.sleep_until(start + max(pace, budget))

    async def _repair_piece(self, keyspace: str, piece: Range, hosts: list[str]) -> int:
        """Repair one piece among its live replicas; the bytes it scanned (an estimate)."""
        alive = [h for h in hosts if self.service.cluster.is_alive(h)]
        if len(alive) < 2:
            return 0
        self.current = (keyspace, piece)
        try:
            result = await self.service.repair_piece(keyspace, piece, alive)
        except Exception as exc:  # a replica went away mid-piece: try again next round
            log.info("anti-entropy of %s %s stopped: %s", keyspace, piece, exc)
            return 0
        finally:
            self.current = None
        self.pieces_done += 1
        streamed = sum(result.rows_streamed.values())
        self.rows_streamed += streamed
        if streamed:
            log.info("anti-entropy repaired %d rows of %s in %s", streamed, keyspace, piece)
        return result.rows * self.service.row_size(keyspace)
