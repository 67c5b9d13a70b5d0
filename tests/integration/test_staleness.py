"""Staleness measured on a real cluster: the `staleness` view shows digest mismatches per
keyspace, the hints waiting for a replica that missed writes, repair age, and the replica lag
probe's histogram (which sees a replica whose writes are delayed); Prometheus has the same."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from nodes import Ringd, free_port, wait_for
from typer.testing import CliRunner

from ringctl.app import app

RF3 = {"class": "SimpleStrategy", "replication_factor": 3}
KEYSPACE_FIELDS = {
    "keyspace",
    "reads_compared",
    "digest_mismatches",
    "mismatch_rate",
    "mismatch_ratio",
    "oldest_repair_age_s",
    "never_repaired_ranges",
    "repair_stale",
}


def ringctl(node: Ringd, *args: str, as_json: bool = True) -> Any:
    argv = [*args, "--json"] if as_json else list(args)
    result = CliRunner().invoke(app, argv, env={"RINGCTL_HOST": node.address, "COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if as_json else result.stdout


def _staleness(node: Ringd) -> Any:
    return ringctl(node, "staleness")


def test_staleness_view_moves_with_mismatches_hints_and_lag(
    cluster_factory: Callable[..., list[Ringd]],
) -> None:
    a, b, c = cluster_factory(3, replica_lag_probe_interval_s=0.2, write_timeout_ms=2000)
    with a.client() as db:
        db.keyspace_create("users", replication=RF3)
        db.keyspace_create("other", replication=RF3)
    wait_for(
        lambda: {k["keyspace"] for k in _staleness(c)["keyspaces"]} == {"users", "other"},
        10,
        "keyspaces everywhere",
    )
    before = _staleness(a)
    assert set(before) == {"keyspaces", "hints", "hints_bytes", "oldest_hint_age_s", "lag_probe"}
    assert set(before["lag_probe"]) == {
        "interval_s",
        "canaries",
        "incomplete",
        "lag",
        "last_acks_ms",
    }
    assert set(before["lag_probe"]["lag"]) >= {"count", "p50_us", "p99_us", "max_us"}
    assert [k["keyspace"] for k in before["keyspaces"]] == ["other", "users"]
    assert all(set(k) == KEYSPACE_FIELDS for k in before["keyspaces"])
    users = next(k for k in before["keyspaces"] if k["keyspace"] == "users")
    assert users["digest_mismatches"] == 0 and users["oldest_repair_age_s"] is None
    assert before["lag_probe"]["interval_s"] == 0.2

    with a.client() as db:
        db.put("users", "1", {"name": "Bob"}, consistency="ALL")
        db.admin("test_filter", action="drop", to=[c.address], verbs=["mutate"])
        try:
            db.put("users", "1", {"name": "Alice"}, w=2)  # c misses it: a keeps a hint
            # the dropped mutation times out (write_timeout_ms), then a hint is kept for c
            wait_for(lambda: _staleness(a)["hints"], 20, "a hint for c")
            held = _staleness(a)
        finally:
            db.admin("test_filter", action="clear")
        assert db.get("users", "1", r=3)["columns"] == {"name": "Alice"}
    assert [h["address"] for h in held["hints"]] == [c.address]
    assert set(held["hints"][0]) == {"host_id", "address", "files", "bytes", "oldest_age_s"}
    assert held["hints_bytes"] > 0 and held["oldest_hint_age_s"] is not None
    after = ringctl(a, "staleness", "users")
    (users,) = after["keyspaces"]
    assert users["keyspace"] == "users"
    assert users["digest_mismatches"] == 1 and users["reads_compared"] >= 1
    assert users["mismatch_rate"] > 0 and 0 < users["mismatch_ratio"] <= 1
    other = next(k for k in _staleness(a)["keyspaces"] if k["keyspace"] == "other")
    assert other["digest_mismatches"] == 0

    # the lag probe: every node's canaries reach every node; delaying c's writes shows up
    wait_for(lambda: _staleness(b)["lag_probe"]["lag"]["count"] >= 2, 20, "canaries on b")
    probe = _staleness(b)["lag_probe"]
    assert set(probe["last_acks_ms"]) == {a.address, b.address, c.address}
    assert probe["lag"]["max_us"] < 250_000
    with c.client() as db:
        db.admin("test_apply_delay", delay_ms=300)
    try:
        wait_for(lambda: _staleness(b)["lag_probe"]["lag"]["max_us"] >= 250_000, 20, "lag seen")
        assert _staleness(b)["lag_probe"]["last_acks_ms"][c.address] >= 250
    finally:
        with c.client() as db:
            db.admin("test_apply_delay", delay_ms=0)

    text = ringctl(b, "staleness", as_json=False)
    assert "users" in text and "Replica lag probe" in text
    assert max(len(line) for line in text.splitlines()) <= 80, text


def test_apply_delay_hook_needs_test_hooks_and_checks_its_argument(
    ringd_factory: Callable[..., Ringd],
) -> None:
    import pytest

    from ringd.protocol.errors import ProtocolError

    plain = ringd_factory("plain")
    with plain.client() as db, pytest.raises(ProtocolError, match="test hooks are disabled"):
        db.admin("test_apply_delay", delay_ms=10)
    hooked = ringd_factory("hooked", enable_test_hooks=True)
    with hooked.client() as db:
        with pytest.raises(ProtocolError, match="delay_ms must be between 0 and 600000"):
            db.admin("test_apply_delay", delay_ms=-1)
        assert db.admin("test_apply_delay", delay_ms=0) == {"delay_ms": 0}


def test_prometheus_has_the_staleness_metrics(ringd_factory: Callable[..., Ringd]) -> None:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    port = free_port()
    node = ringd_factory(metrics_listen=f"127.0.0.1:{port}", replica_lag_probe_interval_s=0.2)
    with node.client() as db:
        db.keyspace_create("users")

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    wait_for(lambda: scrape()[("ringd_staleness_canaries_total", ())] >= 2, 20, "canaries")
    samples = scrape()
    users = (("keyspace", "users"),)
    assert samples[("ringd_staleness_digest_mismatches_total", users)] == 0
    assert samples[("ringd_staleness_reads_compared_total", users)] == 0
    assert samples[("ringd_staleness_mismatch_rate", users)] == 0
    assert samples[("ringd_staleness_hints_bytes", ())] == 0
    assert ("ringd_staleness_replica_lag_microseconds", (("quantile", "0.99"),)) in samples
    assert samples[("ringd_staleness_replica_lag_total", ())] >= 2
    assert samples[("ringd_staleness_canaries_incomplete_total", ())] == 0
    with node.client() as db:
        view = db.admin("staleness")
    assert view["lag_probe"]["canaries"] >= samples[("ringd_staleness_canaries_total", ())]
