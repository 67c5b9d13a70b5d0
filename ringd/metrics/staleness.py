"""Staleness measured: digest mismatches per keyspace, and the replica lag probe's histogram.

``StalenessMetrics`` counts, per keyspace, the coordinator's reads that compared replicas
(``compared``: more than one replica answered) and those whose digests disagreed
(``mismatches``), with the mismatch rate per second over the last one to two minutes
(``Meter``). ``lag`` is the replica lag probe's histogram (``ringd.service.lag_probe``): how
long after the first replica acknowledged a canary written at ONE the last one did. See the
staleness section of docs/metrics.md.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from ringd.metrics.histogram import WINDOW_SECONDS, Histogram


class Meter:
    """An all-time count and the rate per second over the last one to two windows: events are
    counted into the current window, which becomes the previous one when it ends."""

    __slots__ = ("count", "_cur", "_prev", "_started", "_window", "_clock")

    def __init__(
        self, window: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.count = 0
        self._cur = 0
        self._prev: int | None = None  # None: no window has ended yet
        self._window = window
        self._clock = clock
        self._started = clock()

    def _roll(self) -> None:
        now = self._clock()
        if now - self._started >= self._window:
            idle = now - self._started >= 2 * self._window
            self._prev = 0 if idle else self._cur
            self._cur = 0
            self._started = now if idle else self._started + self._window

    def mark(self, n: int = 1) -> None:
        self._roll()
        self.count += n
        self._cur += n

    def rate(self) -> float:
        """Events per second over the previous window and the current one so far."""
        self._roll()
        elapsed = self._clock() - self._started
        if self._prev is None:
            return self._cur / elapsed if elapsed > 0 else 0.0
        return (self._prev + self._cur) / (self._window + elapsed)


class StalenessMetrics:
    """Per-keyspace digest mismatches on reads, and the replica lag probe's results."""

    __slots__ = (
        "compared",
        "mismatches",
        "lag",
        "canaries",
        "incomplete",
        "last_acks_ms",
        "_clock",
    )

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.compared: defaultdict[str, int] = defaultdict(int)
        self.mismatches: dict[str, Meter] = {}
        self.lag = Histogram()  # first ack to last ack of a canary, every replica reached
        self.canaries = 0  # canaries written
        self.incomplete = 0  # canaries some contacted replica did not acknowledge in time
        self.last_acks_ms: dict[str, float] = {}  # peer address -> its last canary ack, ms

    def mismatch(self, keyspace: str) -> None:
        meter = self.mismatches.get(keyspace)
        if meter is None:
            meter = self.mismatches[keyspace] = Meter(clock=self._clock)
        meter.mark()

    def keyspace(self, name: str) -> dict[str, Any]:
        """``reads_compared``, ``digest_mismatches`` (all-time), ``mismatch_rate`` (per second,
        recent) and ``mismatch_ratio`` (mismatches per compared read, all-time)."""
        compared = self.compared.get(name, 0)
        meter = self.mismatches.get(name)
        count = meter.count if meter is not None else 0
        return {
            "reads_compared": compared,
            "digest_mismatches": count,
            "mismatch_rate": round(meter.rate(), 4) if meter is not None else 0.0,
            "mismatch_ratio": round(count / compared, 6) if compared else 0.0,
        }

    def lag_probe(self) -> dict[str, Any]:
        return {
            "canaries": self.canaries,
            "incomplete": self.incomplete,
            "lag": self.lag.summary(),
            "last_acks_ms": dict(sorted(self.last_acks_ms.items())),
        }
