"""``metrics_listen``: the Prometheus endpoint parses with prometheus_client's parser, its names
follow the views, and its counters move as the views' do."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from nodes import Ringd, free_port, wait_all_up, wait_for
from prometheus_client.parser import text_string_to_metric_families

RF3 = {"class": "SimpleStrategy", "replication_factor": 3}
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
    # per message type as served: the seven puts, their latency and queue wait
    puts = next(m for m in tp["messages"] if m["type"] == "put")
    assert after[("ringd_messages_latency_total", (("type", "put"),))] == 7
    assert after[("ringd_messages_queue_wait_total", (("type", "put"),))] == 7
    assert puts["latency"]["count"] == 7
    served_p99 = ("ringd_messages_latency_microseconds", (("quantile", "0.99"), ("type", "put")))
    assert after[served_p99] == puts["latency"]["p99_us"] > 0


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


def test_dropped_mutations_and_read_repair_move_as_the_views_do(
    ringd_factory: Callable[..., Ringd],
) -> None:
    ports = [free_port() for _ in range(3)]
    mport = free_port()
    seeds = [f"127.0.0.1:{ports[0]}"]
    nodes = [
        ringd_factory(
            f"node{i + 1}",
            port=ports[i],
            seeds=seeds,
            enable_test_hooks=True,
            wait=False,
            metrics_listen=f"127.0.0.1:{mport}" if i == 0 else None,
        )
        for i in range(3)
    ]
    for n in nodes:
        n.wait_ready()
    wait_all_up(nodes)
    a, _, c = nodes
    url = f"http://127.0.0.1:{mport}/metrics"
    dropped = ("ringd_messages_dropped_total", (("type", "mutate"),))
    blocking = ("ringd_read_repair_total", (("kind", "repaired_blocking"),))
    with a.client() as db:
        db.keyspace_create("users", replication=RF3, hinted_handoff=False)
        wait_for(lambda: _everywhere(nodes), 10, "keyspace users everywhere")
        db.put("users", "1", {"name": "Bob"}, consistency="ALL")
        assert scrape(url)[dropped] == 0
        db.admin("test_filter", action="drop", to=[c.address], verbs=["mutate"])
        db.put("users", "1", {"name": "Alice"}, w=2)
        wait_for(lambda: db.admin("test_filter", action="list")["dropped"] >= 1, 30, "a drop")
        db.admin("test_filter", action="clear")
        mutate = next(m for m in db.admin("tpstats")["messages"] if m["type"] == "mutate")
        assert scrape(url)[dropped] == mutate["dropped"] == 1
        before = scrape(url)[blocking]
        assert db.get("users", "1", r=3)["columns"] == {"name": "Alice"}
        view = db.admin("netstats")["read_repair"]["repaired_blocking"]
    assert scrape(url)[blocking] == view >= before + 1


def _everywhere(nodes: list[Ringd]) -> bool:
    for n in nodes:
        with n.client() as db:
            if not any(k["name"] == "users" for k in db.keyspace_list()["keyspaces"]):
                return False
    return True
