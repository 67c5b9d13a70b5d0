"""Latency histograms (HdrHistogram, microseconds) and error counts, per interval and per run."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS = 1, 60_000_000, 3
PERCENTILES = (("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9))


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


@dataclass
class Latencies:
    """Latencies in µs: an HdrHistogram for the percentiles and the exact sum for the mean.
    (The histogram's own mean walks every bucket in Python, ~20 ms for a busy interval: done
    once a second in the event loop, it stalled the run and showed in its own p99.9.)"""

    hist: HdrHistogram = field(default_factory=new_histogram)
    sum_us: int = 0

    @property
    def count(self) -> int:
        return int(self.hist.get_total_count())

    def record(self, micros: int) -> None:
        self.hist.record_value(micros)
        self.sum_us += micros

    def add(self, other: Latencies) -> None:
        self.hist.add(other.hist)
        self.sum_us += other.sum_us


def latency_ms(latencies: Latencies) -> dict[str, float | None]:
    """mean, p50, p95, p99, p999 and max in milliseconds (all None when nothing was recorded)."""
    names = ["mean", *(name for name, _ in PERCENTILES), "max"]
    count = latencies.count
    if count == 0:
        return dict.fromkeys(names, None)
    hist = latencies.hist
    values = [latencies.sum_us / count]
    values += [hist.get_value_at_percentile(p) for _, p in PERCENTILES]
    values.append(hist.get_max_value())
    return {name: round(v / 1000.0, 3) for name, v in zip(names, values, strict=True)}


@dataclass
class OpStats:
    """One op type over the whole run."""

    latencies: Latencies = field(default_factory=Latencies)
    ops: int = 0
    errors: int = 0
    found: int = 0  # reads that returned a row

    def to_json(self, op: str) -> dict[str, Any]:
        data: dict[str, Any] = {"ops": self.ops, "errors": self.errors}
        if op == "read":
            data["found"] = self.found
        data["latency_ms"] = latency_ms(self.latencies)
        return data


class Stats:
    """Everything the workers record: per-op totals, the current interval, errors by code."""

    def __init__(self) -> None:
        self.by_op: dict[str, OpStats] = {}
        self.total = Latencies()
        self.interval = Latencies()
        self.ops = 0
        self.errors = 0
        self.interval_errors = 0
        self.errors_by_code: Counter[str] = Counter()

    def _op(self, op: str) -> OpStats:
        stats = self.by_op.get(op)
        if stats is None:
            stats = self.by_op[op] = OpStats()
        return stats

    def record(self, op: str, micros: int, found: bool = False) -> None:
        micros = min(max(micros, LOWEST_US), HIGHEST_US)
        stats = self._op(op)
        stats.latencies.record(micros)
        stats.ops += 1
        stats.found += found
        self.interval.record(micros)
        self.ops += 1

    def error(self, op: str, code: str) -> None:
        stats = self._op(op)
        stats.ops += 1
        stats.errors += 1
        self.ops += 1
        self.errors += 1
        self.interval_errors += 1
        self.errors_by_code[code] += 1

    def take_interval(self) -> tuple[Latencies, int]:
        """The interval's latencies and error count; starts a new interval (and adds the old
        one to the run's total)."""
        latencies, errors = self.interval, self.interval_errors
        self.total.add(latencies)
        self.interval, self.interval_errors = Latencies(), 0
        return latencies, errors
