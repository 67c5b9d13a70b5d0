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


def latency_ms(hist: HdrHistogram) -> dict[str, float | None]:
    """mean, p50, p95, p99, p999 and max in milliseconds (all None when nothing was recorded)."""
    names = ["mean", *(name for name, _ in PERCENTILES), "max"]
    if hist.get_total_count() == 0:
        return dict.fromkeys(names, None)
    values = [hist.get_mean_value()]
    values += [hist.get_value_at_percentile(p) for _, p in PERCENTILES]
    values.append(hist.get_max_value())
    return {name: round(v / 1000.0, 3) for name, v in zip(names, values, strict=True)}


@dataclass
class OpStats:
    """One op type over the whole run."""

    hist: HdrHistogram = field(default_factory=new_histogram)
    ops: int = 0
    errors: int = 0
    found: int = 0  # reads that returned a row

    def to_json(self, op: str) -> dict[str, Any]:
        data: dict[str, Any] = {"ops": self.ops, "errors": self.errors}
        if op == "read":
            data["found"] = self.found
        data["latency_ms"] = latency_ms(self.hist)
        return data


class Stats:
    """Everything the workers record: per-op totals, the current interval, errors by code."""

    def __init__(self) -> None:
        self.by_op: dict[str, OpStats] = {}
        self.total = new_histogram()
        self.interval = new_histogram()
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
        stats.hist.record_value(micros)
        stats.ops += 1
        stats.found += found
        self.interval.record_value(micros)
        self.ops += 1

    def error(self, op: str, code: str) -> None:
        stats = self._op(op)
        stats.ops += 1
        stats.errors += 1
        self.ops += 1
        self.errors += 1
        self.interval_errors += 1
        self.errors_by_code[code] += 1

    def take_interval(self) -> tuple[HdrHistogram, int]:
        """The interval's histogram and error count; starts a new interval (and adds the old
        one to the run's total)."""
        hist, errors = self.interval, self.interval_errors
        self.total.add(hist)
        self.interval, self.interval_errors = new_histogram(), 0
        return hist, errors
