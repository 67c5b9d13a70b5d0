"""Verbs for seeing staleness and predicting consistency: ``staleness`` (one view of digest
mismatches per keyspace, the hint backlog, repair age and the replica lag probe),
``replica_latencies`` (the one-way trips PBS needs, as HDR buckets) and the ``test_apply_delay``
hook (hold a replica's applying of peers' writes). Fields: docs/metrics.md and docs/protocol.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ringd.config import Config
from ringd.metrics import CoordinatorMetrics
from ringd.net.server import Handler, Session
from ringd.protocol.errors import Unauthorized
from ringd.protocol.messages import arg
from ringd.schema import Schema
from ringd.service.replica import Replica
from ringd.service.topology import Topology


class StalenessView:
    """Puts the ``staleness`` view together from the services' own state."""

    def __init__(
        self,
        *,
        metrics: CoordinatorMetrics,
        schema: Schema,
        topology: Topology,
        hints_pending: Callable[[], list[dict[str, Any]]],
        repair_status: Callable[[], dict[str, Any]],
        wall: Callable[[], float],
        probe_interval: float,
    ) -> None:
        self.metrics = metrics
        self.schema = schema
        self.topology = topology
        self.hints_pending = hints_pending
        self.repair_status = repair_status
        self.wall = wall
        self.probe_interval = probe_interval

    def view(self, keyspace: str | None = None) -> dict[str, Any]:
        """Per keyspace: digest mismatches and repair age; per target host: hints waiting;
        the replica lag probe's histogram. Ages are seconds (None: nothing to age)."""
        now = self.wall()
        names = [keyspace] if keyspace is not None else [k.name for k in self.schema.live()]
        repair = {k["keyspace"]: k for k in self.repair_status().get("keyspaces", [])}
        staleness = self.metrics.staleness
        rows = []
        for name in names:
            r = repair.get(name, {})
            oldest = r.get("oldest_repair")
            rows.append(
                {
                    "keyspace": name,
                    **staleness.keyspace(name),
                    "oldest_repair_age_s": None if oldest is None else round(now - oldest, 1),
                    "never_repaired_ranges": r.get("never_repaired", 0),
                    "repair_stale": bool(r.get("stale", False)),
                }
            )
        ring = self.topology.ring
        hints = []
        for h in self.hints_pending():
            if not h["files"]:
                continue
            info = ring.nodes.get(h["host_id"])
            oldest_ms = h["oldest_ms"]
            hints.append(
                {
                    "host_id": h["host_id"],
                    "address": info.address if info is not None else None,
                    "files": h["files"],
                    "bytes": h["total_bytes"],
                    "oldest_age_s": (
                        None if oldest_ms is None else round(max(0.0, now - oldest_ms / 1000), 1)
                    ),
                }
            )
        ages = [h["oldest_age_s"] for h in hints if h["oldest_age_s"] is not None]
        return {
            "keyspaces": rows,
            "hints": hints,
            "hints_bytes": sum(h["bytes"] for h in hints),
            "oldest_hint_age_s": max(ages) if ages else None,
            "lag_probe": {"interval_s": self.probe_interval, **staleness.lag_probe()},
        }


def verbs(
    view: StalenessView, metrics: CoordinatorMetrics, replica: Replica, config: Config
) -> dict[str, Handler]:
    def staleness(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        keyspace = arg(args, "keyspace", str, None)
        if keyspace is not None:
            view.schema.require(keyspace)
        return view.view(keyspace)

    def replica_latencies(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "address": config.listen,
            "host_id": view.topology.local_host_id,
            **metrics.replica_latency.export(),
        }

    def test_apply_delay(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        if not config.enable_test_hooks:
            raise Unauthorized(
                "test hooks are disabled on this node; start ringd with --enable-test-hooks"
            )
        replica.set_apply_delay(arg(args, "delay_ms", int))
        return {"delay_ms": replica.apply_delay_ms}

    return {
        "staleness": staleness,
        "replica_latencies": replica_latencies,
        "test_apply_delay": test_apply_delay,
    }
