"""Space-Saving against exact counts: its guarantees hold on any stream."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from ringd.metrics.topk import Sampler, SpaceSaving

streams = st.lists(st.integers(0, 40).map(lambda i: b"k%d" % i), max_size=400)


@given(streams, st.integers(1, 12))
def test_space_saving_bounds_hold(stream: list[bytes], capacity: int) -> None:
    s = SpaceSaving(capacity)
    for key in stream:
        s.offer(key)
    exact = Counter(stream)
    top = s.top(capacity)
    assert len(top) == len(s) <= capacity
    assert s.total == len(stream) == sum(count for _, count, _ in top)
    for key, count, error in top:
        assert count - error <= exact[key] <= count
    tracked = {key for key, _, _ in top}
    for key, n in exact.items():
        if n > len(stream) / capacity:
            assert key in tracked
    if top:  # the smallest count held is where the next eviction comes from
        assert s._min == min(count for _, count, _ in top)


def test_exact_while_it_has_room() -> None:
    s = SpaceSaving(8)
    for key in [b"a"] * 5 + [b"b"] * 3 + [b"c"]:
        s.offer(key)
    assert s.top(2) == [(b"a", 5, 0), (b"b", 3, 0)]


def test_a_hot_key_survives_a_flood_of_cold_ones() -> None:
    s = SpaceSaving(4)
    for i in range(1000):
        s.offer(b"hot")
        s.offer(b"cold%d" % i)
    key, count, error = s.top(1)[0]
    assert key == b"hot" and count - error <= 1000 <= count


def test_sampler_summary_shows_keys() -> None:
    sampler = Sampler(4)
    sampler.writes.offer(b"x")
    out = sampler.summary(10, bytes.decode)
    assert out["writes"] == {
        "sampled": 1,
        "tracked": 1,
        "top": [{"key": "x", "count": 1, "error": 0}],
    }
    assert out["reads"] == {"sampled": 0, "tracked": 0, "top": []}
