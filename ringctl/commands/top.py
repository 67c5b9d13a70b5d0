"""``ringctl top``: a live view of the whole cluster, one row per node, refreshed in place.

Every interval it asks the target node for the cluster's nodes (``status``) and each node that
is up for its views (``proxyhistograms``, ``tpstats``, ``netstats``, ``repair_state``), one
connection per node kept open between intervals. Rates are the change of the nodes' all-time
counters over the interval, so the first row appears after one interval. With ``--json`` it
prints one JSON document per interval, one per line (fields: docs/metrics.md).
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from typing import Annotated, Any

import typer

from ringctl import credentials, output, target
from ringctl.client import Client, ConnectError
from ringctl.layout import Col, compact_table
from ringctl.options import Host, Json, Timeout
from ringd.protocol.errors import ProtocolError

COLUMNS = (
    Col("Address", whole=True),
    Col("St", whole=True),
    Col("Rd/s", whole=True, justify="right"),
    Col("Wr/s", whole=True, justify="right"),
    Col("Rd p99", whole=True, justify="right"),
    Col("Wr p99", whole=True, justify="right"),
    Col("Hints", whole=True, justify="right"),
    Col("Drop", whole=True, justify="right"),
    Col("Mism%", whole=True, justify="right"),
    Col("Repair lag", whole=True, justify="right"),
)
VIEWS = ("proxyhistograms", "tpstats", "netstats", "repair_state")


def sample(db: Client) -> dict[str, Any]:
    """The views of one node that ``top`` reads, and when they were read."""
    views = {view: db.admin(view) for view in VIEWS}
    return {"at": time.monotonic(), "wall": time.time(), **views}


def node_row(
    node: dict[str, Any], cur: dict[str, Any] | None, prev: dict[str, Any] | None
) -> dict[str, Any]:
    """One node's line of the document: rates over the interval from ``prev`` to ``cur``."""
    row: dict[str, Any] = {
        "address": node["address"],
        "host_id": node["host_id"],
        "dc": node["dc"],
        "status": node["status"],
        "state": node["state"],
        "reads_per_s": None,
        "writes_per_s": None,
        "read_p99_ms": None,
        "write_p99_ms": None,
        "hints_pending_bytes": None,
        "hints_oldest_age_s": None,
        "dropped": None,
        "digest_mismatch_pct": None,
        "repair_lag_s": None,
        "never_repaired_ranges": None,
        "error": node.get("error"),
    }
    if cur is None:
        return row
    ph, ns = cur["proxyhistograms"], cur["netstats"]
    row["read_p99_ms"] = round(ph["read"]["p99_us"] / 1000, 2)
    row["write_p99_ms"] = round(ph["write"]["p99_us"] / 1000, 2)
    hints = ns["hints"]
    row["hints_pending_bytes"] = sum(h["bytes"] for h in hints)
    oldest = [h["oldest_ms"] for h in hints if h["oldest_ms"] is not None]
    row["hints_oldest_age_s"] = (
        round(max(0.0, cur["wall"] - min(oldest) / 1000), 1) if oldest else None
    )
    row["dropped"] = sum(m["dropped"] for m in cur["tpstats"]["messages"])
    keyspaces = cur["repair_state"]["keyspaces"]
    row["never_repaired_ranges"] = sum(k["never_repaired"] for k in keyspaces)
    repaired = [k["oldest_repair"] for k in keyspaces if k["oldest_repair"] is not None]
    if repaired and not row["never_repaired_ranges"]:
        row["repair_lag_s"] = round(max(0.0, cur["wall"] - min(repaired)), 1)
    if prev is not None and cur["at"] > prev["at"]:
        elapsed = cur["at"] - prev["at"]
        before = prev["proxyhistograms"]
        reads = ph["read"]["count"] - before["read"]["count"]
        writes = ph["write"]["count"] - before["write"]["count"]
        row["reads_per_s"] = round(max(0, reads) / elapsed, 1)
        row["writes_per_s"] = round(max(0, writes) / elapsed, 1)
        reconciled = (
            ph["counters"]["read_repair_reconcile"] - before["counters"]["read_repair_reconcile"]
        )
        row["digest_mismatch_pct"] = round(100 * reconciled / reads, 1) if reads > 0 else 0.0
    return row


def short(value: float | None, unit: str = "") -> str:
    """A number in at most 5 characters (``unit`` after it): 7, 2.5, 312, 1.2k, 45M, ..."""
    if value is None:
        return "-"
    for suffix, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            value, unit = value / size, suffix + unit
            break
    text = f"{value:.1f}" if 0 < abs(value) < 10 and value != int(value) else f"{value:.0f}"
    return text + unit


def _age(seconds: float | None, never: int | None) -> str:
    if never:
        return "never"
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _status(row: dict[str, Any]) -> str:
    if row["error"]:
        return "?"
    return ("U" if row["status"] == "UP" else "D") + row["state"][0]


def render(doc: dict[str, Any]) -> Any:
    """The document as a heading and a table that fits 80 columns."""
    from rich.console import Group
    from rich.text import Text

    nodes = doc["nodes"]
    up = sum(1 for n in nodes if n["status"] == "UP")
    heading = (
        f"ringctl top  {doc['cluster']}  {up}/{len(nodes)} up  "
        f"every {doc['interval_s']:g}s  {time.strftime('%H:%M:%S', time.localtime(doc['time']))}"
    )
    rows = [
        [
            n["address"],
            _status(n),
            short(n["reads_per_s"]),
            short(n["writes_per_s"]),
            short(n["read_p99_ms"]),
            short(n["write_p99_ms"]),
            short(n["hints_pending_bytes"], "B"),
            short(n["dropped"]),
            short(n["digest_mismatch_pct"]),
            _age(n["repair_lag_s"], n["never_repaired_ranges"]),
        ]
        for n in nodes
    ]
    notes = [Text(f"{n['address']}: {n['error']}") for n in nodes if n["error"]]
    legend = Text("p99 in ms; Hints: bytes waiting; Drop: messages dropped; Mism%: reads repaired")
    return Group(Text(heading, style="bold"), compact_table(COLUMNS, rows), *notes, legend)


class _Nodes:
    """One open connection per node, made when first needed and dropped when it fails."""

    def __init__(self, stack: ExitStack, cluster: str | None, timeout: float) -> None:
        self.stack = stack
        self.cluster = cluster
        self.timeout = timeout
        self.clients: dict[str, Client] = {}

    def client(self, address: str) -> Client:
        db = self.clients.get(address)
        if db is None:
            db = Client(
                address,
                timeout=self.timeout,
                cluster=self.cluster,
                credentials=credentials.resolve(self.cluster, address),
                tls_ca=target.tls_ca_for(self.cluster, address),
            )
            db.connect()
            self.clients[address] = self.stack.enter_context(db)
        return db

    def drop(self, address: str) -> None:
        db = self.clients.pop(address, None)
        if db is not None:
            db.close()

    def ask(self, address: str, fn: Any) -> Any:
        try:
            return fn(self.client(address))
        except (ConnectError, ProtocolError, OSError) as exc:
            self.drop(address)
            raise _Unreachable(str(exc) or type(exc).__name__) from None


class _Unreachable(Exception):
    pass


def _status_of(nodes: _Nodes, addresses: list[str]) -> dict[str, Any]:
    """``status`` from the first of ``addresses`` that answers."""
    last = ""
    for address in addresses:
        try:
            result: dict[str, Any] = nodes.ask(address, lambda db: db.admin("status"))
            return result
        except _Unreachable as exc:
            last = f"{address}: {exc}"
    output.fail(f"no node answered 'status' ({last}); is the cluster running?", output.CONNECT)


def _collect(
    nodes: _Nodes, status: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    listed, samples = [], {}
    for node in status["nodes"]:
        node = dict(node)
        if node["status"] == "UP":
            try:
                samples[node["address"]] = nodes.ask(node["address"], sample)
            except _Unreachable as exc:
                node["error"] = f"cannot read its views: {exc}"
        listed.append(node)
    return listed, samples


def top(
    interval: Annotated[
        float,
        typer.Option("--interval", min=0.2, metavar="SECONDS", help="Seconds between refreshes."),
    ] = 2.0,
    count: Annotated[
        int,
        typer.Option("--count", min=0, metavar="N", help="Stop after N refreshes (0: never)."),
    ] = 0,
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """A live view of the cluster: per node status, reads and writes per second, p99 latency,
    hints waiting, dropped messages, reads repaired (digest mismatches) and repair lag. With
    --json, one JSON document per refresh, one per line."""
    to = target.resolve(host)
    with ExitStack() as stack:
        nodes = _Nodes(stack, to.cluster, timeout or target.DEFAULT_TIMEOUT)
        known = [to.address]
        status = _status_of(nodes, known)
        _, prev = _collect(nodes, status)
        live = None
        if not as_json and output.console.is_terminal:
            from rich.live import Live

            live = stack.enter_context(Live(console=output.console, auto_refresh=False))
        shown = 0
        try:
            while count == 0 or shown < count:
                time.sleep(interval)
                known = [to.address] + [n["address"] for n in status["nodes"]]
                status = _status_of(nodes, list(dict.fromkeys(known)))
                listed, cur = _collect(nodes, status)
                doc = {
                    "time": time.time(),
                    "interval_s": interval,
                    "cluster": status["cluster"],
                    "nodes": [
                        node_row(n, cur.get(n["address"]), prev.get(n["address"])) for n in listed
                    ],
                }
                prev = {**prev, **cur}
                shown += 1
                if as_json:
                    sys.stdout.write(output.dumps(doc) + "\n")
                    sys.stdout.flush()
                elif live is not None:
                    live.update(render(doc), refresh=True)
                else:
                    output.console.print(render(doc))
        except KeyboardInterrupt:
            pass


def register(app: typer.Typer) -> None:
    app.command()(top)
