"""Prometheus exposition of the metric views, with prometheus_client's registry and format.

``ViewsCollector`` asks for a snapshot of the views (``tpstats``, ``netstats``,
``proxyhistograms``, ``tablehistograms`` of every keyspace, repair status, hints) at scrape time
and turns it into metric families whose names follow the views (docs/metrics.md). Scrapes run in
the node's trio thread (``ringd.metrics.http``), so they read the metric objects between
requests, never while one is half-updated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

QUANTILES = (("p50", "0.5"), ("p75", "0.75"), ("p95", "0.95"), ("p98", "0.98"), ("p99", "0.99"))

Snapshot = Callable[[], dict[str, Any]]


def _latency(
    name: str, doc: str, labels: list[str], series: list[tuple[list[str], dict[str, Any]]]
) -> Iterator[Metric]:
    """A latency summary as quantile gauges (µs) plus an all-time count."""
    q = GaugeMetricFamily(f"{name}_microseconds", doc, labels=[*labels, "quantile"])
    n = CounterMetricFamily(name, f"{doc}: requests measured", labels=labels)
    for values, s in series:
        for key, quantile in QUANTILES:
            q.add_metric([*values, quantile], s[f"{key}_us"])
        q.add_metric([*values, "1"], s["max_us"])
        n.add_metric(values, s["count"])
    yield q
    yield n


class ViewsCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot()
        yield from self._tpstats(snap["tpstats"])
        yield from self._proxy(snap["proxyhistograms"])
        yield from self._tables(snap["tablehistograms"])
        yield from self._netstats(snap["netstats"], snap["now"])
        yield from self._repair(snap["repair"], snap["now"])
        if "staleness" in snap:
            yield from _staleness(snap["staleness"])

    def _tpstats(self, tp: dict[str, Any]) -> Iterator[Metric]:
        gauges = {
            k: GaugeMetricFamily(f"ringd_tpstats_{k}", f"tpstats: {k} per stage", labels=["stage"])
            for k in ("active", "pending", "blocked")
        }
        counters = {
            k: CounterMetricFamily(
                f"ringd_tpstats_{k}", f"tpstats: {k} per stage", labels=["stage"]
            )
            for k in ("completed", "all_time_blocked")
        }
        for s in tp["stages"]:
            for k, gauge in gauges.items():
                gauge.add_metric([s["name"]], s[k])
            for k, counter in counters.items():
                counter.add_metric([s["name"]], s[k])
        yield from gauges.values()
        yield from counters.values()
        dropped = CounterMetricFamily(
            "ringd_messages_dropped", "internode messages dropped", labels=["type"]
        )
        timeouts = CounterMetricFamily(
            "ringd_messages_timeouts", "internode calls that timed out", labels=["type"]
        )
        for m in tp["messages"]:
            dropped.add_metric([m["type"]], m["dropped"])
            timeouts.add_metric([m["type"]], m["timeouts"])
        yield dropped
        yield timeouts
        for name, doc in (("latency", "served"), ("queue_wait", "waiting before they ran")):
            yield from _latency(
                f"ringd_messages_{name}",
                f"requests by type: time {doc} (tpstats)",
                ["type"],
                [([m["type"]], m[name]) for m in tp["messages"]],
            )

    def _proxy(self, ph: dict[str, Any]) -> Iterator[Metric]:
        yield from _latency(
            "ringd_proxy_latency",
            "coordinator latency (proxyhistograms)",
            ["kind"],
            [([k], ph[k]) for k in ("read", "write", "range")],
        )
        events = CounterMetricFamily(
            "ringd_proxy_events", "coordinator failure and repair counters", labels=["event"]
        )
        for name, value in ph["counters"].items():
            events.add_metric([name], value)
        yield events

    def _tables(self, tables: dict[str, dict[str, Any]]) -> Iterator[Metric]:
        for kind in ("read", "write"):
            yield from _latency(
                f"ringd_table_{kind}_latency",
                f"local {kind} latency per keyspace (tablehistograms)",
                ["keyspace"],
                [([ks], th[f"{kind}_latency"]) for ks, th in tables.items()],
            )
        for name in ("sstables_per_read", "cells_per_read", "row_size"):
            g = GaugeMetricFamily(
                f"ringd_table_{name}", f"tablehistograms: {name}", labels=["keyspace", "quantile"]
            )
            for ks, th in tables.items():
                for key, quantile in QUANTILES:
                    g.add_metric([ks, quantile], th[name][key])
                g.add_metric([ks, "1"], th[name]["max"])
            yield g

    def _netstats(self, ns: dict[str, Any], now: float) -> Iterator[Metric]:
        rr = CounterMetricFamily(
            "ringd_read_repair",
            "read repair (netstats): attempted, reconcile, ...",
            labels=["kind"],
        )
        for kind, value in ns["read_repair"].items():
            rr.add_metric([kind], value)
        yield rr
        pending = GaugeMetricFamily(
            "ringd_hints_pending_bytes", "hint bytes waiting per target host", labels=["host"]
        )
        oldest = GaugeMetricFamily(
            "ringd_hints_oldest_age_seconds", "age of the oldest hint per host", labels=["host"]
        )
        for h in ns["hints"]:
            host = h["address"] or h["host_id"]
            pending.add_metric([host], h["bytes"])
            if h["oldest_ms"] is not None:
                oldest.add_metric([host], max(0.0, now - h["oldest_ms"] / 1000))
        yield pending
        yield oldest
        yield GaugeMetricFamily(
            "ringd_repair_sessions_running",
            "repair sessions this node coordinates now",
            value=len(ns["repair_sessions"]),
        )

    def _repair(self, status: dict[str, Any], now: float) -> Iterator[Metric]:
        age = GaugeMetricFamily(
            "ringd_repair_oldest_age_seconds",
            "seconds since the least recently repaired local range was repaired",
            labels=["keyspace"],
        )
        never = GaugeMetricFamily(
            "ringd_repair_never_repaired_ranges",
            "local ranges never repaired",
            labels=["keyspace"],
        )
        stale = GaugeMetricFamily(
            "ringd_repair_stale",
            "1 if a local range is unrepaired past gc_grace",
            labels=["keyspace"],
        )
        for ks in status.get("keyspaces", []):
            if ks["oldest_repair"] is not None:
                age.add_metric([ks["keyspace"]], max(0.0, now - ks["oldest_repair"]))
            never.add_metric([ks["keyspace"]], ks["never_repaired"])
            stale.add_metric([ks["keyspace"]], 1 if ks["stale"] else 0)
        yield age
        yield never
        yield stale


def _staleness(st: dict[str, Any]) -> Iterator[Metric]:
    """The ``staleness`` view: mismatches per keyspace, hint backlog, the replica lag probe."""
    compared = CounterMetricFamily(
        "ringd_staleness_reads_compared", "reads that compared replicas", labels=["keyspace"]
    )
    mismatches = CounterMetricFamily(
        "ringd_staleness_digest_mismatches",
        "reads whose replicas' digests disagreed",
        labels=["keyspace"],
    )
    rate = GaugeMetricFamily(
        "ringd_staleness_mismatch_rate",
        "digest mismatches per second, last one to two minutes",
        labels=["keyspace"],
    )
    for ks in st["keyspaces"]:
        compared.add_metric([ks["keyspace"]], ks["reads_compared"])
        mismatches.add_metric([ks["keyspace"]], ks["digest_mismatches"])
        rate.add_metric([ks["keyspace"]], ks["mismatch_rate"])
    yield compared
    yield mismatches
    yield rate
    yield GaugeMetricFamily(
        "ringd_staleness_hints_bytes", "hint bytes waiting for every host", value=st["hints_bytes"]
    )
    yield GaugeMetricFamily(
        "ringd_staleness_oldest_hint_age_seconds",
        "age of the oldest hint waiting (0: none)",
        value=st["oldest_hint_age_s"] or 0.0,
    )
    probe = st["lag_probe"]
    yield from _latency(
        "ringd_staleness_replica_lag",
        "replica lag probe: first to last acknowledgement of a canary at ONE",
        [],
        [([], probe["lag"])],
    )
    yield CounterMetricFamily(
        "ringd_staleness_canaries", "replica lag probe canaries written", value=probe["canaries"]
    )
    yield CounterMetricFamily(
        "ringd_staleness_canaries_incomplete",
        "canaries some live node did not acknowledge in time",
        value=probe["incomplete"],
    )


def registry(snapshot: Snapshot) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(ViewsCollector(snapshot))
    return reg


def exposition(reg: CollectorRegistry) -> bytes:
    """The text exposition format of everything ``reg`` collects now."""
    return generate_latest(reg)
