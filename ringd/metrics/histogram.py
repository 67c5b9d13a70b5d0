"""Latency histograms on HdrHistogram that forget old samples, and cheap value histograms.

``Histogram`` records microseconds into an HDR histogram (2 significant digits, 1 µs to 10
minutes) through a small buffer, so a record is one list append and memory is fixed. **Decay**: samples go into the current
window; every ``window`` seconds (60 by default) the current window becomes the previous one
and the one before is dropped, so percentiles, min and max cover the last one to two windows
(as Cassandra's decaying reservoirs forget the past). ``count`` and ``total`` never reset: they
are the all-time counters a monitoring system takes rates of.

``Buckets`` counts non-negative integers (sstables per read, cells per read, row bytes): exactly
below 32, in power-of-two buckets above; one list increment per value. Never reset.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from itertools import repeat
from typing import Any

from hdrh.histogram import HdrHistogram

HIGHEST_US = 600_000_000  # 10 minutes
WINDOW_SECONDS = 60.0
FOLD_AT = 4096  # samples buffered before they are folded into the HDR histogram
PERCENTILES = (50, 75, 95, 98, 99)


def _coarse(value: int) -> int:
    """``value`` cut to its top 8 bits: the precision a 2-significant-digit HDR histogram keeps
    (it counts every such value in the same slot), so that a fold records each slot once."""
    shift = value.bit_length() - 8
    return value if shift <= 0 else value >> shift << shift


def _new() -> HdrHistogram:
    return HdrHistogram(1, HIGHEST_US, 2)


class Histogram:
    """Latencies in µs: recent percentiles (decaying by window), all-time count and total.

    ``add`` only appends to a buffer (the request path's cost is one list append); the buffer
    is folded into the HDR histogram, identical values counted together, when it holds
    ``FOLD_AT`` samples or the histogram is read, so memory stays bounded. Window ends are
    noticed at a fold or a read."""

    __slots__ = ("_cur", "_prev", "_rotate_at", "_window", "_clock", "_buf", "_count", "total")

    def __init__(
        self, window: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = window
        self._clock = clock
        self._cur = _new()
        self._prev = _new()
        self._rotate_at = clock() + window
        self._buf: list[int] = []
        self._count = 0
        self.total = 0.0

    def add(self, seconds: float) -> None:
        """Record one latency given in seconds."""
        buf = self._buf
        buf.append(int(seconds * 1e6))
        if len(buf) >= FOLD_AT:
            self._fold()

    def add_many(self, seconds: float, n: int) -> None:
        """Record ``n`` latencies of ``seconds`` each (the items of a batch)."""
        buf = self._buf
        buf.extend(repeat(int(seconds * 1e6), n))
        if len(buf) >= FOLD_AT:
            self._fold()

    @property
    def count(self) -> int:
        """Latencies recorded since start."""
        return self._count + len(self._buf)

    def _fold(self) -> None:
        buf, self._buf = self._buf, []
        if buf:
            self._count += len(buf)
            self.total += sum(buf)
            record = self._cur.record_value
            for value, n in Counter(map(_coarse, buf)).items():
                record(HIGHEST_US if value > HIGHEST_US else (value or 1), n)
        if self._clock() >= self._rotate_at:
            self._rotate()

    def _rotate(self) -> None:
        now = self._clock()
        if now >= self._rotate_at + self._window:  # idle for a whole window: nothing is recent
            self._prev = _new()
        else:
            self._prev = self._cur
        self._cur = _new()
        self._rotate_at = now + self._window

    def recent(self) -> HdrHistogram:
        """The samples of the last one to two windows, merged (a copy)."""
        self._fold()
        merged = _new()
        merged.add(self._prev)
        merged.add(self._cur)
        return merged

    def percentile(self, p: float) -> float:
        """Estimated ``p``-th percentile of the recent samples in µs (0 when none)."""
        h = self.recent()
        return float(h.get_value_at_percentile(p)) if h.total_count else 0.0

    @property
    def max(self) -> float:
        h = self.recent()
        return float(h.get_max_value()) if h.total_count else 0.0

    def summary(self) -> dict[str, Any]:
        """``count`` and ``mean_us`` are all-time; percentiles, min and max are recent."""
        h = self.recent()
        empty = not h.total_count
        # one pass over the counts for every percentile (ten times faster than one call each)
        at = {} if empty else h.get_percentile_to_value_dict([*PERCENTILES, 0])
        out: dict[str, Any] = {"count": self.count}
        for p in PERCENTILES:
            out[f"p{p}_us"] = 0.0 if empty else float(at[p])
        out["min_us"] = 0.0 if empty else float(at[0])
        out["max_us"] = 0.0 if empty else float(h.get_max_value())
        out["mean_us"] = round(self.total / self.count, 1) if self.count else 0.0
        return out


EXACT = 32  # values below this have a bucket each
BUCKETS = EXACT + 40


def _bucket(value: int) -> int:
    return value if value < EXACT else min(BUCKETS - 1, EXACT - 6 + value.bit_length())


def _bound(index: int) -> int:
    """The largest value in bucket ``index``."""
    return index if index < EXACT else (1 << (index - EXACT + 6)) - 1


class Buckets:
    """Counts of non-negative integers; percentiles are the largest value of their bucket."""

    __slots__ = ("counts", "count", "total")

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.count = 0
        self.total = 0

    def add(self, value: int) -> None:
        self.counts[_bucket(value)] += 1
        self.count += 1
        self.total += value

    def percentile(self, p: float) -> int:
        """The upper bound of the bucket holding the ``p``-th percentile (0 when empty)."""
        if not self.count:
            return 0
        rank = p / 100.0 * self.count
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if n and seen >= rank:
                return _bound(i)
        return _bound(BUCKETS - 1)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count}
        for p in PERCENTILES:
            out[f"p{p}"] = self.percentile(p)
        out["max"] = self.percentile(100)
        return out
