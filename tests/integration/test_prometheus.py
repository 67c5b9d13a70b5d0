"""``metrics_listen``: the Prometheus endpoint parses with prometheus_client's parser, its names
follow the views, and its counters move as the views' do."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from nodes import Ringd, free_port
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def metered(ringd_factory: Callable[..., Ringd]) -> tuple[Ringd, str]:
    port = free_port()
    node = ringd_factory(metrics_listen=f"127.0.0.1:{port}")
    with node.client() as db:
        db.keyspace_create("users")
    return node, f"http://127.0.0.1:{port}"


def test_endpoint_parses_and_counters_move_with_the_views(metered: tuple[Ringd, str]) -> None:
    node, base = metered
    writes = ("ringd_table_write_latency_total", (("keyspace", "users"),))
    completed = ("ringd_tpstats_completed_total", (("stage", "RequestStage"),))
    before = scrape(base + "/metrics")
    assert before[writes] == 0
    assert ("ringd_messages_dropped_total", (("type", "mutate"),)) in before
    assert ("ringd_read_repair_total", (("kind", "repaired_blocking"),)) in before
    assert ("ringd_repair_never_repaired_ranges", (("keyspace", "users"),)) in before
    with node.client() as db:
        for i in range(7):
            db.put("users", f"k{i}", {"n": i})
        view = db.admin("tablehistograms", keyspace="users")
        tp = db.admin("tpstats")
    after = scrape(base + "/metrics")
    assert after[writes] == view["write_latency"]["count"] == 7
    assert after[completed] > before[completed]
    assert (
        after[completed]
        >= next(s for s in tp["stages"] if s["name"] == "RequestStage")["completed"]
    )
    p99 = ("ringd_table_write_latency_microseconds", (("keyspace", "users"), ("quantile", "0.99")))
    assert after[p99] == view["write_latency"]["p99_us"] > 0


def test_other_paths_and_methods_are_refused(metered: tuple[Ringd, str]) -> None:
    node, base = metered
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(base + "/nope", timeout=10)
    assert err.value.code == 404
    request = urllib.request.Request(base + "/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 405
    with node.client() as db:  # the node still serves
        db.put("users", "k", {"n": 1})
