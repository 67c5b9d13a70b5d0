"""tpstats, tablehistograms and netstats on a real 3-node cluster: --json fields as documented in
docs/metrics.md, and the counters move when messages are dropped and replicas disagree."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from nodes import Ringd, wait_for
from typer.testing import CliRunner

from ringctl.app import app

RF3 = {"class": "SimpleStrategy", "replication_factor": 3}
STAGE_FIELDS = {"name", "active", "pending", "completed", "blocked", "all_time_blocked"}
LATENCY_FIELDS = {"count", "p50_us", "p75_us", "p95_us", "p98_us", "p99_us", "min_us", "max_us"}
MESSAGE_FIELDS = {"type", "dropped", "timeouts", "latency", "queue_wait"}
SHAPE_FIELDS = {"count", "p50", "p75", "p95", "p98", "p99", "max"}


@pytest.fixture
def abc(cluster_factory: Callable[..., list[Ringd]]) -> list[Ringd]:
    nodes = cluster_factory(3)
    with nodes[0].client() as db:
        db.keyspace_create("users", replication=RF3, hinted_handoff=False)
    for n in nodes:
        wait_for(lambda n=n: _has_keyspace(n), 10, "keyspace users everywhere")
    return nodes


def _has_keyspace(node: Ringd) -> bool:
    with node.client() as db:
        return any(k["name"] == "users" for k in db.keyspace_list()["keyspaces"])


def ringctl_json(node: Ringd, *args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--json"], env={"RINGCTL_HOST": node.address})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def ringctl_text(node: Ringd, *args: str) -> str:
    result = CliRunner().invoke(
        app, list(args), env={"RINGCTL_HOST": node.address, "COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def test_each_view_answers_with_the_documented_fields(abc: list[Ringd]) -> None:
    a = abc[0]
    with a.client() as db:
        for i in range(20):
            db.put("users", f"k{i}", {"n": i}, consistency="ALL")
            db.get("users", f"k{i}", consistency="ALL")

    tp = ringctl_json(a, "tpstats")
    assert [s["name"] for s in tp["stages"]] == [
        "RequestStage",
        "MemtableFlushWriter",
        "CompactionExecutor",
        "HintsDispatcher",
        "RepairSession",
    ]
    assert all(set(s) == STAGE_FIELDS for s in tp["stages"])
    assert tp["stages"][0]["completed"] >= 40
    messages = {m["type"]: m for m in tp["messages"]}
    assert all(set(m) == MESSAGE_FIELDS for m in tp["messages"])
    assert (messages["mutate"]["dropped"], messages["mutate"]["timeouts"]) == (0, 0)
    for verb in ("put", "get"):  # served by this coordinator: latency and queue wait
        assert messages[verb]["latency"]["count"] == 20
        assert messages[verb]["queue_wait"]["count"] == 20
        assert set(messages[verb]["latency"]) >= LATENCY_FIELDS
        assert 0 < messages[verb]["latency"]["p50_us"] <= messages[verb]["latency"]["max_us"]
        assert messages[verb]["queue_wait"]["p50_us"] <= messages[verb]["queue_wait"]["max_us"]
    # the replicas served the mutations and reads this coordinator sent them
    b_messages = {m["type"]: m for m in ringctl_json(abc[1], "tpstats")["messages"]}
    assert b_messages["mutate"]["latency"]["count"] >= 20
    assert b_messages["read_local"]["queue_wait"]["count"] >= 1

    th = ringctl_json(a, "tablehistograms", "users")
    assert th["keyspace"] == "users"
    for name in ("read_latency", "write_latency"):
        assert set(th[name]) >= LATENCY_FIELDS
        assert th[name]["count"] >= 20  # RF 3 on 3 nodes: every row is local too
        assert 0 < th[name]["p50_us"] <= th[name]["max_us"]
    for name in ("sstables_per_read", "cells_per_read", "row_size"):
        assert set(th[name]) == SHAPE_FIELDS
    assert th["cells_per_read"]["p50"] == 1
    assert th["sstables_per_read"]["max"] == 0  # nothing flushed yet
    assert th["row_size"]["p50"] > 0

    ns = ringctl_json(a, "netstats")
    assert ns["mode"] == "NORMAL"
    assert ns["hints"] == [] and ns["repair_sessions"] == []
    assert set(ns["read_repair"]) == {"attempted", "reconcile", "repaired_blocking", "timed_out"}

    for view in (["tpstats"], ["tablehistograms", "users"], ["netstats"]):
        text = ringctl_text(a, *view)
        assert max(len(line) for line in text.splitlines()) <= 80, text


def test_tpstats_counts_mutations_the_filter_dropped(abc: list[Ringd]) -> None:
    a, _, c = abc
    with a.client() as db:
        db.admin("test_filter", action="drop", to=[c.address], verbs=["mutate"])
        for i in range(3):
            db.put("users", f"d{i}", {"n": i}, w=2)
        wait_for(lambda: db.admin("test_filter", action="list")["dropped"] >= 3, 30, "drops")
        db.admin("test_filter", action="clear")
    tp = ringctl_json(a, "tpstats")
    mutate = next(m for m in tp["messages"] if m["type"] == "mutate")
    assert mutate["dropped"] == 3
    assert tp["peers"][c.address]["dropped"] == 3
    assert "mutate" in ringctl_text(a, "tpstats")
    # the other nodes dropped nothing
    assert (
        next(m for m in ringctl_json(c, "tpstats")["messages"] if m["type"] == "mutate")["dropped"]
        == 0
    )


def test_netstats_counts_read_repair(abc: list[Ringd]) -> None:
    a, _, c = abc
    with a.client() as db:
        db.put("users", "1", {"name": "Bob"}, consistency="ALL")
        db.admin("test_filter", action="drop", to=[c.address], verbs=["mutate"])
        db.put("users", "1", {"name": "Alice"}, w=2)
        db.admin("test_filter", action="clear")
        before = ringctl_json(a, "netstats")["read_repair"]
        assert db.get("users", "1", r=3)["columns"] == {"name": "Alice"}
    after = ringctl_json(a, "netstats")["read_repair"]
    assert after["attempted"] > before["attempted"]
    assert after["repaired_blocking"] >= before["repaired_blocking"] + 1
    assert "Read Repair Statistics" in ringctl_text(a, "netstats")
