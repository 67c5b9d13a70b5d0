"""The node's metric groups: per keyspace (``TableMetrics``), per verb and peer (``VerbMetrics``),
and the coordinator's (``CoordinatorMetrics``); the histograms are in ``ringd.metrics.histogram``.

Every group is plain counters and histograms updated in place on the request path (a few
integer increments and at most one HDR record per request) and read by the views (``tpstats``,
``tablehistograms``, ``proxyhistograms``, ``netstats``) and the Prometheus exporter at the time
they are asked. See docs/metrics.md for names, decay and cost.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ringd.metrics.histogram import Buckets, Histogram
from ringd.metrics.replica_latency import ReplicaLatencies
from ringd.metrics.staleness import StalenessMetrics

__all__ = ["Buckets", "CoordinatorMetrics", "Histogram", "TableMetrics", "VerbMetrics"]


class TableMetrics:
    """One keyspace's local reads and writes, as the storage engine served them."""

    __slots__ = (
        "read_latency",
        "write_latency",
        "sstables_per_read",
        "cells_per_read",
        "row_bytes",
    )

    def __init__(self) -> None:
        self.read_latency = Histogram()
        self.write_latency = Histogram()
        self.sstables_per_read = Buckets()
        self.cells_per_read = Buckets()
        self.row_bytes = Buckets()

    def read(self, seconds: float, sstables: int, cells: int) -> None:
        self.read_latency.add(seconds)
        self.sstables_per_read.add(sstables)
        self.cells_per_read.add(cells)

    def write(self, seconds: float, size: int) -> None:
        self.write_latency.add(seconds)
        self.row_bytes.add(size)

    def summary(self) -> dict[str, Any]:
        return {
            "read_latency": self.read_latency.summary(),
            "write_latency": self.write_latency.summary(),
            "sstables_per_read": self.sstables_per_read.summary(),
            "cells_per_read": self.cells_per_read.summary(),
            "row_size": self.row_bytes.summary(),
        }


class VerbMetrics:
    """Internode messages per (peer address, verb): dropped by the message filter (test hooks),
    and calls that timed out waiting for their response. Touched only when that happens."""

    __slots__ = ("dropped", "timeouts")

    def __init__(self) -> None:
        self.dropped: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.timeouts: defaultdict[tuple[str, str], int] = defaultdict(int)

    def by_verb(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for kind, counts in (("dropped", self.dropped), ("timeouts", self.timeouts)):
            for (_, verb), n in list(counts.items()):
                row = out.setdefault(verb, {"dropped": 0, "timeouts": 0})
                row[kind] += n
        return out

    def by_peer(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for kind, counts in (("dropped", self.dropped), ("timeouts", self.timeouts)):
            for (peer, _), n in list(counts.items()):
                row = out.setdefault(peer, {"dropped": 0, "timeouts": 0})
                row[kind] += n
        return out


class CoordinatorMetrics:
    """What the coordinator counts: latency per path and the failures ``proxyhistograms`` shows."""

    __slots__ = (
        "write_latency",
        "read_latency",
        "range_latency",
        "counters",
        "replica_latency",
        "staleness",
    )

    def __init__(self) -> None:
        self.replica_latency = ReplicaLatencies()  # one-way trips to replicas (PBS)
        self.staleness = StalenessMetrics()  # digest mismatches per keyspace, replica lag
        self.write_latency = Histogram()
        self.read_latency = Histogram()
        self.range_latency = Histogram()
        self.counters = {
            "write_unavailable": 0,
            "write_timeout": 0,
            "read_unavailable": 0,
            "read_timeout": 0,
            "digest_mismatch": 0,
            "clock_offset_exceeded": 0,  # times this node's clock went beyond the offset bound
            "write_clock_refused": 0,  # writes refused meanwhile (service.clock_guard)
            "read_repair_reconcile": 0,  # reads that merged disagreeing replicas
            "read_repair_blocking": 0,  # repair writes sent to stale replicas, waited for
            "read_repair_timeout": 0,  # reads failed because a repair write timed out
        }

    def summary(self) -> dict[str, Any]:
        return {
            "read": self.read_latency.summary(),
            "write": self.write_latency.summary(),
            "range": self.range_latency.summary(),
            "counters": dict(self.counters),
        }
