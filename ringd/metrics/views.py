"""The nodetool-style metric views (``tpstats``, ``tablehistograms``, ``netstats``) put together
from the metric groups and the services' own state; plain data, documented in docs/metrics.md."""

from __future__ import annotations

from typing import Any

from ringd.metrics import CoordinatorMetrics, TableMetrics, VerbMetrics
from ringd.metrics.requests import VerbLatency

#: the stages in the order ``tpstats`` lists them
STAGES = (
    "RequestStage",
    "MemtableFlushWriter",
    "CompactionExecutor",
    "HintsDispatcher",
    "RepairSession",
)
#: message types always listed (others appear once something happened to them)
MESSAGE_TYPES = ("mutate", "read_local", "read_hinted", "mutate_hinted", "scan_local")


def tpstats(
    stages: dict[str, dict[str, int]],
    verbs: VerbMetrics,
    served: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Stages (active, pending, completed, blocked, all-time blocked) and messages by type:
    dropped and timed out (as sent), latency and queue wait (as served, ``served``: verb ->
    ``VerbLatency.summary()``)."""
    rows = []
    for name in STAGES:
        s = stages.get(name, {})
        rows.append(
            {
                "name": name,
                "active": s.get("active", 0),
                "pending": s.get("pending", 0),
                "completed": s.get("completed", 0),
                "blocked": s.get("blocked", 0),
                "all_time_blocked": s.get("all_time_blocked", 0),
            }
        )
    by_verb = verbs.by_verb()
    served = served or {}
    names = list(MESSAGE_TYPES) + sorted((set(by_verb) | set(served)) - set(MESSAGE_TYPES))
    empty = VerbLatency().summary()
    messages = [
        {"type": v, **by_verb.get(v, {"dropped": 0, "timeouts": 0}), **served.get(v, empty)}
        for v in names
    ]
    return {"stages": rows, "messages": messages, "peers": verbs.by_peer()}


def tablehistograms(keyspace: str, metrics: TableMetrics | None) -> dict[str, Any]:
    """One keyspace's local read/write latency (µs), sstables and cells per read, row size."""
    return {"keyspace": keyspace, **(metrics or TableMetrics()).summary()}


def netstats(
    *,
    mode: str,
    hints: list[dict[str, Any]],
    addresses: dict[str, str],
    repair: dict[str, Any],
    metrics: CoordinatorMetrics,
    incoming: list[dict[str, Any]] | None = None,
    streams: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Mode, hints waiting or being replayed per host, running repair sessions with their
    progress (those this node coordinates, and every session streaming to or from this
    replica: ``incoming``), stream sessions (membership changes) with bytes and progress, and
    the read repair counters."""
    replay = [
        {
            "host_id": h["host_id"],
            "address": addresses.get(h["host_id"]),
            "files": h["files"],
            "bytes": h["total_bytes"],
            "oldest_ms": h["oldest_ms"],
            "delivered": h["counters"].get("delivered", 0),
            "delivered_bytes": h["counters"].get("delivered_bytes", 0),
            "dispatching": h["dispatching"],
        }
        for h in hints
        if h["files"] or h["dispatching"]
    ]
    sessions = [
        {
            "id": s["id"],
            "participants": s["participants"],
            "ranges_done": s["ranges_done"],
            "ranges_total": s["ranges_total"],
            "progress": s["ranges_done"] / s["ranges_total"] if s["ranges_total"] else 0.0,
            "rows_streamed": s["rows_streamed"],
            "bytes_streamed": s["bytes_streamed"],
        }
        for s in repair.get("running", [])
    ]
    c = metrics.counters
    return {
        "mode": mode,
        "hints": replay,
        "repair_sessions": sessions,
        "repair_incoming": list(incoming or []),
        "streams": streams or [],
        "read_repair": {
            "attempted": c["digest_mismatch"],
            "reconcile": c["read_repair_reconcile"],
            "repaired_blocking": c["read_repair_blocking"],
            "timed_out": c["read_repair_timeout"],
        },
    }
