"""What each request is: the op mix, which key, the value, and the rate limit."""

from __future__ import annotations

import bisect
import itertools
import math
import random
from array import array
from dataclasses import dataclass

MODES = ("write", "read", "mixed")
DISTS = ("uniform", "zipf", "seq")
ZIPF_MAX_KEYS = 1_000_000  # the zipf sampler keeps a CDF of 8 bytes per key


@dataclass(frozen=True)
class Workload:
    mode: str = "write"
    read_ratio: float = 0.5  # mixed only
    keys: int = 100_000
    dist: str = "uniform"
    zipf_exponent: float = 1.0
    value_size: int = 48
    seed: int | None = None


def key_name(i: int) -> str:
    return f"key{i}"


class KeyChooser:
    """Key indexes in [0, keys): ``seq`` cycles 0, 1, 2, ...; ``uniform`` draws evenly; ``zipf``
    draws rank k with probability proportional to 1 / (k + 1) ** exponent (a precomputed CDF
    searched by bisection, so --keys is capped at ZIPF_MAX_KEYS for zipf)."""

    def __init__(self, workload: Workload) -> None:
        self._keys = workload.keys
        self._rng = random.Random(workload.seed)
        self._seq = itertools.count()
        self._cdf: array[float] | None = None
        if workload.dist == "zipf":
            s = workload.zipf_exponent
            cdf = array(
                "d", itertools.accumulate(1.0 / math.pow(k, s) for k in range(1, self._keys + 1))
            )
            total = cdf[-1]
            self._cdf = array("d", (c / total for c in cdf))
        self._dist = workload.dist

    def next(self) -> int:
        if self._dist == "seq":
            return next(self._seq) % self._keys
        if self._cdf is not None:
            return min(bisect.bisect_left(self._cdf, self._rng.random()), self._keys - 1)
        return self._rng.randrange(self._keys)


class OpChooser:
    """``write`` or ``read`` per request, by the mode (and read ratio for mixed)."""

    def __init__(self, workload: Workload) -> None:
        self._mode = workload.mode
        self._ratio = workload.read_ratio
        self._rng = random.Random(None if workload.seed is None else workload.seed + 1)

    def next(self) -> str:
        if self._mode != "mixed":
            return self._mode
        return "read" if self._rng.random() < self._ratio else "write"


class RateLimiter:
    """At most ``rate`` starts per second, evenly spaced, no burst; 0 means unlimited."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = -math.inf

    async def wait(self) -> None:
        if not self._interval:
            return
        import trio  # here: ringctl's other commands start faster without it

        now = trio.current_time()
        slot = max(self._next, now)
        self._next = slot + self._interval
        if slot > now:
            await trio.sleep_until(slot)
