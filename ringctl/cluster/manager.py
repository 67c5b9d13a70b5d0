"""Life cycle of local clusters: create, start, wait, stop, pause, status, remove.

Nodes are real ``ringd`` processes (``python -m ringd.main --config FILE --data-dir DIR``),
detached in their own session with stdout and stderr appended to the node's log, so they keep
running after ringctl exits. They are supervised by pid files: a pid file whose process is gone,
or whose process is not this node's ringd (its command line does not name the node's data
directory), is stale and is removed. Every wait polls with a deadline.

Failures raise ``ClusterError`` with a one-line message that names the next thing to try and the
exit code (README.md, "Exit codes"); errors from the nodes themselves are ``ProtocolError``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ringctl.client import Client
from ringctl.cluster import layout
from ringctl.cluster.layout import ClusterSpec, LayoutError, NodeSpec
from ringctl.output import CONNECT, NOT_FOUND, SERVER, UNAVAILABLE, USAGE
from ringd.config import DEFAULT_PORT
from ringd.protocol.errors import ProtocolError
from ringd.words import plural

Progress = Callable[[str], None] | None

START_TIMEOUT = 60.0
JOIN_TIMEOUT = 600.0  # a node streams its data before it is NORMAL (or gone, when it leaves)
STOP_TIMEOUT = 30.0
#: a node that left the ring waits 12 gossip rounds, then up to 30 s for every live peer to
#: hear LEFT, then drains and exits
LEFT_EXIT_TIMEOUT = 90.0
POLL = 0.1
RUNNING, PAUSED, STOPPED = "running", "paused", "stopped"
START_MARK = "--- ringctl cluster: starting"  # the line written to a node's log before each start

# Popen objects of nodes this process started, so that they are reaped when they exit
_children: dict[int, subprocess.Popen[bytes]] = {}


class ClusterError(Exception):
    """A cluster operation that failed; ``code`` is ringctl's exit code for it."""

    def __init__(self, message: str, code: int = USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# ---- processes ------------------------------------------------------------------------------


def _reap(pid: int) -> None:
    """Collect the exit status of a node this process started, so it is not left a zombie."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def _proc_state(pid: int) -> str | None:
    """The kernel's one-letter state of ``pid`` (R, S, D, T, Z, ...), or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
        return _ps(pid, "stat=")[:1] or None
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return fields[0] if fields else None


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        if Path("/proc/self/cmdline").exists():
            return []
        return _ps(pid, "command=").split()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _ps(pid: int, fmt: str) -> str:
    """Where there is no /proc (macOS): ask ps."""
    try:
        done = subprocess.run(
            ["ps", "-o", fmt, "-p", str(pid)], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def is_node_process(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a live ringd serving ``data_dir`` (not a zombie, not a reused pid)."""
    _reap(pid)
    state = _proc_state(pid)
    if state is None or state in ("Z", "X", "x"):
        return False
    args = _cmdline(pid)
    is_ringd = "ringd.main" in args or any(Path(a).name == "ringd" for a in args[:2])
    return is_ringd and str(data_dir) in args


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


@dataclass(frozen=True)
class NodeProcess:
    """What is running for one node: its pid and ``running``, ``paused`` or ``stopped``."""

    pid: int | None
    state: str


def node_process(spec: ClusterSpec, node: NodeSpec, *, clean: bool = True) -> NodeProcess:
    """The node's process from its pid file; a stale pid file is removed when ``clean``."""
    paths = spec.paths(node)
    pid = read_pid(paths.pid)
    if pid is not None and is_node_process(pid, paths.data):
        return NodeProcess(pid, PAUSED if _proc_state(pid) in ("T", "t") else RUNNING)
    if clean and paths.pid.exists():
        with contextlib.suppress(FileNotFoundError):
            paths.pid.unlink()
    return NodeProcess(None, STOPPED)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def log_tail(path: Path, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of a log file (reads at most the last 256 KiB)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read()
    except OSError:
        return []
    text = data.decode(errors="replace").splitlines()
    return text[-lines:] if lines > 0 else []


def _why_exited(spec: ClusterSpec, node: NodeSpec) -> str:
    """The reason ringd gave for exiting, from the log of its last run."""
    tail = log_tail(spec.paths(node).log, 200)
    for k in range(len(tail) - 1, -1, -1):
        if tail[k].startswith(START_MARK):
            tail = tail[k + 1 :]
            break
    for line in reversed(tail):
        if line.startswith("ringd: error:"):
            return line.removeprefix("ringd: error:").strip()
    for line in reversed(tail):
        if line.strip():
            return line.strip()
    return "no output"


def _launch(spec: ClusterSpec, node: NodeSpec) -> subprocess.Popen[bytes]:
    paths = spec.paths(node)
    if not paths.config.exists():
        layout.write_config(spec, node)
    paths.data.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable, "-m", "ringd.main",
        "--config", str(paths.config),
        "--data-dir", str(paths.data),
    ]  # fmt: skip
    with paths.log.open("ab") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"{START_MARK} {node.name} at {stamp}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=paths.dir,
            start_new_session=True,
            close_fds=True,
        )
    _children[proc.pid] = proc
    tmp = paths.dir / ".ringd.pid.tmp"
    tmp.write_text(f"{proc.pid}\n")
    os.replace(tmp, paths.pid)
    return proc


def _bind_error(address: str) -> int | None:
    """The errno binding ``address`` fails with (a listener holds it, or no such address)."""
    host, _, port = address.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError as exc:
            return exc.errno or -1
    return None


def _holder(address: str) -> str | None:
    """Which node of which local cluster is running on ``address``, if any."""
    for name in layout.names():
        try:
            spec = layout.load(name)
        except LayoutError:
            continue
        for node in spec.nodes:
            if node.address == address and node_process(spec, node).pid is not None:
                return f"{node.name} of cluster {name!r}"
    return None


# ---- clusters -------------------------------------------------------------------------------


def load(name: str | None) -> ClusterSpec:
    """The named cluster, or the current one."""
    if name is None:
        name = layout.read_current()
        if name is None:
            raise ClusterError(
                "no current cluster; create one with 'ringctl cluster start -n 3', "
                "or pick one with 'ringctl cluster switch NAME'",
                NOT_FOUND,
            )
    try:
        return layout.load(layout.check_name(name))
    except LayoutError as exc:
        raise ClusterError(f"{exc}; see 'ringctl cluster list'", NOT_FOUND) from None


def create(
    name: str | None = None,
    nodes: str | None = None,
    *,
    port: int | None = None,
    single_address: bool = False,
    num_tokens: int | None = None,
    settings: list[str] | None = None,
    rf: int | None = None,
    tls: bool = False,
) -> ClusterSpec:
    """Create a cluster on disk (nothing is started) and make it the current one. With ``rf``,
    refuse a cluster that cannot hold that replication factor; with ``tls``, make a local CA and
    node certificates and require TLS between nodes and from clients."""
    name = name or layout.DEFAULT_CLUSTER
    try:
        layout.check_name(name)
        if layout.exists(name):
            raise ClusterError(
                f"cluster {name!r} already exists; start it with 'ringctl cluster start --name "
                f"{name}' or remove it first",
                USAGE,
            )
        spec = layout.plan(
            name,
            layout.parse_counts(nodes or layout.DEFAULT_NODES),
            port=DEFAULT_PORT if port is None else port,
            single_address=single_address,
            num_tokens=16 if num_tokens is None else num_tokens,
            settings=layout.parse_settings(settings or []),
        )
    except LayoutError as exc:
        raise ClusterError(str(exc), USAGE) from None
    if rf is not None:
        replication_for(spec, rf)
    spec.save()
    layout.write_auth_files(spec.dir)
    if tls:
        layout.write_tls_files(spec.dir, [n.host for n in spec.nodes])
    for node in spec.nodes:
        layout.write_config(spec, node)
        spec.paths(node).data.mkdir(parents=True, exist_ok=True)
    layout.write_current(name)
    return spec


def ensure(
    name: str | None = None,
    nodes: str | None = None,
    *,
    port: int | None = None,
    single_address: bool = False,
    num_tokens: int | None = None,
    settings: list[str] | None = None,
    rf: int | None = None,
) -> tuple[ClusterSpec, bool]:
    """The cluster to start: the named (or current) one, created if it does not exist yet.

    Options that describe a new cluster must agree with an existing one. Returns the spec and
    whether it was created."""
    if name is None:
        name = layout.read_current() or layout.DEFAULT_CLUSTER
    try:
        layout.check_name(name)
    except LayoutError as exc:
        raise ClusterError(str(exc), USAGE) from None
    if not layout.exists(name):
        return create(
            name,
            nodes,
            port=port,
            single_address=single_address,
            num_tokens=num_tokens,
            settings=settings,
            rf=rf,
        ), True
    spec = load(name)
    if rf is not None:
        replication_for(spec, rf)
    differs = []
    if nodes is not None:
        try:
            if layout.parse_counts(nodes) != spec.counts:
                differs.append(f"-n {nodes} (it has {':'.join(map(str, spec.counts))})")
        except LayoutError as exc:
            raise ClusterError(str(exc), USAGE) from None
    if port is not None and port != spec.port:
        differs.append(f"--port {port} (it uses {spec.port})")
    if single_address and not spec.single_address:
        differs.append("--single-address (it uses one address per node)")
    if num_tokens is not None and num_tokens != spec.num_tokens:
        differs.append(f"--num-tokens {num_tokens} (it has {spec.num_tokens})")
    if settings:
        differs.append("--conf (edit the nodes' ringd.toml instead)")
    if differs:
        raise ClusterError(
            f"cluster {name!r} already exists and differs: {'; '.join(differs)}; drop those "
            f"options, or use another --name, or 'ringctl cluster remove {name}' first",
            USAGE,
        )
    layout.write_current(name)
    return spec, False


def switch(name: str) -> ClusterSpec:
    spec = load(name)
    layout.write_current(spec.name)
    return spec


def list_clusters() -> list[dict[str, Any]]:
    current = layout.read_current()
    out = []
    for name in layout.names():
        try:
            spec = layout.load(name)
        except LayoutError:
            continue
        running = sum(1 for n in spec.nodes if node_process(spec, n).pid is not None)
        out.append(
            {
                "name": name,
                "current": name == current,
                "nodes": len(spec.nodes),
                "running": running,
                "datacenters": spec.counts,
                "port": spec.port,
                "single_address": spec.single_address,
                "dir": str(spec.dir),
            }
        )
    return out


def select(spec: ClusterSpec, numbers: Iterable[int] | None) -> list[NodeSpec]:
    """The numbered nodes (all when None); ``ClusterError`` for a number the cluster lacks."""
    if numbers is None:
        return list(spec.nodes)
    try:
        return [spec.node(n) for n in numbers]
    except LayoutError as exc:
        raise ClusterError(str(exc), NOT_FOUND) from None


def running_nodes(spec: ClusterSpec) -> list[NodeSpec]:
    """Nodes whose process runs (not paused)."""
    return [n for n in spec.nodes if node_process(spec, n).state == RUNNING]


def start(
    spec: ClusterSpec,
    numbers: Iterable[int] | None = None,
    *,
    wait: bool = True,
    timeout: float = START_TIMEOUT,
    progress: Progress = None,
) -> list[dict[str, Any]]:
    """Start the nodes that are not running (resume paused ones), wait until they serve and,
    with ``wait``, until every running node reports every running node up."""
    say = progress or (lambda _msg: None)
    targets = select(spec, numbers)
    results: list[dict[str, Any]] = []
    launch: list[NodeSpec] = []
    for node in targets:
        proc = node_process(spec, node)
        if proc.state == PAUSED:
            assert proc.pid is not None
            _signal(proc.pid, signal.SIGCONT)
            results.append({"node": node.name, "pid": proc.pid, "result": "resumed"})
        elif proc.state == RUNNING:
            results.append({"node": node.name, "pid": proc.pid, "result": "already running"})
        else:
            launch.append(node)
    for node in launch:
        error = _bind_error(node.address)
        if error == errno.EADDRNOTAVAIL:
            raise ClusterError(
                f"{node.address} ({node.name}) is not an address of this machine; add loopback "
                "aliases (macOS: sudo ifconfig lo0 alias 127.0.0.N up) or create the cluster "
                "with --single-address",
                SERVER,
            )
        if error is not None:
            holder = _holder(node.address)
            who = f" by {holder}" if holder else ""
            raise ClusterError(
                f"{node.address} ({node.name}) is already in use{who}; stop that, or create this "
                "cluster with another --port",
                SERVER,
            )
    launched: dict[str, subprocess.Popen[bytes]] = {}
    deadline = time.monotonic() + timeout
    # A node's first start balances its tokens against the ring a seed reports, so new
    # non-seeds start one at a time, each once a seed reports the tokens of the one before
    # (started together they would all split the same ranges); the others start at once.
    seeds = set(spec.seeds)
    first_starts = [n for n in launch if n.address not in seeds and not _has_tokens(spec, n)]

    def launch_serving(nodes: list[NodeSpec]) -> None:
        for node in nodes:
            say(f"starting {node.name} on {node.address}")
            launched[node.name] = _launch(spec, node)
            results.append({"node": node.name, "pid": launched[node.name].pid, "result": "started"})
        _wait_serving(spec, nodes, launched, deadline, say)

    launch_serving([n for n in launch if n not in first_starts])
    for node in first_starts:
        launch_serving([node])
        _wait_tokens_known(spec, node, deadline, say)
    if wait:
        wait_up(spec, deadline=deadline, progress=say)
    order = {n.name: n.number for n in spec.nodes}
    results.sort(key=lambda r: order[r["node"]])
    return results


def add(
    spec: ClusterSpec,
    dc: str | None = None,
    *,
    wait: bool = True,
    timeout: float = JOIN_TIMEOUT,
    progress: Progress = None,
) -> dict[str, Any]:
    """Add a node to the cluster and start it: it bootstraps (streams the ranges it takes
    over, JOINING) and, with ``wait``, this returns once every running node reports it NORMAL."""
    say = progress or (lambda _msg: None)
    if not running_nodes(spec):
        raise ClusterError(
            f"no node of cluster {spec.name!r} is running; start it before adding a node",
            UNAVAILABLE,
        )
    try:
        node = spec.add_node(dc)
    except layout.LayoutError as exc:
        raise ClusterError(str(exc)) from None
    spec.save()
    layout.write_config(spec, node)
    say(f"adding {node.name} ({node.dc}) at {node.address}")
    result = start(spec, [node.number], wait=wait, timeout=START_TIMEOUT, progress=progress)[0]
    if wait:
        wait_state(spec, node, "NORMAL", timeout=timeout, progress=progress)
    return {**result, "dc": node.dc, "address": node.address}


def decommission(
    spec: ClusterSpec, number: int, *, timeout: float = JOIN_TIMEOUT, progress: Progress = None
) -> dict[str, Any]:
    """Decommission node ``number``: it streams its ranges away and leaves the ring; once its
    process exited and every other node stopped listing it, it is dropped from the cluster
    (its directory deleted)."""
    node = spec.node(number)
    say = progress or (lambda _msg: None)
    if node_process(spec, node).state != RUNNING:
        raise ClusterError(f"{node.name} is not running; only a live node can decommission")
    say(f"decommissioning {node.name}: streaming its ranges ('ringctl netstats' shows them)")
    try:
        with Client(node.address, **layout.connect_args(node.address), timeout=timeout) as db:
            result: dict[str, Any] = db.admin("decommission", timeout=timeout)
    except ProtocolError as exc:
        raise ClusterError(f"{node.name}: {exc}", UNAVAILABLE) from None
    _wait_exit(spec, node, progress=say)
    wait_state(spec, node, None, timeout=timeout, progress=progress)
    _forget(spec, node)
    return {"node": node.name, **result}


def remove_node(
    spec: ClusterSpec, number: int, *, timeout: float = JOIN_TIMEOUT, progress: Progress = None
) -> dict[str, Any]:
    """'removenode' node ``number`` (it must be stopped or dead) through a running node; once
    no node lists it, drop it from the cluster (its directory deleted)."""
    node = spec.node(number)
    say = progress or (lambda _msg: None)
    if node_process(spec, node).state != STOPPED:
        raise ClusterError(
            f"{node.name} is running; stop or kill it first, or decommission it instead"
        )
    host_id = _host_id(spec, node)
    first = first_live(spec)
    say(f"removing {node.name} ({host_id}) through {first.name}")
    try:
        with Client(first.address, **layout.connect_args(first.address), timeout=timeout) as db:
            result: dict[str, Any] = db.admin("removenode", timeout=timeout, host_id=host_id)
    except ProtocolError as exc:
        raise ClusterError(f"{node.name}: {exc}", UNAVAILABLE) from None
    wait_state(spec, node, None, timeout=timeout, progress=progress)
    _forget(spec, node)
    return {"node": node.name, **result}


REPLACE_MARK = "# ringctl cluster node replace"


def replace_node(
    spec: ClusterSpec, number: int, *, timeout: float = JOIN_TIMEOUT, progress: Progress = None
) -> dict[str, Any]:
    """Replace the stopped or dead node ``number`` by a fresh one on its address: its data
    directory is emptied and it starts with ``replace`` = its address, takes the old node's
    tokens and streams their data from the other replicas; returns once every other running
    node reports one NORMAL node at that address."""
    node = spec.node(number)
    say = progress or (lambda _msg: None)
    if node_process(spec, node).state != STOPPED:
        raise ClusterError(
            f"{node.name} is running; stop or kill it first (a live node cannot be replaced)"
        )
    if not running_nodes(spec):
        raise ClusterError(f"no node of cluster {spec.name!r} is running", UNAVAILABLE)
    old = _host_id(spec, node)
    paths = spec.paths(node)
    shutil.rmtree(paths.data, ignore_errors=True)
    config = paths.config.read_text() if paths.config.exists() else layout.render_config(spec, node)
    kept = [line for line in config.splitlines() if not line.endswith(REPLACE_MARK)]
    kept.append(f'replace = "{node.address}"  {REPLACE_MARK}')
    paths.config.write_text("\n".join(kept) + "\n")
    say(f"replacing {node.name} ({old}) with a fresh node on {node.address}")
    try:
        result = start(spec, [number], wait=True, timeout=START_TIMEOUT, progress=progress)[0]
        _wait_replaced(spec, node, old, timeout=timeout, progress=progress)
    finally:
        kept = [
            line
            for line in paths.config.read_text().splitlines()
            if not line.endswith(REPLACE_MARK)
        ]
        paths.config.write_text("\n".join(kept) + "\n")
    return {**result, "address": node.address, "replaced": old, "host_id": _host_id(spec, node)}


def _wait_replaced(
    spec: ClusterSpec, node: NodeSpec, old: str, *, timeout: float, progress: Progress
) -> None:
    say = progress or (lambda _msg: None)
    deadline = time.monotonic() + timeout
    while True:
        done = True
        for other in running_nodes(spec):
            if other.number == node.number:
                continue
            rows = _status_rows(other.address)
            if rows is None:
                done = False
                continue
            mine = [r for r in rows if r["address"] == node.address]
            if not (len(mine) == 1 and mine[0]["host_id"] != old and mine[0]["state"] == "NORMAL"):
                done = False
        if done:
            return
        if time.monotonic() > deadline:
            raise ClusterError(
                f"{node.name} did not take over in time; see 'ringctl cluster node "
                f"{node.number} logs'",
                UNAVAILABLE,
            )
        say(f"waiting for the new {node.name} to be NORMAL everywhere")
        time.sleep(POLL * 5)


def _host_id(spec: ClusterSpec, node: NodeSpec) -> str:
    import cbor2

    path = spec.paths(node).data / "system" / "local.cbor"
    try:
        return str(cbor2.loads(path.read_bytes())["host_id"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClusterError(f"{node.name} has no host id in {path}: {exc}") from None


def _wait_exit(spec: ClusterSpec, node: NodeSpec, *, progress: Progress = None) -> None:
    say = progress or (lambda _msg: None)
    deadline = time.monotonic() + LEFT_EXIT_TIMEOUT
    while node_process(spec, node).state == RUNNING:
        if time.monotonic() > deadline:
            raise ClusterError(f"{node.name} did not stop after leaving the ring", SERVER)
        say(f"waiting for {node.name} to stop")
        time.sleep(POLL * 2)


def _forget(spec: ClusterSpec, node: NodeSpec) -> None:
    """Drop a node that left the ring from the cluster, and its files."""
    spec.nodes = [n for n in spec.nodes if n.number != node.number]
    spec.save()
    shutil.rmtree(spec.paths(node).dir, ignore_errors=True)


def _status_rows(address: str) -> list[dict[str, Any]] | None:
    """The nodes of ``status`` as the node at ``address`` reports them, or None if it does not
    answer."""
    try:
        with Client(address, **layout.connect_args(address), timeout=2.0) as db:
            rows: list[dict[str, Any]] = db.admin("status").get("nodes", [])
    except ProtocolError:
        return None
    return rows


def _states(address: str) -> dict[str, str] | None:
    """address -> state (NORMAL, JOINING, LEAVING...) as the node at ``address`` reports it."""
    rows = _status_rows(address)
    return None if rows is None else {n["address"]: n["state"] for n in rows}


def wait_state(
    spec: ClusterSpec,
    node: NodeSpec,
    state: str | None,
    *,
    timeout: float = JOIN_TIMEOUT,
    progress: Progress = None,
) -> None:
    """Poll every other running node until each reports ``node`` in ``state`` (None: gone from
    its status)."""
    say = progress or (lambda _msg: None)
    deadline = time.monotonic() + timeout
    while True:
        others = [n for n in running_nodes(spec) if n.number != node.number]
        seen = {n.name: (_states(n.address) or {}).get(node.address, "?") for n in others}
        if others and all((v == state) if state is not None else v == "?" for v in seen.values()):
            return
        now = ", ".join(f"{k}: {v}" for k, v in sorted(seen.items()))
        say(f"waiting for {node.name} to be {state or 'gone'} everywhere ({now})")
        if time.monotonic() > deadline:
            raise ClusterError(
                f"{node.name} is not {state or 'gone'} everywhere in time ({now}); see "
                f"'ringctl cluster node {node.number} logs'",
                UNAVAILABLE,
            )
        time.sleep(POLL * 5)


def _ping(address: str, timeout: float = 2.0) -> bool:
    try:
        with Client(address, **layout.connect_args(address), timeout=timeout) as db:
            db.ping()
        return True
    except ProtocolError:
        return False


def _wait_serving(
    spec: ClusterSpec,
    nodes: list[NodeSpec],
    procs: dict[str, subprocess.Popen[bytes]],
    deadline: float,
    say: Any,
) -> None:
    """Wait until every node just launched answers a ping; fail if one exits first."""
    pending = list(nodes)
    while pending:
        for node in list(pending):
            if procs[node.name].poll() is not None:
                with contextlib.suppress(FileNotFoundError):
                    spec.paths(node).pid.unlink()
                raise ClusterError(
                    f"{node.name} ({node.address}) exited while starting: "
                    f"{_why_exited(spec, node)}; see 'ringctl cluster node {node.number} logs'",
                    SERVER,
                )
            if _ping(node.address, 1.0):
                pending.remove(node)
        if not pending:
            return
        say(f"waiting for {', '.join(n.name for n in pending)} to listen")
        if time.monotonic() > deadline:
            names = ", ".join(f"{n.name} ({n.address})" for n in pending)
            raise ClusterError(
                f"{names} did not answer in time; see 'ringctl cluster node "
                f"{pending[0].number} logs'",
                UNAVAILABLE,
            )
        time.sleep(POLL)


def _has_tokens(spec: ClusterSpec, node: NodeSpec) -> bool:
    """The node has started before: it chose its tokens then (``system/local.cbor``)."""
    return (spec.paths(node).data / "system" / "local.cbor").exists()


def _wait_tokens_known(spec: ClusterSpec, node: NodeSpec, deadline: float, say: Any) -> None:
    """Wait until a running seed reports ``node``'s tokens (a joining node's too, which owns
    nothing until it is NORMAL); at once if no seed runs (nothing to balance against then)."""
    seeds = [
        n for n in running_nodes(spec) if n.address in spec.seeds and n.address != node.address
    ]
    while seeds:
        for seed in seeds:
            rows = _status_rows(seed.address)
            if rows and any(r["address"] == node.address and r.get("tokens") for r in rows):
                return
        if time.monotonic() > deadline:
            raise ClusterError(
                f"no seed reports the tokens of {node.name} ({node.address}) in time; see "
                f"'ringctl cluster node {node.number} logs'",
                UNAVAILABLE,
            )
        say(f"waiting for the seeds to hear {node.name}'s tokens")
        time.sleep(POLL)


def _seen_up(address: str) -> set[str] | None:
    """Addresses the node at ``address`` reports UP, or None if it does not answer."""
    rows = _status_rows(address)
    return None if rows is None else {n["address"] for n in rows if n.get("status") == "UP"}


def wait_up(
    spec: ClusterSpec,
    *,
    deadline: float | None = None,
    progress: Progress = None,
) -> None:
    """Poll every running node's ``status`` until each reports every running node UP."""
    say = progress or (lambda _msg: None)
    if deadline is None:
        deadline = time.monotonic() + START_TIMEOUT
    while True:
        nodes = running_nodes(spec)
        wanted = {n.address for n in nodes}
        missing: dict[str, set[str]] = {}
        for node in nodes:
            seen = _seen_up(node.address)
            gap = wanted if seen is None else wanted - seen
            if gap:
                missing[node.name] = gap
        if not missing:
            return
        not_up = sorted({a for gap in missing.values() for a in gap})
        by_address = {n.address: n for n in spec.nodes}
        names = [by_address[a].name for a in not_up if a in by_address]
        say(f"waiting for gossip: {len(nodes) - len(missing)}/{len(nodes)} nodes see all up")
        if time.monotonic() > deadline:
            detail = "; ".join(
                f"{who} does not see {', '.join(by_address[a].name for a in sorted(gap))}"
                for who, gap in sorted(missing.items())
            )
            first = by_address[not_up[0]].number if not_up else 1
            raise ClusterError(
                f"not every node reports {', '.join(names)} up in time ({detail}); see "
                f"'ringctl cluster node {first} logs'",
                UNAVAILABLE,
            )
        time.sleep(POLL * 2)


def wait_down(
    spec: ClusterSpec,
    nodes: list[NodeSpec],
    *,
    timeout: float = START_TIMEOUT,
    progress: Progress = None,
) -> None:
    """Poll the running nodes until each reports every node of ``nodes`` DOWN."""
    say = progress or (lambda _msg: None)
    deadline = time.monotonic() + timeout
    gone = {n.address for n in nodes}
    names = ", ".join(n.name for n in nodes)
    while True:
        observers = [n for n in running_nodes(spec) if n.address not in gone]
        still = [n.name for n in observers if (_seen_up(n.address) or set()) & gone]
        if not still:
            return
        say(f"waiting for {', '.join(still)} to report {names} down")
        if time.monotonic() > deadline:
            raise ClusterError(
                f"{', '.join(still)} still report {names} up after {timeout:g}s", UNAVAILABLE
            )
        time.sleep(POLL * 2)


def stop(
    spec: ClusterSpec,
    numbers: Iterable[int] | None = None,
    *,
    kill: bool = False,
    timeout: float = STOP_TIMEOUT,
    progress: Progress = None,
) -> list[dict[str, Any]]:
    """Stop nodes: SIGTERM (a paused node is resumed to see it) and wait; SIGKILL whatever is
    left at the deadline. ``kill`` sends SIGKILL at once."""
    say = progress or (lambda _msg: None)
    results: dict[str, dict[str, Any]] = {}
    pending: dict[str, tuple[NodeSpec, int]] = {}
    for node in select(spec, numbers):
        proc = node_process(spec, node)
        if proc.pid is None:
            results[node.name] = {"node": node.name, "pid": None, "result": "not running"}
            continue
        if kill:
            _signal(proc.pid, signal.SIGKILL)
        else:
            _signal(proc.pid, signal.SIGTERM)
            _signal(proc.pid, signal.SIGCONT)
        pending[node.name] = (node, proc.pid)
        results[node.name] = {
            "node": node.name,
            "pid": proc.pid,
            "result": "killed" if kill else "stopped",
        }
    deadline = time.monotonic() + (10.0 if kill else timeout)
    escalated = False
    while pending:
        for name, (node, pid) in list(pending.items()):
            if not is_node_process(pid, spec.paths(node).data):
                del pending[name]
                with contextlib.suppress(FileNotFoundError):
                    spec.paths(node).pid.unlink()
        if not pending:
            break
        say(f"waiting for {', '.join(pending)} to exit")
        if time.monotonic() > deadline:
            if escalated:
                raise ClusterError(f"{', '.join(pending)} did not exit even after SIGKILL", SERVER)
            for name, (_node, pid) in pending.items():
                _signal(pid, signal.SIGKILL)
                results[name]["result"] = "killed"
            escalated = True
            deadline = time.monotonic() + 10.0
        time.sleep(POLL)
    order = {n.name: n.number for n in spec.nodes}
    return sorted(results.values(), key=lambda r: order[r["node"]])


def pause(spec: ClusterSpec, number: int) -> dict[str, Any]:
    node = select(spec, [number])[0]
    pid = _require_process(spec, node)
    _signal(pid, signal.SIGSTOP)
    return {"node": node.name, "pid": pid, "result": "paused"}


def resume(spec: ClusterSpec, number: int) -> dict[str, Any]:
    node = select(spec, [number])[0]
    pid = _require_process(spec, node)
    _signal(pid, signal.SIGCONT)
    return {"node": node.name, "pid": pid, "result": "resumed"}


def _require_process(spec: ClusterSpec, node: NodeSpec) -> int:
    proc = node_process(spec, node)
    if proc.pid is None:
        raise ClusterError(
            f"{node.name} is not running; start it with 'ringctl cluster node {node.number} start'",
            CONNECT,
        )
    return proc.pid


def remove(spec: ClusterSpec) -> list[dict[str, Any]]:
    """Kill every node and delete the cluster's directory (and the current-cluster file if it
    names this cluster)."""
    stopped = stop(spec, kill=True)
    shutil.rmtree(spec.dir, ignore_errors=True)
    if spec.dir.exists():
        shutil.rmtree(spec.dir)
    current = layout.home() / layout.CURRENT_FILE
    try:
        named = current.read_text().strip()
    except OSError:
        named = None
    if named == spec.name:
        layout.clear_current()
    with contextlib.suppress(OSError):
        layout.clusters_dir().rmdir()  # only if no other cluster is left
    return stopped


def node_status(spec: ClusterSpec, node: NodeSpec, *, info: bool = False) -> dict[str, Any]:
    """One node as the manager sees it: process, whether it answers, whom it sees up, filters
    (and with ``info`` the node's own ``info``)."""
    proc = node_process(spec, node)
    paths = spec.paths(node)
    entry: dict[str, Any] = {
        "node": node.name,
        "number": node.number,
        "address": node.address,
        "dc": node.dc,
        "rack": node.rack,
        "pid": proc.pid,
        "process": proc.state,
        "status": "DOWN",
        "sees_up": None,
        "seen_up_by": [],
        "filters": None,
        "config": str(paths.config),
        "data_dir": str(paths.data),
        "log": str(paths.log),
    }
    if info:
        entry["info"] = None
    if proc.state != RUNNING:
        return entry
    try:
        with Client(node.address, **layout.connect_args(node.address), timeout=2.0) as db:
            status = db.admin("status")
            entry["status"] = "UP"
            entry["sees_up"] = sorted(
                n["address"] for n in status.get("nodes", []) if n.get("status") == "UP"
            )
            try:
                entry["filters"] = db.admin("test_filter", action="list")
            except ProtocolError:
                entry["filters"] = None
            if info:
                entry["info"] = db.admin("info")
    except ProtocolError:
        pass
    return entry


def status(spec: ClusterSpec) -> dict[str, Any]:
    """Every node: address, dc, pid, process state, UP/DOWN, who sees it up, filter counts."""
    nodes = [node_status(spec, n) for n in spec.nodes]
    for entry in nodes:
        entry["seen_up_by"] = [
            other["node"] for other in nodes if entry["address"] in (other["sees_up"] or [])
        ]
    return {
        "name": spec.name,
        "current": layout.read_current() == spec.name,
        "dir": str(spec.dir),
        "port": spec.port,
        "single_address": spec.single_address,
        "datacenters": spec.datacenters,
        "nodes": nodes,
    }


def first_live(spec: ClusterSpec) -> NodeSpec:
    for node in spec.nodes:
        if node_process(spec, node).state == RUNNING:
            return node
    raise ClusterError(
        f"no node of cluster {spec.name!r} is running; start it with 'ringctl cluster start'",
        CONNECT,
    )


def replication_for(spec: ClusterSpec, rf: int) -> dict[str, Any]:
    """SimpleStrategy with ``rf`` for one datacenter; NetworkTopologyStrategy with ``rf`` in
    each for several. ``ClusterError`` if a datacenter has fewer nodes than ``rf``."""
    counts = dict(zip(spec.datacenters, spec.counts, strict=True))
    short = {dc: n for dc, n in counts.items() if n < rf}
    if short:
        dc, n = next(iter(short.items()))
        raise ClusterError(f"--rf {rf} is more than the {plural(n, 'node')} of {dc}", USAGE)
    if len(counts) == 1:
        return {"class": "SimpleStrategy", "replication_factor": rf}
    return {"class": "NetworkTopologyStrategy", **{dc: rf for dc in counts}}


def create_keyspace(
    spec: ClusterSpec, keyspace: str, rf: int, *, timeout: float = 30.0
) -> dict[str, Any]:
    """Create ``keyspace`` (if it does not exist) with factor ``rf`` in each datacenter, and wait
    until every running node knows it."""
    replication = replication_for(spec, rf)
    node = first_live(spec)
    with Client(node.address, **layout.connect_args(node.address)) as db:
        ks = db.keyspace_create(keyspace, replication=replication, if_not_exists=True)
    deadline = time.monotonic() + timeout
    for other in running_nodes(spec):
        while True:
            try:
                with Client(other.address, **layout.connect_args(other.address), timeout=2.0) as db:
                    names = {k["name"] for k in db.keyspace_list()["keyspaces"]}
                if keyspace in names:
                    break
            except ProtocolError:
                pass
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{other.name} does not know keyspace {keyspace!r} after {timeout:g}s",
                    UNAVAILABLE,
                )
            time.sleep(POLL)
    return dict(ks)


def current_cluster() -> tuple[str, str | None] | None:
    """The current cluster's name and HOST:PORT of its first running node (None when none runs),
    or None when there is no current cluster. Reads files and checks pids only: no network, no
    writes. An unreadable cluster counts as one with no running node."""
    name = layout.read_current()
    if name is None:
        return None
    try:
        spec = layout.load(name)
        for node in spec.nodes:
            if node_process(spec, node, clean=False).state == RUNNING:
                return name, node.address
    except (LayoutError, OSError, ValueError):
        pass
    return name, None
