"""nodetool's metric views: ``tpstats``, ``tablehistograms``, ``netstats`` (fields: docs/metrics.md)."""

from __future__ import annotations

from typing import Annotated, Any

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
    Col("Served", whole=True, justify="right"),
    Col("p50 µs", whole=True, justify="right"),
    Col("p99 µs", whole=True, justify="right"),
    Col("Wait p50", whole=True, justify="right"),
    Col("Wait p99", whole=True, justify="right"),
)
PERCENTILES = ("p50", "p75", "p95", "p98", "p99")


def tpstats(host: Host = None, timeout: Timeout = None, as_json: Json = False) -> None:
    """Stages (active, pending, completed, blocked); messages by type: dropped or timed out,
    served, latency and queue-wait percentiles (µs)."""
    result = _call(host, timeout, "tpstats")

    def render(r: dict[str, Any]) -> None:
        keys = ("name", "active", "pending", "completed", "blocked", "all_time_blocked")
        output.console.print(
            compact_table(STAGE_COLUMNS, [[s[k] for k in keys] for s in r["stages"]])
        )
        output.console.print()
        rows = [
            [
                m["type"],
                m["dropped"],
                m["timeouts"],
                m["latency"]["count"],
                _us(m["latency"]["p50_us"]),
                _us(m["latency"]["p99_us"]),
                _us(m["queue_wait"]["p50_us"]),
                _us(m["queue_wait"]["p99_us"]),
            ]
            for m in r["messages"]
        ]
        output.console.print(compact_table(MESSAGE_COLUMNS, rows))

    output.emit(result, as_json, render)


def _us(value: float) -> str:
    return f"{value:.0f}"


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
    """Mode, hints being replayed per host, repair sessions with progress (coordinated here, and
    streaming into or out of this replica), stream sessions (membership changes) with progress,
    read repair counts."""
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
        incoming = r.get("repair_incoming", [])
        if incoming:
            cols = (
                Col("Repair streams here", whole=True),
                Col("Keyspace", whole=True),
                Col("Ranges", whole=True, justify="right"),
                Col("Received", justify="right"),
                Col("Sent", justify="right"),
            )
            rows = [
                [
                    s["id"],
                    s["keyspace"],
                    s["ranges_validated"],
                    f"{s['rows_received']} rows, {output.human_bytes(s['bytes_received'])}",
                    f"{s['rows_sent']} rows, {output.human_bytes(s['bytes_sent'])}",
                ]
                for s in incoming
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


_UNITS = {"ms": 1, "s": 1000, "m": 60_000}
MAX_DURATION_MS = 600_000


def duration_ms(text: str) -> int:
    """DURATION as milliseconds: ``500ms``, ``10s``, ``2m``, or a bare number of milliseconds
    (nodetool's)."""
    raw = text.strip().lower()
    unit = next((u for u in ("ms", "s", "m") if raw.endswith(u)), "")
    number = raw[: len(raw) - len(unit)] if unit else raw
    try:
        value = float(number)
    except ValueError:
        output.fail(
            f"DURATION {text!r} is not a duration: give e.g. 10s, 500ms, 2m or milliseconds",
            output.USAGE,
        )
    ms = round(value * _UNITS[unit or "ms"])
    if not 1 <= ms <= MAX_DURATION_MS:
        output.fail(
            f"DURATION must be from 1 ms to {MAX_DURATION_MS // 60_000} minutes", output.USAGE
        )
    return ms


TOP_COLUMNS = (
    Col("Partition"),
    Col("Count", whole=True, justify="right"),
    Col("+/-", whole=True, justify="right"),
)


def toppartitions(
    keyspace: Keyspace,
    duration: Annotated[
        str,
        typer.Argument(
            metavar="DURATION",
            help="How long to sample: 10s, 500ms, 2m, or milliseconds (at most 10 minutes).",
            show_default=False,
        ),
    ],
    capacity: Annotated[
        int,
        typer.Option(
            "-s",
            "--capacity",
            min=1,
            max=1024,
            help="Keys each sampler tracks (memory; more gives exact counts to more keys).",
        ),
    ] = 256,
    top: Annotated[
        int, typer.Option("-k", "--top", min=1, help="Keys to show per sampler (at most -s).")
    ] = 10,
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Sample the node's hottest keys of a keyspace by local reads and writes for DURATION:
    count and error per key (a key's true count is within count - error and count)."""
    ms = duration_ms(duration)
    if top > capacity:
        output.fail(f"--top ({top}) must not exceed --capacity ({capacity})", output.USAGE)
    result = _call(
        host,
        timeout,
        "toppartitions",
        default_timeout=ms / 1000 + 30,
        keyspace=keyspace,
        duration_ms=ms,
        capacity=capacity,
        top=top,
    )

    def render(r: dict[str, Any]) -> None:
        for name in ("writes", "reads"):
            s = r[name]
            output.say(
                f"{name.upper()} Sampler: {s['sampled']} sampled, {s['tracked']} keys tracked "
                f"({r['capacity']} capacity)"
            )
            if not s["top"]:
                output.say("  (none)")
            else:
                rows = [[_shown(t["key"]), t["count"], t["error"]] for t in s["top"]]
                output.console.print(compact_table(TOP_COLUMNS, rows))
            output.say("")

    output.emit(result, as_json, render)


def _shown(key: str | bytes) -> str:
    return f"0x{key.hex()}" if isinstance(key, bytes) else key


def register(app: typer.Typer) -> None:
    for fn in (tpstats, tablehistograms, netstats, toppartitions):
        app.command()(fn)
