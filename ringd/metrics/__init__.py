"""Latency histograms and counters: the numbers behind proxyhistograms and friends.

``Histogram`` keeps counts in exponentially growing buckets (as Cassandra's
EstimatedHistogram, here ~20% wide from 1 µs to ~100 s), so recording is O(1), memory is fixed,
and percentiles are estimates within one bucket's width.
"""

from __future__ import annotations

import math
from typing import Any

_GROWTH = 1.2
_BUCKETS = 110  # 1 µs * 1.2**110 ~ 500 s


def _bucket_of(micros: float) -> int:
    if micros <= 1:
        return 0
    return min(_BUCKETS - 1, int(math.log(micros, _GROWTH)) + 1)


def _upper_bound(index: int) -> float:
    return _GROWTH**index


class Histogram:
    def __init__(self) -> None:
        self.counts = [0] * _BUCKETS
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        micros = seconds * 1e6
        self.counts[_bucket_of(micros)] += 1
        self.count += 1
        self.total += micros
        if micros > self.max:
            self.max = micros

    def percentile(self, p: float) -> float:
        """Estimated ``p``-th percentile in microseconds (0 when empty)."""
        if not self.count:
            return 0.0
        rank = p / 100.0 * self.count
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank and n:
                return min(_upper_bound(i), self.max)
        return self.max

    def summary(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "p50_us": round(self.percentile(50), 1),
            "p75_us": round(self.percentile(75), 1),
            "p95_us": round(self.percentile(95), 1),
            "p98_us": round(self.percentile(98), 1),
            "p99_us": round(self.percentile(99), 1),
            "max_us": round(self.max, 1),
            "mean_us": round(self.total / self.count, 1) if self.count else 0.0,
        }


class CoordinatorMetrics:
    """What the coordinator counts: latency per path and the failures ``proxyhistograms`` shows."""

    __slots__ = ("write_latency", "read_latency", "range_latency", "counters")

    def __init__(self) -> None:
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
