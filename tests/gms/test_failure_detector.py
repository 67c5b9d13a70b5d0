"""Phi-accrual failure detector: examples and properties (no clocks: time is passed in)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringd.gms.failure_detector import PHI_FACTOR, FailureDetector

INTERVAL = 0.25

intervals = st.lists(st.floats(min_value=0.001, max_value=2 * INTERVAL), min_size=1, max_size=60)


def feed(fd: FailureDetector, endpoint: str, gaps: list[float], start: float = 100.0) -> float:
    """Report arrivals at ``start`` and then after each gap; return the last arrival time."""
    now = start
    fd.report(endpoint, now)
    for gap in gaps:
        now += gap
        fd.report(endpoint, now)
    return now


def test_phi_factor_is_cassandras() -> None:
    assert PHI_FACTOR == pytest.approx(1 / math.log(10))


def test_unknown_endpoint() -> None:
    fd = FailureDetector()
    assert fd.phi("x", 10.0) == 0.0
    assert not fd.is_alive("x", 10.0)
    assert fd.mean_interval("x") is None
    assert "x" not in fd


def test_initial_guess_until_samples() -> None:
    fd = FailureDetector(initial_interval=0.5)
    fd.report("a", 10.0)
    assert fd.mean_interval("a") == pytest.approx(0.5)
    assert fd.phi("a", 10.5) == pytest.approx(PHI_FACTOR)


def test_regular_heartbeats_convict_after_about_18_intervals() -> None:
    fd = FailureDetector(initial_interval=2 * INTERVAL, threshold=8.0)
    last = feed(fd, "a", [INTERVAL] * 1000)  # the initial guess is evicted
    assert fd.mean_interval("a") == pytest.approx(INTERVAL)
    crossing = 8.0 * math.log(10) * INTERVAL  # ~4.6 s
    assert fd.is_alive("a", last + crossing - 0.01)
    assert not fd.is_alive("a", last + crossing + 0.01)
    assert fd.is_alive("a", last + crossing + 0.01, threshold=9.0)


def test_long_intervals_are_ignored() -> None:
    fd = FailureDetector(initial_interval=0.5, max_interval=0.5)
    last = feed(fd, "a", [0.25] * 10)
    mean = fd.mean_interval("a")
    fd.report("a", last + 60.0)  # back after an outage
    assert fd.mean_interval("a") == pytest.approx(mean)
    assert fd.last_arrival("a") == last + 60.0


def test_window_is_bounded() -> None:
    fd = FailureDetector(initial_interval=10.0, max_interval=10.0, window_size=4)
    feed(fd, "a", [1.0] * 4)
    assert fd.mean_interval("a") == pytest.approx(1.0)  # the initial guess was evicted


def test_remove_forgets() -> None:
    fd = FailureDetector()
    fd.report("a", 1.0)
    fd.remove("a")
    assert fd.endpoints() == []
    fd.remove("a")


def test_time_going_backwards_is_harmless() -> None:
    fd = FailureDetector()
    fd.report("a", 10.0)
    fd.report("a", 9.0)
    assert fd.last_arrival("a") == 10.0
    assert fd.phi("a", 5.0) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0},
        {"threshold": math.inf},
        {"initial_interval": 0},
        {"max_interval": -1.0},
        {"window_size": 0},
    ],
)
def test_bad_configuration(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FailureDetector(**kwargs)  # type: ignore[arg-type]


@given(gaps=intervals, t1=st.floats(0, 100), t2=st.floats(0, 100))
def test_phi_is_monotonic_in_elapsed_time(gaps: list[float], t1: float, t2: float) -> None:
    fd = FailureDetector(initial_interval=2 * INTERVAL)
    last = feed(fd, "a", gaps)
    lo, hi = sorted((t1, t2))
    assert 0.0 <= fd.phi("a", last + lo) <= fd.phi("a", last + hi)
    assert fd.is_alive("a", last + hi) <= fd.is_alive("a", last + lo)


@given(
    pairs=st.lists(
        st.tuples(
            st.floats(min_value=0.001, max_value=2 * INTERVAL),
            st.floats(min_value=0.0, max_value=1.0),
        ),
        min_size=1,
        max_size=60,
    ),
    elapsed=st.floats(0, 50),
)
def test_more_frequent_arrivals_cross_the_threshold_sooner(
    pairs: list[tuple[float, float]], elapsed: float
) -> None:
    """If every interval of A is at most the matching interval of B, A is at least as suspect as
    B after the same silence, so A is convicted no later than B."""
    slow_gaps = [gap for gap, _ in pairs]
    fast_gaps = [gap * shrink for gap, shrink in pairs]
    fast, slow = FailureDetector(), FailureDetector()
    fast_last = feed(fast, "a", fast_gaps)
    slow_last = feed(slow, "a", slow_gaps)
    phi_fast = fast.phi("a", fast_last + elapsed)
    phi_slow = slow.phi("a", slow_last + elapsed)
    assert phi_fast >= phi_slow * (1 - 1e-9)
    if not slow.is_alive("a", slow_last + elapsed):
        assert not fast.is_alive("a", fast_last + elapsed * (1 + 1e-9))


@given(gaps=intervals)
def test_time_to_conviction_is_threshold_times_mean(gaps: list[float]) -> None:
    fd = FailureDetector(initial_interval=2 * INTERVAL, threshold=8.0)
    last = feed(fd, "a", gaps)
    mean = fd.mean_interval("a")
    assert mean is not None
    crossing = 8.0 / PHI_FACTOR * mean
    assert fd.is_alive("a", last + crossing * (1 - 1e-6))
    assert not fd.is_alive("a", last + crossing * (1 + 1e-6))
