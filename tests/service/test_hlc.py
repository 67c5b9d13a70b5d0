"""The hybrid logical clock: never backwards, always past what it observed, bounded skew."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ringd.service.hlc import HybridClock


class FakeWall:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("tick"), st.floats(-5, 5)),
            st.tuples(st.just("see"), st.integers(0, 2_000_000_000)),
        ),
        max_size=50,
    )
)
def test_timestamps_only_go_forward_and_pass_what_was_seen(steps: list[tuple[str, float]]) -> None:
    wall = FakeWall()
    clock = HybridClock(wall, max_forward_us=10**12)
    last = clock.now()
    for kind, value in steps:
        if kind == "tick":
            wall.now += value  # the wall clock may even step backwards
            ts = clock.now()
            assert ts > last
            last = ts
        else:
            clock.observe(int(value))
            ts = clock.now()
            assert ts > last and ts > value
            last = ts


def test_a_lagging_clock_orders_after_an_observed_peer_timestamp() -> None:
    wall = FakeWall()
    behind = HybridClock(wall, offset_ms=-5000)
    peer_ts = int(wall.now * 1e6)
    behind.observe(peer_ts)
    assert behind.now() > peer_ts


def test_a_wild_future_timestamp_is_not_adopted() -> None:
    wall = FakeWall()
    clock = HybridClock(wall, max_forward_us=60_000_000)
    clock.observe(int((wall.now + 3600) * 1e6))
    assert clock.ignored == 1
    assert clock.now() < int((wall.now + 1) * 1e6)
