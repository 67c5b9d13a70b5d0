"""PBS on a real 3-node cluster, RF 3: with one replica's applying of writes delayed (the
test_apply_delay hook), `predictconsistency` and `consistency probe` both see stale reads at
w=1, r=1 shortly after a write and none once T is past the delay; at w=2, r=2 both say 1.0."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from nodes import Ringd, wait_for
from typer.testing import CliRunner

from ringctl.app import app

RF3 = {"class": "SimpleStrategy", "replication_factor": 3}
DELAY_MS = 400
LATE_MS = 1500  # well past the delay


def ringctl(node: Ringd, *args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(app, [*args, "--json"], env={"RINGCTL_HOST": node.address})
    assert result.exit_code == code, result.output
    return json.loads(result.stdout) if code == 0 else result.output


def _text(node: Ringd, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"RINGCTL_HOST": node.address})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def delayed(cluster_factory: Callable[..., list[Ringd]]) -> list[Ringd]:
    nodes = cluster_factory(3)
    with nodes[0].client() as db:
        db.keyspace_create("pbs", replication=RF3, hinted_handoff=False)
    for n in nodes:
        wait_for(lambda n=n: _has(n, "pbs"), 10, "keyspace pbs everywhere")
    with nodes[2].client() as db:
        assert db.admin("test_apply_delay", delay_ms=DELAY_MS) == {"delay_ms": DELAY_MS}
    return nodes


def _has(node: Ringd, name: str) -> bool:
    with node.client() as db:
        return any(k["name"] == name for k in db.keyspace_list()["keyspaces"])


def _probe(node: Ringd, w: int, r: int, after: str, samples: int) -> dict[float, float]:
    out = ringctl(
        node,
        "consistency",
        "probe",
        "-k",
        "pbs",
        "--w",
        str(w),
        "--r",
        str(r),
        "--after-ms",
        after,
        "--samples",
        str(samples),
    )
    assert out["w"] == w and out["r"] == r and len(out["nodes"]) == 3
    for x in out["results"]:
        assert x["errors"] == 0, x
    return {x["after_ms"]: x["probability"] for x in out["results"]}


def _predict(node: Ringd, w: str, r: str, after: str) -> dict[tuple[int, int], dict[float, float]]:
    out = ringctl(node, "predictconsistency", "--rf", "3", "--w", w, "--r", r, "--after-ms", after)
    assert out["samples"]["write"] > 0 and len(out["nodes"]) == 3
    result = {}
    for p in out["predictions"]:
        assert p["write_latency_ms"] >= 0 and p["read_latency_ms"] >= 0
        result[(p["w"], p["r"])] = {c["after_ms"]: c["probability"] for c in p["consistent"]}
    return result


def test_prediction_and_probe_with_one_replica_delayed(delayed: list[Ringd]) -> None:
    a = delayed[0]
    # measured: a read through the delayed node right after a write is stale (its own replica
    # has not applied it); once T is past the delay every read is fresh
    early = _probe(a, 1, 1, "0", 30)[0.0]
    assert early < 1.0
    assert early <= 0.8  # a third of the reads go through the delayed node
    assert _probe(a, 1, 1, str(LATE_MS), 6)[float(LATE_MS)] >= 0.99
    # overlapping quorums: always fresh, even right away
    assert _probe(a, 2, 2, "0", 12)[0.0] == 1.0

    # predicted from the latencies the nodes measured meanwhile (some of them 400 ms writes)
    predicted = _predict(a, "1,2", "1,2", f"0,{LATE_MS}")
    assert predicted[(1, 1)][0.0] < 1.0
    assert predicted[(1, 1)][float(LATE_MS)] >= 0.99
    assert predicted[(2, 2)] == {0.0: 1.0, float(LATE_MS): 1.0}
    assert predicted[(1, 2)][float(LATE_MS)] >= 0.99

    # the tables for people
    text = _text(
        a, "predictconsistency", "--rf", "3", "--w", "1", "--r", "1", "--after-ms", "0,500"
    )
    assert "P@0ms" in text and "P@500ms" in text and "Write ms" in text
    text = _text(a, "consistency", "probe", "-k", "pbs", "--samples", "2", "--after-ms", "0")
    assert "Consistency probe: w=1, r=1 on pbs" in text and "Probability" in text

    # the delayed replica's writes show up in what it was measured with
    exports = []
    for n in delayed:
        with n.client() as db:
            exports.append(db.admin("replica_latencies"))
    slowest = max(v for e in exports for v, _ in e["write"]["buckets"])
    assert slowest >= DELAY_MS * 1000 * 0.9
    assert all(e["read"]["count"] > 0 for e in exports)  # r=2 reads asked a peer


def test_predict_and_probe_refuse_bad_input(delayed: list[Ringd]) -> None:
    a = delayed[0]
    out = ringctl(
        a, "predictconsistency", "--rf", "3", "--w", "4", "--r", "1", "--after-ms", "0", code=2
    )
    assert "between 1 and --rf 3" in out
    out = ringctl(
        a, "predictconsistency", "--rf", "3", "--w", "1", "--r", "1", "--after-ms", "x", code=2
    )
    assert "--after-ms" in out
    # nothing written yet: nothing to predict from
    out = ringctl(
        a, "predictconsistency", "--rf", "3", "--w", "1", "--r", "1", "--after-ms", "0", code=1
    )
    assert "no replica write latencies" in out
    out = ringctl(a, "consistency", "probe", "-k", "nope", "--samples", "1", code=2)
    assert "nope" in out
    # w above the keyspace's replication factor: a usage error, at the first sample
    with a.client() as db:
        db.keyspace_create(
            "single", replication={"class": "SimpleStrategy", "replication_factor": 1}
        )
    wait_for(lambda: all(_has(n, "single") for n in delayed), 10, "keyspace single everywhere")
    out = ringctl(a, "consistency", "probe", "-k", "single", "--w", "2", "--samples", "2", code=2)
    assert "exceeds replication factor" in out
    # every sample unavailable (a replica down, w=3): nothing measured, exit 3
    delayed[2].kill()
    wait_for(lambda: _down(a) == 1, 30, "a sees the node down")
    result = CliRunner().invoke(
        app,
        ["consistency", "probe", "-k", "pbs", "--w", "3", "--samples", "2", "--json"],
        env={"RINGCTL_HOST": a.address},
    )
    assert result.exit_code == 3, result.output
    (row,) = json.loads(result.stdout)["results"]
    assert row["errors"] == 2 and row["probability"] is None
    assert len(json.loads(result.stdout)["nodes"]) == 2


def _down(node: Ringd) -> int:
    with node.client() as db:
        return sum(1 for n in db.admin("status")["nodes"] if n["status"] == "DOWN")
