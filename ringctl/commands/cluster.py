"""``ringctl cluster ...``: create, start, stop, break and heal local multi-node clusters.

Thin commands: parse options, call ``ringctl.cluster`` (manager and faults), hand the result to
``output``. Progress shows on a terminal (on stderr) and stays quiet when piped or with --json.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from ringctl import output
from ringctl.cluster import faults, manager
from ringctl.cluster.layout import ClusterSpec
from ringctl.cluster.manager import ClusterError
from ringctl.commands import admin
from ringctl.completion import CLUSTERS
from ringctl.options import Json
from ringd.words import plural

app = typer.Typer(
    help="Run local multi-node clusters (as ccm does for Cassandra): create, start, stop, "
    "pause, partition and heal real ringd processes on 127.0.0.N.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
node_app = typer.Typer(
    help="One node of a local cluster: ringctl cluster node N start|stop|kill|pause|resume|"
    "show|logs|clock-offset.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(node_app, name="node")

Name = Annotated[
    str | None,
    typer.Option(
        "--name", help="Cluster to act on (default: the current one).", autocompletion=CLUSTERS
    ),
]
NEW_NAME_HELP = "Cluster name (default: the current cluster, else 'local' when creating)."
NewName = Annotated[str | None, typer.Option("--name", help=NEW_NAME_HELP)]
#: start may create the cluster, but mostly starts one that exists
StartName = Annotated[
    str | None, typer.Option("--name", help=NEW_NAME_HELP, autocompletion=CLUSTERS)
]
Nodes = Annotated[
    str | None,
    typer.Option(
        "-n",
        "--nodes",
        help="Nodes to create: a count, or counts per datacenter such as 2:2 (default 3).",
    ),
]
Port = Annotated[
    int | None,
    typer.Option("--port", help="Port of every node (default 7400); see --single-address.", min=1),
]
SingleAddress = Annotated[
    bool,
    typer.Option(
        "--single-address",
        help="All nodes on 127.0.0.1 with ports PORT, PORT+1, ... instead of 127.0.0.N:PORT.",
    ),
]
NumTokens = Annotated[
    int | None,
    typer.Option("--num-tokens", help="Virtual nodes per node (default 16).", min=1, max=1024),
]
Conf = Annotated[
    list[str] | None,
    typer.Option(
        "--conf",
        metavar="KEY=VALUE",
        help="Extra ringd setting for every node's config file, e.g. gossip_interval_ms=100 "
        "(repeatable).",
    ),
]
Timeout = Annotated[
    float,
    typer.Option("--timeout", help="Seconds to wait before giving up.", min=0.1),
]
Wait = Annotated[
    bool,
    typer.Option(
        "--wait/--no-wait", help="Wait until every running node reports the started nodes up."
    ),
]
WaitDown = Annotated[
    bool,
    typer.Option("--wait", help="Also wait until every other running node reports it down."),
]
Lines = Annotated[int, typer.Option("--lines", "-n", help="Lines to show from the end.", min=0)]
Follow = Annotated[bool, typer.Option("--follow", "-f", help="Keep printing what is appended.")]


@contextmanager
def _errors() -> Iterator[None]:
    with output.errors():
        try:
            yield
        except ClusterError as exc:
            output.fail(exc.message, exc.code)


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[str], None] | None]:
    """A spinner on stderr when it is a terminal; nothing when piped or printing JSON."""
    if quiet or not output.err_console.is_terminal:
        yield None
        return
    with output.err_console.status("working...") as spinner:
        yield lambda message: spinner.update(message)


def _say(message: str) -> None:
    output.console.print(message, markup=False, highlight=False)


def _results(results: list[dict[str, Any]]) -> None:
    for r in results:
        pid = f" (pid {r['pid']})" if r.get("pid") else ""
        _say(f"{r['node']}: {r['result']}{pid}")


# ---- whole clusters -------------------------------------------------------------------------


@app.command()
def create(
    name: NewName = None,
    nodes: Nodes = None,
    port: Port = None,
    single_address: SingleAddress = False,
    num_tokens: NumTokens = None,
    conf: Conf = None,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            help="Make a local CA and node certificates (in the cluster's tls/) and require TLS "
            "between nodes and from clients; ringctl uses the CA by itself.",
        ),
    ] = False,
    as_json: Json = False,
) -> None:
    """Create a cluster on disk (nothing starts) and make it the current one."""
    with _errors():
        spec = manager.create(
            name,
            nodes,
            port=port,
            single_address=single_address,
            num_tokens=num_tokens,
            settings=conf,
            tls=tls,
        )
    data = {"name": spec.name, "dir": str(spec.dir), **spec.to_json()}
    output.emit(data, as_json, lambda _d: _describe(spec, "created"))


def _describe(spec: ClusterSpec, verb: str) -> None:
    dcs = ", ".join(f"{dc} x{n}" for dc, n in zip(spec.datacenters, spec.counts, strict=True))
    addresses = ", ".join(n.address for n in spec.nodes)
    _say(f"{verb} cluster {spec.name!r} ({dcs}) at {addresses}\n  in {spec.dir}")


@app.command()
def start(
    name: StartName = None,
    nodes: Nodes = None,
    port: Port = None,
    single_address: SingleAddress = False,
    num_tokens: NumTokens = None,
    conf: Conf = None,
    rf: Annotated[
        int | None,
        typer.Option(
            "--rf",
            help="Also create a keyspace with this replication factor (in every datacenter).",
            min=1,
        ),
    ] = None,
    keyspace: Annotated[
        str, typer.Option("--keyspace", help="Name of the keyspace --rf creates.")
    ] = "demo",
    wait: Wait = True,
    timeout: Timeout = manager.START_TIMEOUT,
    as_json: Json = False,
) -> None:
    """Create the cluster if needed, start every node, wait until all see each other up.

    Prints the cluster's status ('ringctl status') at the end; --rf also creates a keyspace."""
    with _errors():
        spec, created = manager.ensure(
            name,
            nodes,
            port=port,
            single_address=single_address,
            num_tokens=num_tokens,
            settings=conf,
            rf=rf,
        )
        if created and not as_json:
            _describe(spec, "created")
        with _progress(as_json) as progress:
            started = manager.start(spec, wait=wait, timeout=timeout, progress=progress)
            ks = None
            if rf is not None:
                if progress:
                    progress(f"creating keyspace {keyspace} (rf {rf})")
                ks = manager.create_keyspace(spec, keyspace, rf)
        if as_json:
            state = manager.status(spec)
            data = {"cluster": spec.name, "created": created, "started": started}
            output.emit({**data, "keyspace": ks, "status": state}, True, print)
            return
        launched = sum(1 for r in started if r["result"] == "started")
        running = len(manager.running_nodes(spec))
        _say(f"cluster {spec.name!r}: {plural(launched, 'node')} started, {running} running")
        if ks is not None:
            repl = ", ".join(f"{k}={v}" for k, v in ks["replication"].items())
            _say(f"keyspace {ks['name']}: {repl}")
        first = manager.first_live(spec)
    admin.status(keyspace=None, host=first.address, as_json=False)


@app.command()
def add(
    name: Name = None,
    dc: Annotated[
        str | None,
        typer.Option("--dc", help="Datacenter of the new node (default: the first one)."),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait", help="Wait until every running node reports the new node NORMAL."
        ),
    ] = True,
    timeout: Timeout = manager.JOIN_TIMEOUT,
    as_json: Json = False,
) -> None:
    """Add a node and start it: it bootstraps (JOINING, UJ in 'ringctl status': streams the
    ranges it takes over) and is NORMAL once it has them; then run 'ringctl cleanup' on the
    other nodes."""
    with _errors():
        spec = manager.load(name)
        with _progress(as_json) as progress:
            result = manager.add(spec, dc, wait=wait, timeout=timeout, progress=progress)
    output.emit(
        result,
        as_json,
        lambda r: _say(
            f"{r['node']} ({r['dc']}) at {r['address']}: {r['result']}, "
            + ("NORMAL" if wait else "joining (see 'ringctl status')")
        ),
    )


@app.command()
def stop(
    name: Name = None,
    kill: Annotated[
        bool, typer.Option("--kill", help="SIGKILL at once instead of SIGTERM.")
    ] = False,
    timeout: Timeout = manager.STOP_TIMEOUT,
    as_json: Json = False,
) -> None:
    """Stop every node (SIGTERM, then SIGKILL whatever has not exited by --timeout)."""
    with _errors():
        spec = manager.load(name)
        with _progress(as_json) as progress:
            results = manager.stop(spec, kill=kill, timeout=timeout, progress=progress)
    output.emit({"cluster": spec.name, "nodes": results}, as_json, lambda d: _results(d["nodes"]))


def _render_status(data: dict[str, Any]) -> None:
    by_address = {n["address"]: n["node"] for n in data["nodes"]}
    answering = sum(1 for n in data["nodes"] if n["status"] == "UP")
    rows = []
    for n in data["nodes"]:
        flt = n["filters"] or {}
        rules = ", ".join(
            f"{r['action']} {by_address.get(r['to'], r['to'])}"
            + (f" [{','.join(r['verbs'])}]" if r["verbs"] else "")
            for r in flt.get("rules", [])
        )
        rows.append(
            [
                n["node"],
                n["address"],
                n["dc"],
                n["pid"] or "-",
                n["process"],
                n["status"],
                f"{len(n['seen_up_by'])}/{answering}",
                flt.get("dropped", "-"),
                rules or "-",
            ]
        )
    current = " (current)" if data["current"] else ""
    title = f"Cluster {data['name']}{current}"
    columns = ["Node", "Address", "DC", "PID", "Process", "Status", "Seen by", "Dropped", "Rules"]
    if all(r[-1] == "-" for r in rows):
        columns.pop()
        rows = [r[:-1] for r in rows]
    t = output.table(title, columns, rows)
    t.columns[1].no_wrap = True
    output.console.print(t)


@app.command()
def status(name: Name = None, as_json: Json = False) -> None:
    """Every node: address, pid, process, UP/DOWN, who sees it up, dropped messages.

    UP means the node answers; 'Seen by' counts the answering nodes that report it up; Dropped and
    Rules come from its message filter (see 'ringctl cluster partition')."""
    with _errors():
        data = manager.status(manager.load(name))
    output.emit(data, as_json, _render_status)


@app.command("list")
def list_(as_json: Json = False) -> None:
    """Every local cluster; * marks the current one."""
    clusters = manager.list_clusters()

    def render(items: list[dict[str, Any]]) -> None:
        if not items:
            _say("no clusters; create one with 'ringctl cluster start -n 3'")
            return
        rows = [
            [
                "*" if c["current"] else "",
                c["name"],
                ":".join(map(str, c["datacenters"])),
                f"{c['running']}/{c['nodes']}",
                c["port"],
                c["dir"],
            ]
            for c in items
        ]
        columns = ["", "Name", "Nodes", "Running", "Port", "Directory"]
        output.console.print(output.table(None, columns, rows))

    output.emit({"clusters": clusters}, as_json, lambda d: render(d["clusters"]))


@app.command()
def switch(
    name: Annotated[str, typer.Argument(help="Cluster to make current.", autocompletion=CLUSTERS)],
    as_json: Json = False,
) -> None:
    """Make another cluster the current one (what ringctl talks to without --host)."""
    with _errors():
        spec = manager.switch(name)
    output.emit({"current": spec.name}, as_json, lambda d: _say(f"current cluster: {d['current']}"))


@app.command()
def remove(
    name: Annotated[
        str | None,
        typer.Argument(help="Cluster (default: the current one).", autocompletion=CLUSTERS),
    ] = None,
    as_json: Json = False,
) -> None:
    """Kill every node of a cluster and delete all its files."""
    with _errors():
        spec = manager.load(name)
        results = manager.remove(spec)
    output.emit(
        {"removed": spec.name, "dir": str(spec.dir), "nodes": results},
        as_json,
        lambda d: _say(f"removed cluster {d['removed']} ({d['dir']})"),
    )


def _show_logs(sources: list[tuple[str, Path]], lines: int, follow: bool) -> None:
    out = sys.stdout
    several = len(sources) > 1
    positions: dict[Path, int] = {}
    for label, path in sources:
        if several and not follow:
            out.write(f"==> {label}: {path} <==\n")
        for line in manager.log_tail(path, lines):
            out.write(f"{label}| {line}\n" if several and follow else f"{line}\n")
        positions[path] = path.stat().st_size if path.exists() else 0
    out.flush()
    if not follow:
        return
    try:
        while True:
            for label, path in sources:
                try:
                    with path.open("rb") as f:
                        size = f.seek(0, 2)
                        if size < positions[path]:
                            positions[path] = 0  # the log was truncated
                        f.seek(positions[path])
                        chunk = f.read()
                except OSError:
                    continue
                complete = chunk.rpartition(b"\n")[0]
                if complete:
                    positions[path] += len(complete) + 1
                    for line in complete.decode(errors="replace").split("\n"):
                        out.write(f"{label}| {line}\n" if several else f"{line}\n")
                    out.flush()
            time.sleep(0.25)
    except KeyboardInterrupt:
        return


@app.command()
def logs(name: Name = None, lines: Lines = 20, follow: Follow = False) -> None:
    """The end of every node's log (stdout and stderr of ringd)."""
    with _errors():
        spec = manager.load(name)
    _show_logs([(n.name, spec.paths(n).log) for n in spec.nodes], lines, follow)


# ---- faults ---------------------------------------------------------------------------------


def _render_filters(items: list[dict[str, Any]]) -> None:
    by_address = {n["address"]: n["node"] for n in items}
    rows = []
    for n in items:
        if not n.get("running", True):
            rows.append([n["node"], n["address"], "-", "-", "-", "(not running)"])
            continue
        rules = ", ".join(
            f"{r['action']} {by_address.get(r['to'], r['to'])}"
            + (f" [{','.join(r['verbs'])}]" if r["verbs"] else "")
            + f" ({r['matched']})"
            for r in n["rules"]
        )
        rows.append([n["node"], n["address"], n["sent"], n["dropped"], n["delayed"], rules or "-"])
    columns = ["Node", "Address", "Sent", "Dropped", "Delayed", "Rules (matched)"]
    output.console.print(output.table(None, columns, rows))


def _peer_verbs(text: str | None) -> list[str] | None:
    """The ``--verbs`` list, or exit 2 naming the verbs nodes send each other."""
    from ringd.protocol.messages import PEER, VERBS

    if not text:
        return None
    given = [v.strip() for v in text.split(",") if v.strip()]
    valid = sorted(name for name, verb in VERBS.items() if PEER in verb.roles)
    unknown = [v for v in given if v not in valid]
    if unknown or not given:
        output.fail(
            f"--verbs: unknown verb {', '.join(map(repr, unknown)) or repr(text)}; "
            f"valid: {', '.join(valid)}",
            output.USAGE,
        )
    return given


@app.command()
def partition(
    nodes: Annotated[list[int], typer.Argument(help="Node numbers to cut off from each other.")],
    verbs: Annotated[
        str | None,
        typer.Option(
            "--verbs", help="Drop only these verbs, e.g. mutate,read_local (default all)."
        ),
    ] = None,
    name: Name = None,
    as_json: Json = False,
) -> None:
    """Drop internode messages between every pair of the named nodes, in both directions."""
    verb_list = _peer_verbs(verbs)
    with _errors():
        spec = manager.load(name)
        result = faults.partition(spec, nodes, verb_list)
    output.emit(
        {"cluster": spec.name, "nodes": result}, as_json, lambda d: _render_filters(d["nodes"])
    )


@app.command()
def heal(name: Name = None, as_json: Json = False) -> None:
    """Clear every message filter rule on every running node."""
    with _errors():
        spec = manager.load(name)
        result = faults.heal(spec)
    output.emit(
        {"cluster": spec.name, "nodes": result}, as_json, lambda d: _render_filters(d["nodes"])
    )


@app.command("filters")
def filters_(name: Name = None, as_json: Json = False) -> None:
    """Each running node's message filter: rules, sent, dropped and delayed messages."""
    with _errors():
        spec = manager.load(name)
        result = faults.filters(spec)
    output.emit(
        {"cluster": spec.name, "nodes": result}, as_json, lambda d: _render_filters(d["nodes"])
    )


# ---- one node -------------------------------------------------------------------------------


@node_app.callback()
def node(
    ctx: typer.Context,
    number: Annotated[int, typer.Argument(help="Node number (1 is node1).", min=1)],
    name: Name = None,
) -> None:
    """Act on node N of the current cluster."""
    ctx.obj = {"number": number, "name": name}


def _target(ctx: typer.Context) -> tuple[ClusterSpec, int]:
    spec = manager.load(ctx.obj["name"])
    number = ctx.obj["number"]
    manager.select(spec, [number])
    return spec, number


@node_app.command("start")
def node_start(
    ctx: typer.Context,
    wait: Wait = True,
    timeout: Timeout = manager.START_TIMEOUT,
    as_json: Json = False,
) -> None:
    """Start the node (resume it if paused) and wait until every running node sees it up."""
    with _errors():
        spec, number = _target(ctx)
        with _progress(as_json) as progress:
            results = manager.start(spec, [number], wait=wait, timeout=timeout, progress=progress)
    output.emit(results[0], as_json, lambda r: _results([r]))


def _stop_node(ctx: typer.Context, kill: bool, wait: bool, timeout: float, as_json: bool) -> None:
    with _errors():
        spec, number = _target(ctx)
        with _progress(as_json) as progress:
            results = manager.stop(spec, [number], kill=kill, timeout=timeout, progress=progress)
            if wait:
                manager.wait_down(spec, [spec.node(number)], progress=progress)
    output.emit(results[0], as_json, lambda r: _results([r]))


@node_app.command("stop")
def node_stop(
    ctx: typer.Context,
    kill: Annotated[
        bool, typer.Option("--kill", help="SIGKILL at once instead of SIGTERM.")
    ] = False,
    wait: WaitDown = False,
    timeout: Timeout = manager.STOP_TIMEOUT,
    as_json: Json = False,
) -> None:
    """Stop the node: SIGTERM (it drains and exits), SIGKILL if it has not exited by --timeout."""
    _stop_node(ctx, kill, wait, timeout, as_json)


@node_app.command("decommission")
def node_decommission(
    ctx: typer.Context, timeout: Timeout = manager.JOIN_TIMEOUT, as_json: Json = False
) -> None:
    """Decommission the node ('ringctl decommission'): it streams its ranges to the nodes
    taking them over and leaves; then it is dropped from the cluster and its files deleted."""
    with _errors():
        spec, number = _target(ctx)
        with _progress(as_json) as progress:
            result = manager.decommission(spec, number, timeout=timeout, progress=progress)
    output.emit(
        result,
        as_json,
        lambda r: _say(f"{r['node']} ({r['address']}) left the ring and was removed"),
    )


@node_app.command("remove")
def node_remove(
    ctx: typer.Context, timeout: Timeout = manager.JOIN_TIMEOUT, as_json: Json = False
) -> None:
    """Remove the stopped or dead node ('ringctl removenode' on a running node): the others
    copy its ranges to the nodes taking them over; then it is dropped from the cluster and its
    files deleted."""
    with _errors():
        spec, number = _target(ctx)
        with _progress(as_json) as progress:
            result = manager.remove_node(spec, number, timeout=timeout, progress=progress)
    output.emit(
        result,
        as_json,
        lambda r: _say(f"{r['node']} ({r['address']}) was removed from the ring"),
    )


@node_app.command("replace")
def node_replace(
    ctx: typer.Context, timeout: Timeout = manager.JOIN_TIMEOUT, as_json: Json = False
) -> None:
    """Replace the stopped or dead node by a fresh one on its address ('ringd --replace'):
    its data directory is emptied, and the new node takes the old one's tokens and streams
    their data from the other replicas."""
    with _errors():
        spec, number = _target(ctx)
        with _progress(as_json) as progress:
            result = manager.replace_node(spec, number, timeout=timeout, progress=progress)
    output.emit(
        result,
        as_json,
        lambda r: _say(f"{r['node']} ({r['address']}) replaced {r['replaced']}: NORMAL"),
    )


@node_app.command("kill")
def node_kill(ctx: typer.Context, wait: WaitDown = False, as_json: Json = False) -> None:
    """Kill the node at once (SIGKILL), as a crash would."""
    _stop_node(ctx, True, wait, manager.STOP_TIMEOUT, as_json)


@node_app.command("pause")
def node_pause(ctx: typer.Context, wait: WaitDown = False, as_json: Json = False) -> None:
    """Freeze the node (SIGSTOP): it holds its connections but answers nothing."""
    with _errors():
        spec, number = _target(ctx)
        result = manager.pause(spec, number)
        if wait:
            with _progress(as_json) as progress:
                manager.wait_down(spec, [spec.node(number)], progress=progress)
    output.emit(result, as_json, lambda r: _results([r]))


@node_app.command("resume")
def node_resume(
    ctx: typer.Context,
    wait: Wait = True,
    timeout: Timeout = manager.START_TIMEOUT,
    as_json: Json = False,
) -> None:
    """Thaw a paused node (SIGCONT) and wait until every running node sees it up."""
    with _errors():
        spec, number = _target(ctx)
        result = manager.resume(spec, number)
        if wait:
            with _progress(as_json) as progress:
                manager.wait_up(spec, deadline=time.monotonic() + timeout, progress=progress)
    output.emit(result, as_json, lambda r: _results([r]))


@node_app.command("show")
def node_show(ctx: typer.Context, as_json: Json = False) -> None:
    """The node's address, place, process, files and, when it answers, its info."""
    with _errors():
        spec, number = _target(ctx)
        data = manager.node_status(spec, spec.node(number), info=True)

    def render(d: dict[str, Any]) -> None:
        keys = ["node", "address", "dc", "rack", "pid", "process", "status", "config", "data_dir"]
        for key in [*keys, "log"]:
            _say(f"{key:<10}: {d[key] if d[key] is not None else '-'}")
        for key, value in (d["info"] or {}).items():
            _say(f"  {key:<16}: {value}")

    output.emit(data, as_json, render)


@node_app.command("logs")
def node_logs(ctx: typer.Context, lines: Lines = 50, follow: Follow = False) -> None:
    """The end of the node's log (stdout and stderr of ringd)."""
    with _errors():
        spec, number = _target(ctx)
    _show_logs([(f"node{number}", spec.paths(number).log)], lines, follow)


@node_app.command("clock-offset", context_settings={"ignore_unknown_options": True})
def node_clock_offset(
    ctx: typer.Context,
    offset_ms: Annotated[int, typer.Argument(metavar="MS", help="Milliseconds, may be negative.")],
    as_json: Json = False,
) -> None:
    """Shift the node's wall clock by MS milliseconds (test hook; lasts until it restarts)."""
    with _errors():
        spec, number = _target(ctx)
        result = faults.clock_offset(spec, number, offset_ms)
    output.emit(
        result,
        as_json,
        lambda r: _say(f"{r['node']}: clock offset {r['offset_ms']} ms"),
    )
