"""Admin commands in the spirit of nodetool: status, info, ring, describe*, gossip, storage."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from ringctl import output, target
from ringctl.completion import KEYSPACES
from ringctl.layout import Col, compact_table
from ringctl.options import Host, Json, Key, Keyspace, Timeout
from ringd.words import plural

OptionalKeyspace = Annotated[
    str | None,
    typer.Argument(help="Keyspace (default: all).", autocompletion=KEYSPACES),
]


def _call(
    host: str | None,
    timeout: float | None,
    op: str,
    default_timeout: float | None = None,
    **args: Any,
) -> Any:
    """Run an admin verb; ``timeout`` (--timeout) wins over the verb's ``default_timeout``."""
    with output.errors(), target.client(host, timeout) as db:
        return db.admin(op, timeout=timeout or default_timeout, **args)


def _letters(node: dict[str, Any]) -> str:
    return ("U" if node["status"] == "UP" else "D") + node["state"][0]


STATUS_COLUMNS = (
    Col("--", whole=True),
    Col("Address", whole=True),
    Col("Load", justify="right"),
    Col("Tokens", whole=True, justify="right"),
    Col("Owns", whole=True, justify="right"),
    Col("Host ID", whole=True),
)


def render_status(r: dict[str, Any], console: Console) -> None:
    """nodetool-style tables that fit 80 columns with addresses and host ids whole: one space
    between columns, and one table per datacenter and rack, named in its heading (a Rack column
    would not fit beside a host id)."""
    owns = "effective ownership" if r["effective"] else "share of the token space"
    console.print(
        f"Status=Up/Down\n|/ State=Normal/Leaving/Joining   Owns={owns}",
        markup=False,
        highlight=False,
    )
    for dc, rack in sorted({(n["dc"], n["rack"]) for n in r["nodes"]}):
        heading = f"Datacenter: {dc}, rack: {rack}"
        console.print(f"\n{heading}\n{'=' * len(heading)}", markup=False, highlight=False)
        rows = [
            [
                _letters(n),
                n["address"],
                output.human_bytes(n["load"]).replace(" ", ""),
                n["tokens"],
                f"{n['owns'] * 100:.1f}%",
                n["host_id"],
            ]
            for n in r["nodes"]
            if (n["dc"], n["rack"]) == (dc, rack)
        ]
        console.print(compact_table(STATUS_COLUMNS, rows))
    console.print(Text(clock_line(r["nodes"])), highlight=False)


def clock_line(nodes: list[dict[str, Any]]) -> str:
    """Every node's clock offset from the cluster, ``ADDRESS=+N`` (ms, as it gossips it), in
    one line that wraps between nodes (a column would not fit in 80 beside a host id)."""
    parts = []
    for n in sorted(nodes, key=lambda n: (n["dc"], n["address"])):
        ms = n.get("clock_offset_ms")
        parts.append(f"{n['address']}={'?' if ms is None else f'{ms:+d}'}")
    return "\nClock offsets (ms, each node's clock minus the cluster's): " + " ".join(parts)


def status(
    keyspace: OptionalKeyspace = None,
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Every node by datacenter and rack: state (UN/DN/UJ/UL), address, load, tokens, ownership,
    host id."""
    result = _call(host, timeout, "status", keyspace=keyspace)
    output.emit(result, as_json, lambda r: render_status(r, output.console))
    if not as_json:
        for line in result.get("repair_warnings", []):
            output.err_console.print(f"warning: {line}", markup=False)


def info(host: Host = None, timeout: Timeout = None, as_json: Json = False) -> None:
    """This node: host id, uptime, load, generation, storage, schema."""
    result = _call(host, timeout, "info")

    def render(r: dict[str, Any]) -> None:
        for k, v in r.items():
            shown = output.human_bytes(v) if k in ("load", "memtable_bytes") else v
            output.console.print(Text(f"{k.replace('_', ' ').title():<18}: {shown}"))

    output.emit(result, as_json, render)


def ring(host: Host = None, timeout: Timeout = None, as_json: Json = False) -> None:
    """Every token on the ring with its node."""
    result = _call(host, timeout, "ring")
    output.emit(
        result,
        as_json,
        lambda r: output.console.print(
            output.table(
                None,
                ["Address", "DC", "Rack", "Status", "Token"],
                [[t["address"], t["dc"], t["rack"], t["status"], t["token"]] for t in r["tokens"]],
            )
        ),
    )


def describecluster(host: Host = None, timeout: Timeout = None, as_json: Json = False) -> None:
    """Cluster name, partitioner and schema versions per node."""
    result = _call(host, timeout, "describecluster")

    def render(r: dict[str, Any]) -> None:
        lines = [
            "Cluster Information:",
            f"\tName: {r['name']}",
            f"\tPartitioner: {r['partitioner']}",
            "\tSchema versions:",
        ]
        lines += [f"\t\t{v}: [{', '.join(a)}]" for v, a in r["schema_versions"].items()]
        if r["unreachable"]:
            lines.append(f"\t\tUNREACHABLE: [{', '.join(r['unreachable'])}]")
        output.console.print("\n".join(lines), markup=False, highlight=False)

    output.emit(result, as_json, render)


def describering(
    keyspace: Keyspace, host: Host = None, timeout: Timeout = None, as_json: Json = False
) -> None:
    """Token ranges of a keyspace with their replicas."""
    result = _call(host, timeout, "describering", keyspace=keyspace)
    output.emit(
        result,
        as_json,
        lambda r: output.console.print(
            output.table(
                f"Keyspace {keyspace}",
                ["Start token", "End token", "Endpoints"],
                [
                    [x["start_token"], x["end_token"], ", ".join(x["endpoints"])]
                    for x in r["ranges"]
                ],
            )
        ),
    )


def getendpoints(
    keyspace: Keyspace, key: Key, host: Host = None, timeout: Timeout = None, as_json: Json = False
) -> None:
    """The replicas of a key, in ring order, and its token (with sloppy quorum, a down replica's
    current stand-in follows it: ``ADDRESS (down, held by ADDRESS)``)."""
    result = _call(host, timeout, "getendpoints", keyspace=keyspace, key=key)

    def render(r: dict[str, Any]) -> None:
        fallbacks = r.get("fallbacks") or {}
        for address in r["endpoints"]:
            held = fallbacks.get(address)
            output.say(address if held is None else f"{address} (down, held by {held})")

    output.emit(result, as_json, render)


def gossipinfo(host: Host = None, timeout: Timeout = None, as_json: Json = False) -> None:
    """The gossip state of every endpoint this node knows: one row per endpoint (--json has
    every application state with its version)."""
    result = _call(host, timeout, "gossipinfo")
    output.emit(result, as_json, _render_gossip)


def _render_gossip(r: dict[str, Any]) -> None:
    def state(ep: dict[str, Any], name: str) -> Any:
        return (ep.get("states") or {}).get(name, {}).get("value")

    rows = []
    for host_id, ep in sorted(r.items(), key=lambda item: str(item[1].get("address"))):
        tokens = state(ep, "TOKENS")
        rows.append(
            [
                ep.get("address"),
                "UP" if ep.get("alive") else "DOWN",
                state(ep, "STATUS"),
                f"{state(ep, 'DC')}/{state(ep, 'RACK')}",
                ep.get("generation"),
                ep.get("heartbeat"),
                "local" if ep.get("local") else ep.get("phi"),
                "-" if ep.get("downtime") is None else f"{ep['downtime']:g}s",
                output.human_bytes(state(ep, "LOAD")),
                len(tokens) if isinstance(tokens, list) else "-",
                state(ep, "SCHEMA"),
                host_id,
            ]
        )
    columns = ["Address", "Up", "Status", "DC/Rack", "Generation", "Heartbeat", "Phi"]
    columns += ["Down for", "Load", "Tokens", "Schema", "Host ID"]
    output.console.print(output.table(None, columns, rows))


def proxyhistograms(host: Host = None, timeout: Timeout = None, as_json: Json = False) -> None:
    """Coordinator read, write and range latency percentiles (µs) and failure counts."""
    result = _call(host, timeout, "proxyhistograms")

    def render(r: dict[str, Any]) -> None:
        kinds = ("read", "write", "range")
        rows = [
            [p] + [r[k][f"{p}_us"] for k in kinds]
            for p in ("p50", "p75", "p95", "p98", "p99", "max")
        ]
        rows.append(["count"] + [r[k]["count"] for k in kinds])
        output.console.print(
            output.table("Proxy latencies (micros)", ["Percentile", "Read", "Write", "Range"], rows)
        )
        output.console.print(
            output.table(None, ["counter", "value"], [[k, v] for k, v in r["counters"].items()])
        )

    output.emit(result, as_json, render)


def flush(
    keyspace: OptionalKeyspace = None,
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Flush memtables to sstables."""
    result = _call(host, timeout, "flush", default_timeout=300, keyspace=keyspace)
    output.emit(result, as_json, lambda r: output.console.print(f"flushed {r['flushed']}"))


def compact(
    keyspace: OptionalKeyspace = None,
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Major compaction: merge every sstable of the keyspace(s), purging what may be purged."""
    result = _call(host, timeout, "compact", default_timeout=3600, keyspace=keyspace)
    output.emit(result, as_json, lambda r: output.console.print(f"compacted {r['compacted']}"))


def cleanup(
    keyspace: OptionalKeyspace = None,
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Remove the data this node no longer replicates (after nodes joined), keyspace by
    keyspace with progress; refused while nodes are joining or leaving."""
    with output.errors(), target.client(host, timeout) as db:
        if keyspace is not None:
            names = [keyspace]
        else:
            names = [k["name"] for k in db.keyspace_list()["keyspaces"]]
        done = []
        for i, name in enumerate(names, 1):
            result = db.admin("cleanup", timeout=timeout or 3600, keyspace=name)
            for ks in result["keyspaces"]:
                done.append(ks)
                if not as_json:
                    output.say(
                        f"cleanup {i}/{len(names)}: {ks['keyspace']}: "
                        f"{plural(ks['rows_removed'], 'row')} removed, "
                        f"{output.human_bytes(ks['bytes_before'])} -> "
                        f"{output.human_bytes(ks['bytes_after'])} on disk"
                    )
    if as_json:
        output.emit({"keyspaces": done}, True, lambda r: None)


def decommission(host: Host = None, timeout: Timeout = None, as_json: Json = False) -> None:
    """Stream the node's ranges to the nodes taking them over, hand its hints over, leave the
    ring (LEAVING, then LEFT) and stop the node; refused below a keyspace's replication factor
    or while another node joins or leaves ('ringctl netstats' shows the streams)."""
    result = _call(host, timeout, "decommission", default_timeout=86400)

    def render(r: dict[str, Any]) -> None:
        targets = len({s["peer"] for s in r["sessions"]})
        output.say(
            f"{r['address']} left the ring: {plural(r['rows'], 'row')} "
            f"({output.human_bytes(r['bytes'])}) streamed to {plural(targets, 'node')}, "
            f"{plural(r['hints'], 'hint')} handed over; it stops now"
        )

    output.emit(result, as_json, render)


def removenode(
    what: Annotated[
        str,
        typer.Argument(
            metavar="HOST_ID|status|force",
            help="Host id of the dead node to remove; 'status' of the running removal; 'force' it.",
        ),
    ],
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Remove a dead node: the remaining replicas copy its ranges to the nodes taking them
    over, then it leaves the ring ('status': the removal this node runs; 'force': remove
    the node now without waiting for the streams)."""
    if what in ("status", "force"):
        result = _call(host, timeout, "removenode", action=what)
        removal = result.get("removal", result) if what == "status" else result
    else:
        removal = _call(host, timeout, "removenode", default_timeout=86400, host_id=what)
        result = removal

    def render(_r: dict[str, Any]) -> None:
        if removal is None:
            output.say("No removal running")
            return
        output.say(
            f"Removal of {removal['host_id']} ({removal['address']}): {removal['state']}, "
            f"{removal['sessions_done']}/{removal['sessions_total']} stream sessions, "
            f"{plural(removal['rows'], 'row')} ({output.human_bytes(removal['bytes'])})"
            + (f"; {removal['error']}" if removal.get("error") else "")
        )

    output.emit(result, as_json, render)


def compactionstats(host: Host = None, timeout: Timeout = None, as_json: Json = False) -> None:
    """Pending and active compactions with progress."""
    result = _call(host, timeout, "compactionstats")

    def render(r: dict[str, Any]) -> None:
        output.console.print(f"pending tasks: {r.get('pending', 0)}")
        active = r.get("active", [])
        rows = [
            [
                a.get("keyspace"),
                a.get("bytes_done"),
                a.get("bytes_total"),
                f"{a.get('progress', 0) * 100:.1f}%",
            ]
            for a in active
        ]
        if rows:
            output.console.print(
                output.table(None, ["keyspace", "completed", "total", "progress"], rows)
            )

    output.emit(result, as_json, render)


def tablestats(
    keyspace: OptionalKeyspace = None,
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Per keyspace: sstables, live and tombstone cells, bytes on disk, memtable size."""
    result = _call(host, timeout, "tablestats", keyspace=keyspace)

    def render(r: dict[str, Any]) -> None:
        rows = [
            [
                name,
                s.get("sstable_count"),
                s.get("live_cells"),
                s.get("tombstone_cells"),
                output.human_bytes(s.get("bytes_on_disk")),
                output.human_bytes(s.get("memtable_bytes")),
            ]
            for name, s in r["keyspaces"].items()
        ]
        output.console.print(
            output.table(
                None,
                ["keyspace", "sstables", "live cells", "tombstones", "on disk", "memtable"],
                rows,
            )
        )

    output.emit(result, as_json, render)


def verify(host: Host = None, timeout: Timeout = None, as_json: Json = False) -> None:
    """Check every sstable's checksums. Exits 1 if any problem is found."""
    result = _call(host, timeout, "verify", default_timeout=3600)

    def render(r: dict[str, Any]) -> None:
        if r["ok"]:
            output.console.print("all sstables verified")
        for p in r["problems"]:
            output.err_console.print(
                f"{p.get('file')} at offset {p.get('offset')}: {p.get('message')}", markup=False
            )

    output.emit(result, as_json, render)
    if not result["ok"]:
        raise typer.Exit(output.NOT_FOUND)


def assassinate(
    address: Annotated[
        str, typer.Argument(help="The endpoint to remove, as gossip lists it.", metavar="HOST:PORT")
    ],
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Remove a dead or bogus endpoint from gossip on every node (admin): it is marked LEFT with
    a newer generation, so every node drops it from the ring and its saved peers. The endpoint
    must be down; a node that restarts later rejoins."""
    result = _call(host, timeout, "assassinate", address=address)
    output.emit(
        result,
        as_json,
        lambda r: output.say(f"Assassinated {r['address']} ({r['host_id']}); gossip spreads it"),
    )


def register(app: typer.Typer) -> None:
    for fn in (
        status,
        info,
        ring,
        describecluster,
        describering,
        getendpoints,
        gossipinfo,
        proxyhistograms,
        flush,
        compact,
        cleanup,
        decommission,
        removenode,
        compactionstats,
        tablestats,
        verify,
        assassinate,
    ):
        app.command()(fn)
