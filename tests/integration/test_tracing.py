"""``ringctl get|put|delete --trace`` on a real 3-node cluster: a read that triggers read repair
shows the digest mismatch and the repair write (and the stale replica applying it), a put shows
each replica's apply, a put with a replica down shows the hint stored (docs/protocol.md 11.9)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from nodes import Ringd, create_keyspace, wait_status
from typer.testing import CliRunner

from ringctl.app import app
from ringd.protocol.errors import InvalidRequest

RF3 = {"class": "SimpleStrategy", "replication_factor": 3}


def ringctl(node: Ringd, *args: str) -> Any:
    """ringctl ARGS against ``node``: (exit code, stdout)."""
    result = CliRunner().invoke(app, list(args), env={"RINGCTL_HOST": node.address})
    return result.exit_code, result.stdout


def traced(node: Ringd, *args: str, code: int = 0) -> dict[str, Any]:
    exit_code, out = ringctl(node, *args, "--trace", "--json")
    assert exit_code == code, out
    doc = json.loads(out)
    for event in doc["trace"]:
        assert {"node", "elapsed_us", "kind", "event"} <= set(event), event
        assert type(event["elapsed_us"]) is int and event["elapsed_us"] >= 0
    return dict(doc)


def kinds(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in doc["trace"] if e["kind"] == kind]


def create(nodes: list[Ringd], name: str, rf: int = 3, **options: Any) -> None:
    create_keyspace(nodes, name, rf, **options)


@pytest.fixture
def abc(cluster_factory: Callable[..., list[Ringd]]) -> list[Ringd]:
    nodes = cluster_factory(3, gossip_interval_ms=100)
    create(nodes, "tr", hinted_handoff=False)
    create(nodes, "th")  # hinted handoff on
    create(nodes, "ts", rf=2, sloppy_quorum=True)
    return nodes


def test_a_traced_read_repair_shows_the_mismatch_and_the_repair_write(abc: list[Ringd]) -> None:
    a, b, c = abc
    with a.client() as db:  # b misses the write (test hooks drop a's mutations to it)
        db.admin("test_filter", action="drop", to=[b.address], verbs=["mutate"])
        try:
            db.put("tr", "k", {"v": 1}, consistency="QUORUM")
        finally:
            db.admin("test_filter", action="clear")

    doc = traced(a, "get", "tr", "k", "-c", "ALL")
    assert doc["result"]["columns"] == {"v": 1}
    [plan] = kinds(doc, "plan")
    assert plan["node"] == a.address and plan["consistency"] == "ALL"
    assert plan["block_for"] == 3 and sorted(plan["replicas"]) == sorted(n.address for n in abc)
    [mismatch] = kinds(doc, "digest_mismatch")
    assert mismatch["node"] == a.address and mismatch["replicas"] == [b.address]
    [repair] = kinds(doc, "repair_write")
    assert repair["replica"] == b.address and "1 cell" in repair["event"]
    assert [e["replica"] for e in kinds(doc, "repair_ack")] == [b.address]
    # the replicas' own events: each read, and b applying the repair write
    assert {e["node"] for e in kinds(doc, "read")} == {a.address, b.address, c.address}
    assert [e["node"] for e in kinds(doc, "apply")] == [b.address]
    order = [e["kind"] for e in doc["trace"]]
    assert order.index("digest_mismatch") < order.index("repair_write") < order.index("done")

    # repaired: the next traced read finds the digests equal, and nothing to repair
    again = traced(a, "get", "tr", "k", "-c", "ALL")
    assert not kinds(again, "digest_mismatch") and not kinds(again, "repair_write")
    assert "digests match" in kinds(again, "done")[0]["event"]

    # for people: a table with the same events
    code, text = ringctl(a, "get", "tr", "k", "-c", "ALL", "--trace")
    assert code == 0 and "Tracing get tr/k" in text and "digests match" in text


def test_a_traced_put_shows_each_replica_apply(abc: list[Ringd]) -> None:
    doc = traced(abc[0], "put", "tr", "k", '{"v": 2}', "-c", "ALL")
    assert doc["result"]["acks"] == 3 and doc["result"]["key"] == "k", doc
    applied = kinds(doc, "apply")
    assert sorted(e["node"] for e in applied) == sorted(n.address for n in abc)
    received = {e["node"] for e in kinds(doc, "received")}  # replica-side, timed there
    assert received == {abc[1].address, abc[2].address}
    assert [e["kind"] for e in doc["trace"]][-1] == "done"

    code, text = ringctl(abc[0], "delete", "tr", "k", "--trace")
    assert code == 0 and "OK (" in text and "Tracing delete tr/k" in text and "plan:" in text


def test_a_traced_write_that_times_out_shows_the_timeout(abc: list[Ringd]) -> None:
    a, b, _ = abc
    with a.client() as db:
        db.admin("test_filter", action="drop", to=[b.address], verbs=["mutate"])
    doc = traced(a, "put", "tr", "k", '{"v": 6}', "-c", "ALL", code=3)
    assert doc["error"]["code"] == "WRITE_TIMEOUT"
    sent = [e["replica"] for e in kinds(doc, "send")]
    assert b.address in sent and b.address not in [e["replica"] for e in kinds(doc, "response")]
    # the write's own timeout (b's mutate may also time out first: a timeout naming b)
    [timeout] = [e for e in kinds(doc, "timeout") if "replica" not in e]
    assert timeout["node"] == a.address and "2 of 3 acks" in timeout["event"]
    assert all(e["replica"] == b.address for e in kinds(doc, "timeout") if "replica" in e)
    code, text = ringctl(a, "put", "tr", "k", '{"v": 7}', "-c", "ALL", "--trace")
    assert code == 3 and "Tracing put tr/k" in text and "write timed out" in text


def test_a_traced_put_with_a_replica_down_shows_the_hint(abc: list[Ringd]) -> None:
    a, b, c = abc
    c.stop()
    wait_status(a, c.address, "DOWN")
    doc = traced(a, "put", "th", "k", '{"v": 3}', "-c", "QUORUM")
    assert doc["result"]["acks"] == 2
    [plan] = kinds(doc, "plan")
    assert c.address in plan["replicas"] and c.address not in plan["contacts"]
    [hint] = kinds(doc, "hint")
    assert hint["replica"] == c.address and hint["node"] == a.address

    # sloppy quorum: a key c replicates (RF 2) gets a stand-in that holds the write for c
    with a.client() as db:
        key = next(
            k
            for k in (f"s{i}" for i in range(200))
            if c.address in db.admin("getendpoints", keyspace="ts", key=k)["endpoints"]
        )
    sloppy = traced(a, "put", "ts", key, '{"v": 5}', "-c", "QUORUM")
    assert sloppy["result"]["acks"] == 2
    held = [e for e in kinds(sloppy, "response") if "holds the write as a hint" in e["event"]]
    standing = [e for e in kinds(sloppy, "send") if f"standing in for {c.address}" in e["event"]]
    assert len(held) == len(standing) == 1 and held[0]["replica"] == standing[0]["replica"]

    # a traced request that fails still shows its events, then the error (exit 3)
    failed = traced(a, "put", "tr", "k", '{"v": 4}', "-c", "ALL", code=3)
    assert failed["error"]["code"] == "UNAVAILABLE"
    assert kinds(failed, "plan") == [] and kinds(failed, "failed")


def test_trace_must_be_a_boolean(abc: list[Ringd]) -> None:
    with abc[0].client() as db:
        with pytest.raises(InvalidRequest, match="'trace' must be bool"):
            db._call("get", {"keyspace": "tr", "key": "k", "trace": "yes"})
        assert db._call("get", {"keyspace": "tr", "key": "k", "trace": False}) is None
