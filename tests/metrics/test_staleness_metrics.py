"""The pieces behind the staleness view and PBS: splitting a round trip into one-way trips with
the replica's clock, the mismatch meter, the replica latency export, and the lag probe's off
switch."""

from __future__ import annotations

import pytest
import trio

from ringd.config import ConfigError, load
from ringd.metrics.replica_latency import ReplicaLatencies, split
from ringd.metrics.staleness import Meter, StalenessMetrics
from ringd.service.lag_probe import LagProbe


def test_split_uses_the_replica_clock_and_stays_within_the_round_trip() -> None:
    # sent at 100.000 s, answered 10 ms later; the replica applied at 100.008 on its clock,
    # which runs 2 ms ahead: 6 ms out, 4 ms back
    assert split(0.010, 100.0, 100.008, 0.002, 0.0005) == pytest.approx(0.006)
    # a little outside the round trip (within the offset's error): clamped
    assert split(0.010, 100.0, 99.9998, 0.0, 0.0005) == 0.0
    assert split(0.010, 100.0, 100.0102, 0.0, 0.0005) == 0.010
    # clocks that cannot be right for this answer: half the round trip
    assert split(0.010, 100.0, 105.0, 0.0, 0.0005) == 0.005
    assert split(0.010, 100.0, 90.0, 0.0, 0.0005) == 0.005
    assert split(0.0, 100.0, 100.0, 0.0, 0.0) == 0.0


def test_replica_latencies_export_buckets_per_trip() -> None:
    now = [1000.0]
    lat = ReplicaLatencies(wall=lambda: now[0], offset_of=lambda host: (0.0, 0.0001))
    # answered now after 20 ms; the replica applied 15 ms after the send (t = 999.995)
    lat.mutated("b", 1.0, 0.020, int((now[0] - 0.005) * 1e6))
    lat.read_done("b", 1.0, 0.004, int((now[0] - 0.001) * 1e6))
    out = lat.export()
    assert out["write"]["count"] == out["ack"]["count"] == 1
    ((w_value, w_count),) = out["write"]["buckets"]
    ((a_value, _),) = out["ack"]["buckets"]
    assert w_count == 1 and 14_500 <= w_value <= 15_500 and 4_900 <= a_value <= 5_100
    ((r_value, _),) = out["read"]["buckets"]
    assert 2_950 <= r_value <= 3_050
    assert set(out) == {"write", "ack", "read", "response"}


def test_meter_rate_covers_recent_windows() -> None:
    t = [0.0]
    m = Meter(window=60, clock=lambda: t[0])
    for _ in range(30):
        m.mark()
    t[0] = 30.0
    assert m.rate() == pytest.approx(1.0)
    t[0] = 90.0  # first window ended with 30 events; the current one has none for 30 s
    assert m.rate() == pytest.approx(30 / 90)
    t[0] = 400.0  # idle for more than two windows: nothing recent
    assert m.rate() == 0.0
    assert m.count == 30


def test_staleness_per_keyspace() -> None:
    s = StalenessMetrics()
    s.compared["a"] += 4
    s.mismatch("a")
    view = s.keyspace("a")
    assert view["reads_compared"] == 4 and view["digest_mismatches"] == 1
    assert view["mismatch_ratio"] == 0.25 and view["mismatch_rate"] > 0
    assert s.keyspace("b") == {
        "reads_compared": 0,
        "digest_mismatches": 0,
        "mismatch_rate": 0.0,
        "mismatch_ratio": 0.0,
    }


async def test_lag_probe_interval_zero_is_off() -> None:
    metrics = StalenessMetrics()
    probe = LagProbe(
        topology=None,  # type: ignore[arg-type]  # never touched when off
        replica=None,  # type: ignore[arg-type]
        messaging=None,  # type: ignore[arg-type]
        clock=None,  # type: ignore[arg-type]
        metrics=metrics,
        interval=0,
        timeout=1.0,
    )
    with trio.fail_after(1):
        await probe.run()
    assert metrics.canaries == 0


def test_probe_interval_setting_is_validated() -> None:
    assert load(["--replica-lag-probe-interval-s", "0"]).replica_lag_probe_interval_s == 0
    assert load([]).replica_lag_probe_interval_s == 10.0
    with pytest.raises(ConfigError, match="replica.lag.probe.interval.s: must be between 0"):
        load(["--replica-lag-probe-interval-s", "-1"])


def test_replica_latencies_record_at_most_a_budget_a_second() -> None:
    lat = ReplicaLatencies(wall=lambda: 1000.0)
    stamp = 1000 * 10**6
    for i in range(2000):  # 2000 answers in one second: the first 512 are recorded
        lat.mutated("b", 5.0 + i / 2000, 0.001, stamp)
    assert lat.write.count == lat.ack.count == 512
    for i in range(10):  # a quiet second: all of them
        lat.read_done("b", 6.0 + i / 10, 0.001, stamp)
    assert lat.read.count == 10
    lat.mutated("b", 6.5, 0.001, stamp)  # the same second's budget as the reads
    assert lat.write.count == 513
