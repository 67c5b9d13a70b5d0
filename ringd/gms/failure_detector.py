"""The phi-accrual failure detector, as Cassandra's ``FailureDetector`` and ``ArrivalWindow``.

For every endpoint the detector keeps a bounded window of the intervals between the arrivals of
that endpoint's heartbeats (an arrival is any gossip update that moved the endpoint's version
forward). The suspicion level at time ``now`` is

    phi(now) = (now - last_arrival) / mean_interval * PHI_FACTOR,   PHI_FACTOR = 1 / ln(10)

which is ``-log10`` of the probability that a heartbeat is still to come when arrivals are
exponentially distributed with the observed mean. An endpoint is convicted when phi exceeds the
threshold (8 by default): with heartbeats arriving every 0.25 s on average that is after about
``8 * ln(10) * 0.25 s = 4.6 s`` of silence.

As in Cassandra:
- the first arrival seeds the window with an initial guess (twice the gossip interval by
  default), erring high so that a freshly seen node is not convicted too eagerly;
- intervals longer than ``max_interval`` are ignored (they are outages, not the rhythm of
  heartbeats), so a node coming back after a long silence does not teach the detector to be slow.

Time is passed in by the caller (seconds, e.g. from ``trio.current_time()``); the detector holds
no global state and never looks at a clock itself.
"""

from __future__ import annotations

import math
from collections import deque

PHI_FACTOR = 1.0 / math.log(10.0)
DEFAULT_WINDOW_SIZE = 1000
DEFAULT_PHI_THRESHOLD = 8.0
DEFAULT_INITIAL_INTERVAL = 0.5  # twice the default gossip interval of 0.25 s

_MIN_MEAN = 1e-9


class ArrivalWindow:
    """The heartbeat inter-arrival intervals of one endpoint and the time of its last arrival."""

    __slots__ = ("_intervals", "_sum", "_evictions", "_initial", "_max", "last_arrival")

    def __init__(self, size: int, initial_interval: float, max_interval: float) -> None:
        self._intervals: deque[float] = deque(maxlen=size)
        self._sum = 0.0
        self._evictions = 0
        self._initial = initial_interval
        self._max = max_interval
        self.last_arrival: float | None = None

    def _add_interval(self, interval: float) -> None:
        window = self._intervals
        if len(window) == window.maxlen:
            self._sum -= window[0]
            self._evictions += 1
        window.append(interval)
        self._sum += interval
        if self._evictions >= len(window):
            # Recompute now and then so that floating-point drift of the running sum stays bounded.
            self._sum = math.fsum(window)
            self._evictions = 0

    def add(self, now: float) -> None:
        """Record a heartbeat arrival at ``now``."""
        last = self.last_arrival
        if last is None:
            self._add_interval(self._initial)
            self.last_arrival = now
            return
        interval = now - last
        if 0.0 <= interval <= self._max:
            self._add_interval(interval)
        if now > last:
            self.last_arrival = now

    @property
    def sample_count(self) -> int:
        return len(self._intervals)

    def mean(self) -> float:
        if not self._intervals:
            return self._initial
        return max(self._sum / len(self._intervals), _MIN_MEAN)

    def phi(self, now: float) -> float:
        if self.last_arrival is None:
            return 0.0
        elapsed = max(0.0, now - self.last_arrival)
        return elapsed / self.mean() * PHI_FACTOR


class FailureDetector:
    """Phi-accrual failure detection for many endpoints (keyed by host id or any hashable)."""

    def __init__(
        self,
        *,
        threshold: float = DEFAULT_PHI_THRESHOLD,
        initial_interval: float = DEFAULT_INITIAL_INTERVAL,
        max_interval: float | None = None,
        window_size: int = DEFAULT_WINDOW_SIZE,
    ) -> None:
        """``max_interval`` defaults to ``initial_interval``, as Cassandra's does."""
        if not (threshold > 0 and math.isfinite(threshold)):
            raise ValueError(f"phi threshold must be a positive number, not {threshold!r}")
        if not (initial_interval > 0 and math.isfinite(initial_interval)):
            raise ValueError(f"initial interval must be positive, not {initial_interval!r}")
        if max_interval is None:
            max_interval = initial_interval
        if not max_interval > 0:
            raise ValueError(f"max interval must be positive, not {max_interval!r}")
        if window_size < 1:
            raise ValueError(f"window size must be at least 1, not {window_size!r}")
        self.threshold = float(threshold)
        self.initial_interval = float(initial_interval)
        self.max_interval = float(max_interval)
        self.window_size = int(window_size)
        self._windows: dict[str, ArrivalWindow] = {}

    def report(self, endpoint: str, now: float) -> None:
        """Record that a heartbeat of ``endpoint`` arrived at ``now``."""
        window = self._windows.get(endpoint)
        if window is None:
            window = ArrivalWindow(self.window_size, self.initial_interval, self.max_interval)
            self._windows[endpoint] = window
        window.add(now)

    def phi(self, endpoint: str, now: float) -> float:
        """The suspicion level of ``endpoint`` at ``now``; 0.0 for an endpoint never reported."""
        window = self._windows.get(endpoint)
        return 0.0 if window is None else window.phi(now)

    def is_alive(self, endpoint: str, now: float, threshold: float | None = None) -> bool:
        """Whether phi is within the threshold; False for an endpoint never reported."""
        window = self._windows.get(endpoint)
        if window is None:
            return False
        limit = self.threshold if threshold is None else threshold
        return window.phi(now) <= limit

    def remove(self, endpoint: str) -> None:
        """Forget everything learnt about ``endpoint`` (e.g. it restarted while down)."""
        self._windows.pop(endpoint, None)

    def mean_interval(self, endpoint: str) -> float | None:
        window = self._windows.get(endpoint)
        return None if window is None else window.mean()

    def last_arrival(self, endpoint: str) -> float | None:
        window = self._windows.get(endpoint)
        return None if window is None else window.last_arrival

    def endpoints(self) -> list[str]:
        return list(self._windows)

    def __contains__(self, endpoint: object) -> bool:
        return endpoint in self._windows
