"""The latency histogram's documented decay, and the integer buckets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ringd.metrics import Buckets, Histogram
from ringd.metrics.histogram import HIGHEST_US, _new


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_percentiles_cover_the_last_one_to_two_windows_and_count_is_all_time() -> None:
    clock = FakeClock()
    h = Histogram(window=60, clock=clock)
    h.add(0.5)  # 500 ms, an outlier
    for _ in range(99):
        h.add(0.001)
    assert h.summary()["max_us"] >= 499_000
    clock.now = 61  # one window later: the previous window still counts
    h.add(0.001)
    assert h.summary()["max_us"] >= 499_000
    clock.now = 122  # two windows later: the outlier is forgotten
    h.add(0.001)
    s = h.summary()
    assert s["max_us"] < 1_100 and s["p99_us"] < 1_100
    assert s["count"] == 102  # all-time
    clock.now = 1000  # idle for long: nothing is recent, the count stays
    s = h.summary()
    assert s["max_us"] == 0 and s["p50_us"] == 0 and s["count"] == 102


def test_histogram_is_within_hdr_precision() -> None:
    h = Histogram()
    for us in range(1, 1001):
        h.add(us / 1e6)
    s = h.summary()
    assert abs(s["p50_us"] - 500) <= 5
    assert abs(s["p99_us"] - 990) <= 10
    assert s["min_us"] == 1


def test_buckets_are_exact_for_small_values() -> None:
    b = Buckets()
    for v in (0, 1, 1, 2, 3, 31):
        b.add(v)
    assert b.percentile(50) == 1
    assert b.summary()["max"] == 31
    b.add(100)
    assert b.summary()["max"] == 127  # the largest value of its power-of-two bucket


@given(st.lists(st.integers(min_value=0, max_value=HIGHEST_US + 10_000), max_size=300))
def test_a_fold_records_what_the_hdr_histogram_would_record_value_by_value(
    values: list[int],
) -> None:
    folded = Histogram(clock=lambda: 0.0)
    for v in values:
        folded.add(v / 1e6)
    exact = _new()
    for v in values:
        exact.record_value(min(max(int(v / 1e6 * 1e6), 1), HIGHEST_US))
    recent = folded.recent()
    assert recent.total_count == exact.total_count == len(values)
    assert list(recent.counts) == list(exact.counts)  # every slot holds the same count


def test_add_many_is_n_adds() -> None:
    many, one_by_one = Histogram(), Histogram()
    for seconds, n in ((0.001, 3), (0.25, 1), (0.0004, 5000)):  # 5000: past a fold
        many.add_many(seconds, n)
        for _ in range(n):
            one_by_one.add(seconds)
    assert many.summary() == one_by_one.summary() and many.count == 5004
