"""Loaded by the ringd processes of ``bench_cluster.py --metrics-off`` (through PYTHONPATH):
turns every latency/size record of the metric groups into a no-op, so that a run with and a run
without it show what recording metrics costs. Benchmark-only; never on a real node."""

from ringd.metrics import TableMetrics
from ringd.metrics.histogram import Buckets, Histogram


def _skip(self: object, *args: object) -> None:
    return None


Histogram.add = _skip  # type: ignore[method-assign]
Buckets.add = _skip  # type: ignore[method-assign]
TableMetrics.read = _skip  # type: ignore[method-assign]
TableMetrics.write = _skip  # type: ignore[method-assign]
