"""The PBS Monte Carlo (ringctl.pbs): probabilities in [0, 1], never falling as T grows,
exactly 1 when read and write quorums overlap, and the right answer where it can be worked out."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringctl.pbs import Sampler, merge, predict

buckets = st.lists(st.tuples(st.integers(0, 2_000_000), st.integers(0, 50)).map(list), max_size=8)
dists = st.fixed_dictionaries(
    {"write": buckets, "ack": buckets, "read": buckets, "response": buckets}
)


@st.composite
def setups(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]], list[float], dict]:
    n = draw(st.integers(1, 5))
    pairs = draw(st.lists(st.tuples(st.integers(1, n), st.integers(1, n)), min_size=1, max_size=4))
    after = draw(st.lists(st.floats(0, 3000, allow_nan=False), min_size=1, max_size=6))
    return n, pairs, after, draw(dists)


@settings(max_examples=60, deadline=None)
@given(setups(), st.integers(0, 2**32))
def test_probabilities_are_in_range_and_never_fall_as_t_grows(setup: tuple, seed: int) -> None:
    n, pairs, after, d = setup
    for p in predict(n, pairs, after, d, trials=200, seed=seed):
        ts = sorted(p.consistent)
        values = [p.consistent[t] for t in ts]
        assert all(0.0 <= v <= 1.0 for v in values)
        assert values == sorted(values), (ts, values)
        assert p.write_latency_ms >= 0 and p.read_latency_ms >= 0


@settings(max_examples=60, deadline=None)
@given(setups(), st.integers(0, 2**32))
def test_overlapping_quorums_are_always_consistent(setup: tuple, seed: int) -> None:
    n, pairs, after, d = setup
    overlapping = [(w, r) for w, r in pairs if w + r > n] or [(n, 1)]
    for p in predict(n, overlapping, after, d, trials=200, seed=seed):
        assert set(p.consistent.values()) == {1.0}


def test_one_slow_replica_in_three_at_one_and_one() -> None:
    # each replica applies writes 500 ms late with probability 1/3, else at once; reads and
    # acks take no time: a read at r=1 is stale iff its replica is slow (1/3) and T < 500 ms,
    # unless all three replicas are slow (then the commit itself waits 500 ms)
    d = {"write": [[0, 2], [500_000, 1]], "ack": [[0, 1]], "read": [[0, 1]], "response": [[0, 1]]}
    (p,) = predict(3, [(1, 1)], [0, 100, 499, 500, 1000], d, trials=20_000, seed=7)
    expected_stale = (1 / 3) * (1 - (1 / 3) ** 2)  # this one slow, not both others
    assert p.consistent[0] == pytest.approx(1 - expected_stale, abs=0.02)
    assert p.consistent[499] == p.consistent[0]
    assert p.consistent[500] == p.consistent[1000] == 1.0
    assert p.write_latency_ms == pytest.approx(500 / 27, rel=0.2)  # all three slow: 1/27


def test_latencies_are_expected_values() -> None:
    d = {"write": [[1000, 1]], "ack": [[2000, 1]], "read": [[3000, 1]], "response": [[500, 1]]}
    (p,) = predict(3, [(2, 2)], [0], d, trials=50)
    assert p.write_latency_ms == 3.0 and p.read_latency_ms == 3.5


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="between 1 and n=3"):
        predict(3, [(4, 1)], [0], {})
    with pytest.raises(ValueError, match="negative"):
        predict(3, [(1, 1)], [-1], {})


def test_sampler_and_merge() -> None:
    import random

    s = Sampler([[5, 0], [10, 3], [20, 1]])
    draws = [s.draw(random.Random(i)) for i in range(400)]
    assert set(draws) == {10, 20}
    assert Sampler([]).draw(random.Random()) == 0
    merged = merge([{"write": [[1, 2], [5, 1]]}, {"write": [[5, 3]], "ack": [[2, 1]]}])
    assert merged["write"] == [[1, 2], [5, 4]] and merged["ack"] == [[2, 1]]
    assert merged["read"] == []
