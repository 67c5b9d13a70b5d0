"""Probabilistically bounded staleness (PBS): how likely a read returns the latest write.

The WARS model of Bailis et al. ("Probabilistically Bounded Staleness for Practical Partial
Quorums"), as CASSANDRA-4261 ran it: a write goes to all ``n`` replicas; replica i applies it
``W_i`` after the send and its acknowledgement takes ``A_i`` back; the write commits when the
``w``-th acknowledgement arrives. ``T`` after the commit a read is sent to ``r`` replicas (ringd
contacts exactly r, chosen at random here); replica i receives it ``R_i`` later and answers in
``S_i``. The read returns the latest write if one of its replicas had applied it on receipt:
``W_i <= commit + T + R_i``. Each trial draws W, A, R, S per replica independently from the
measured distributions (``[[value_us, count], ...]`` as ``replica_latencies`` exports them).

``predict`` is a pure function of its inputs (a seeded RNG; one set of trials shared by every
``T`` and every ``(w, r)``, so the probability never falls as T grows). An empty distribution
counts as zero latency.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Buckets = Sequence[Sequence[int]]  # [[value_us, count], ...]
TRIPS = ("write", "ack", "read", "response")


class Sampler:
    """Draws values (µs) from HDR buckets in proportion to their counts."""

    def __init__(self, buckets: Buckets) -> None:
        self.values: list[int] = []
        self.cumulative: list[int] = []
        total = 0
        for value, count in buckets:
            if count > 0:
                total += count
                self.values.append(max(0, int(value)))
                self.cumulative.append(total)
        self.total = total

    def draw(self, rng: random.Random) -> int:
        if not self.total:
            return 0
        return self.values[bisect.bisect_right(self.cumulative, rng.randrange(self.total))]


@dataclass(frozen=True)
class Prediction:
    w: int
    r: int
    consistent: dict[float, float]  # T in ms -> probability the read returns the latest write
    write_latency_ms: float  # expected time to commit
    read_latency_ms: float  # expected time for a read's r responses


def predict(
    n: int,
    pairs: Sequence[tuple[int, int]],
    after_ms: Sequence[float],
    distributions: Mapping[str, Buckets],
    *,
    trials: int = 10_000,
    seed: int = 0,
) -> list[Prediction]:
    """The probability of a consistent read ``T`` ms after a write commits, for each ``(w, r)``
    of ``pairs`` (each 1..n) and each ``T`` of ``after_ms`` (>= 0), by Monte Carlo over
    ``trials`` trials."""
    if n < 1:
        raise ValueError("n must be at least 1")
    for w, r in pairs:
        if not (1 <= w <= n and 1 <= r <= n):
            raise ValueError(f"w and r must be between 1 and n={n}, not w={w} r={r}")
    if any(t < 0 for t in after_ms):
        raise ValueError("T must not be negative")
    if trials < 1:
        raise ValueError("trials must be at least 1")
    pairs = list(dict.fromkeys(pairs))  # each (w, r) once
    rng = random.Random(seed)
    samplers = {name: Sampler(distributions.get(name, ())) for name in TRIPS}
    ts_us = [t * 1000.0 for t in after_ms]
    fresh = {(w, r): [0] * len(ts_us) for w, r in pairs}
    write_sum = dict.fromkeys(pairs, 0.0)
    read_sum = dict.fromkeys(pairs, 0.0)
    replicas = range(n)
    for _ in range(trials):
        ws = [samplers["write"].draw(rng) for _ in replicas]
        acked = sorted(ws[i] + samplers["ack"].draw(rng) for i in replicas)
        rs = [samplers["read"].draw(rng) for _ in replicas]
        ss = [samplers["response"].draw(rng) for _ in replicas]
        order = list(replicas)
        rng.shuffle(order)  # the replicas a read contacts: the first r of a random order
        for w, r in pairs:
            commit = acked[w - 1]
            contacted = order[:r]
            write_sum[(w, r)] += commit
            read_sum[(w, r)] += max(rs[i] + ss[i] for i in contacted)
            # the read is fresh at T if some contacted replica applied the write by the time
            # the read reached it: W_i <= commit + T + R_i, i.e. T >= W_i - R_i - commit
            need = min(ws[i] - rs[i] for i in contacted) - commit
            counts = fresh[(w, r)]
            for k, t in enumerate(ts_us):
                if t >= need:
                    counts[k] += 1
    return [
        Prediction(
            w,
            r,
            {t: fresh[(w, r)][k] / trials for k, t in enumerate(after_ms)},
            write_sum[(w, r)] / trials / 1000.0,
            read_sum[(w, r)] / trials / 1000.0,
        )
        for w, r in pairs
    ]


def merge(exports: Sequence[Mapping[str, Buckets]]) -> dict[str, list[list[int]]]:
    """Several nodes' buckets of each trip added together."""
    out: dict[str, list[list[int]]] = {}
    for name in TRIPS:
        counts: dict[int, int] = {}
        for e in exports:
            for value, count in e.get(name, ()):
                counts[int(value)] = counts.get(int(value), 0) + int(count)
        out[name] = [[v, c] for v, c in sorted(counts.items())]
    return out
