"""nodetool's metric views: ``tpstats``, ``tablehistograms``, ``netstats`` (fields: docs/metrics.md)."""

from __future__ import annotations

from typing import Any

import typer

from ringctl import output
from ringctl.commands.admin import _call
from ringctl.layout import Col, compact_table
from ringctl.options import Host, Json, Keyspace, Timeout

STAGE_COLUMNS = (
    Col("Pool Name", whole=True),
    Col("Active", whole=True, justify="right"),
    Col("Pending", whole=True, justify="right"),
    Col("Completed", whole=True, justify="right"),
    Col("Blocked", whole=True, justify="right"),
    Col("All time blocked", whole=True, justify="right"),
)
MESSAGE_COLUMNS = (
    Col("Message type", whole=True),
    Col("Dropped", whole=True, justify="right"),
    Col("Timed out", whole=True, justify="right"),
)
PERCENTILES = ("p50", "p75", "p95", "p98", "p99")


def tpstats(host: Host = None, timeout: Timeout = None, as_json: Json = False) -> None:
    """Stages (active, pending, completed, blocked) and internode messages dropped or timed out."""
    result = _call(host, timeout, "tpstats")

    def render(r: dict[str, Any]) -> None:
        keys = ("name", "active", "pending", "completed", "blocked", "all_time_blocked")
        output.console.print(
            compact_table(STAGE_COLUMNS, [[s[k] for k in keys] for s in r["stages"]])
        )
        output.console.print()
        rows = [[m["type"], m["dropped"], m["timeouts"]] for m in r["messages"]]
        output.console.print(compact_table(MESSAGE_COLUMNS, rows))

    output.emit(result, as_json, render)


def tablehistograms(
    keyspace: Keyspace,
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """A keyspace's local read and write latency (µs), sstables and cells per read, row size."""
    result = _call(host, timeout, "tablehistograms", keyspace=keyspace)

    def render(r: dict[str, Any]) -> None:
        columns = (
            Col("Percentile", whole=True),
            Col("Read µs", whole=True, justify="right"),
            Col("Write µs", whole=True, justify="right"),
            Col("SSTables", whole=True, justify="right"),
            Col("Cells", whole=True, justify="right"),
            Col("Row bytes", whole=True, justify="right"),
        )
        rd, wr = r["read_latency"], r["write_latency"]
        sst, cells, size = r["sstables_per_read"], r["cells_per_read"], r["row_size"]
        rows: list[list[Any]] = [
            [f"{p[1:]}%", rd[f"{p}_us"], wr[f"{p}_us"], sst[p], cells[p], size[p]]
            for p in PERCENTILES
        ]
        rows.append(["Min", rd["min_us"], wr["min_us"], "", "", ""])
        rows.append(["Max", rd["max_us"], wr["max_us"], sst["max"], cells["max"], size["max"]])
        rows.append(
            ["Count", rd["count"], wr["count"], sst["count"], cells["count"], size["count"]]
        )
        output.say(f"{r['keyspace']} histograms")
        output.console.print(compact_table(columns, rows))

    output.emit(result, as_json, render)


def netstats(host: Host = None, timeout: Timeout = None, as_json: Json = False) -> None:
    """Mode, hints being replayed per host, repair and stream sessions with progress, read
    repair counts."""
    result = _call(host, timeout, "netstats")

    def render(r: dict[str, Any]) -> None:
        output.say(f"Mode: {r['mode']}")
        if not r["hints"]:
            output.say("Not replaying hints")
        else:
            cols: tuple[Col, ...] = (
                Col("Hints for", whole=True),
                Col("Files", whole=True, justify="right"),
                Col("Bytes", justify="right"),
                Col("Delivered", whole=True, justify="right"),
                Col("Replaying", whole=True),
            )
            rows = [
                [
                    h["address"] or h["host_id"],
                    h["files"],
                    output.human_bytes(h["bytes"]),
                    h["delivered"],
                    "yes" if h["dispatching"] else "no",
                ]
                for h in r["hints"]
            ]
            output.console.print(compact_table(cols, rows))
        if not r["repair_sessions"]:
            output.say("No repair sessions running")
        else:
            cols = (
                Col("Repair session", whole=True),
                Col("Ranges", whole=True, justify="right"),
                Col("Progress", whole=True, justify="right"),
                Col("Streamed", justify="right"),
            )
            rows = [
                [
                    s["id"],
                    f"{s['ranges_done']}/{s['ranges_total']}",
                    f"{s['progress'] * 100:.0f}%",
                    output.human_bytes(s["bytes_streamed"]),
                ]
                for s in r["repair_sessions"]
            ]
            output.console.print(compact_table(cols, rows))
        streams = r.get("streams", [])
        if not streams:
            output.say("No streams")
        else:
            cols = (
                Col("Stream", whole=True),
                Col("Plan", whole=True),
                Col("Peer", whole=True),
                Col("Keyspace", whole=True),
                Col("State", whole=True),
                Col("Ranges", whole=True, justify="right"),
                Col("Progress", whole=True, justify="right"),
                Col("Bytes", justify="right"),
            )
            rows = [
                [
                    f"{'<-' if s['direction'] == 'in' else '->'} {s['id'][:8]}",
                    s["plan"],
                    s["peer"],
                    s["keyspace"],
                    s["state"],
                    f"{s['ranges_done']}/{s['ranges_total']}",
                    f"{s['progress'] * 100:.0f}%",
                    output.human_bytes(s["bytes"]),
                ]
                for s in streams
            ]
            output.console.print(compact_table(cols, rows))
        rr = r["read_repair"]
        output.say("Read Repair Statistics:")
        output.say(f"Attempted: {rr['attempted']}")
        output.say(f"Mismatch (Blocking): {rr['repaired_blocking']}")
        output.say(f"Reconciled: {rr['reconcile']}")
        output.say(f"Timed out: {rr['timed_out']}")

    output.emit(result, as_json, render)


def register(app: typer.Typer) -> None:
    for fn in (tpstats, tablehistograms, netstats):
        app.command()(fn)
