"""Three-node cluster throughput, latency and CPU per operation, measured with ``ringctl stress``.

    python tests/bench/bench_cluster.py [--duration 10s] [--baseline REV] [--sync batch,periodic]
                                        [--concurrency 1,64] [--keys 10000] [--no-ceiling]
                                        [--metrics-off] [--rounds 1]

For each commit-log sync mode it starts a fresh local cluster (``ringctl cluster``, 3 nodes on
127.0.0.1-3, RF 3, a free non-default port, a temporary RINGCTL_HOME), runs ``ringctl stress write``
then ``read`` at QUORUM with each in-flight count, and removes the cluster. ``--baseline REV``
extracts REV with ``git archive`` into a temporary directory and runs the same load against that
tree's ringd (``python -m ringd.main`` with PYTHONPATH pointing at it; nothing is installed), driven
by the current ringctl, and prints current/baseline ratios. A bare-callback ceiling server (the
same framing and codec, acks every write, stores nothing, one process) shows what the client and
the wire can do on this machine. Numbers only; nothing is asserted.

A shared or virtual machine's speed drifts by tens of percent within minutes, which one run of
each tree cannot tell from a change. ``--rounds N`` measures every tree N times, in alternating
order (current then baseline, then baseline then current, ...), and gives each ratio as the
median of the N same-round ratios with their range; a change smaller than that range is not
measured. The client's own CPU per operation, the same code against either tree, shows the
drift too.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
METRICS_OFF = Path(__file__).resolve().parent / "metrics_off"
RINGCTL = (
    f"import sys; sys.path.insert(0, {str(ROOT)!r}); sys.argv[0] = 'ringctl'; "
    "from ringctl.app import main; main()"
)


# ---- the ceiling: same framing, callbacks, no storage -------------------------------------------


def serve_ceiling(port: int) -> None:
    import trio

    from ringd.protocol import codec, messages
    from ringd.protocol.framing import DEFAULT_MAX_FRAME, FrameReader, frame

    address = f"127.0.0.1:{port}"
    canned: dict[str, Any] = {
        "hello": {"server": "ceiling", "host_id": "ceiling"},
        "status": {"nodes": [{"address": address, "status": "UP"}]},
        "keyspace_list": {"keyspaces": [{"name": "stress"}]},
        "keyspace_create": {"name": "stress"},
        "get": None,
    }

    def answer(msg: dict[str, Any]) -> bytes:
        op = msg.get("op")
        value = {"timestamp": time.time_ns() // 1000, "acks": 1} if op == "put" else canned.get(op)
        return frame(codec.encode(messages.result(msg.get("id"), value)))

    async def handle(stream: trio.SocketStream) -> None:
        reader = FrameReader(DEFAULT_MAX_FRAME)
        out: list[bytes] = []
        wake = trio.Event()

        async def writer() -> None:  # one coalescing writer per connection
            nonlocal wake
            while True:
                await wake.wait()
                wake = trio.Event()
                data = b"".join(out)
                out.clear()
                await stream.send_all(data)

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                while data := await stream.receive_some(256 * 1024):
                    reader.feed(data)
                    while (body := reader.next_frame()) is not None:
                        out.append(answer(codec.decode_map(body)))  # inline, no task
                    wake.set()
                nursery.cancel_scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def serve() -> None:
        await trio.serve_tcp(handle, port, host="127.0.0.1")

    trio.run(serve)


# ---- running things -----------------------------------------------------------------------------


def bindable_everywhere(port: int, nodes: int = 3) -> bool:
    for i in range(1, nodes + 1):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((f"127.0.0.{i}", port))
            except OSError:
                return False
    return True


def free_port() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != 7400 and bindable_everywhere(port):
            return port
    raise SystemExit("no port free on 127.0.0.1-3")


class Bench:
    def __init__(self, home: Path, args: argparse.Namespace) -> None:
        self.home = home
        self.args = args
        self.rows: list[dict[str, Any]] = []

    def ringctl(self, *argv: str, tree: Path | None = None) -> str:
        """Run ringctl: the current one, or (``tree``) that tree's own, whose cluster commands
        write the configuration its ringd understands (``METRICS_OFF``: the current one, whose
        nodes load the no-op metrics)."""
        env = {**os.environ, "RINGCTL_HOME": str(self.home)}
        env.pop("RINGCTL_HOST", None)
        env.pop("PYTHONPATH", None)
        code = RINGCTL
        if tree == METRICS_OFF:
            env["PYTHONPATH"] = str(METRICS_OFF)
        elif tree:
            env["PYTHONPATH"] = str(tree)  # for the ringd processes ringctl starts
            code = RINGCTL.replace(repr(str(ROOT)), repr(str(tree)))
        done = subprocess.run(
            [sys.executable, "-c", code, *argv],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"ringctl {' '.join(argv)}: exit {done.returncode}: {done.stderr}")
        return done.stdout

    def stress(self, label: str, sync: str, host: list[str], round_: int = 0) -> None:
        for c in self.args.concurrency:
            for mode in ("write", "read"):
                argv = ["stress", mode, "--duration", self.args.duration, "-c", str(c)]
                argv += ["-cl", "QUORUM", "--keys", str(self.args.keys), "--json", *host]
                summary = json.loads(self.ringctl(*argv))
                row = {"tree": label, "sync": sync, "mode": mode, "c": c, "round": round_}
                row.update(summary)
                self.rows.append(row)
                print(line(row), flush=True)

    def cluster(self, label: str, sync: str, tree: Path | None, round_: int = 0) -> None:
        name = f"{label.split()[0]}-{sync}"
        port = free_port()
        start = ["cluster", "start", "--name", name, "-n", "3", "--port", str(port)]
        start += ["--conf", f"commitlog_sync={sync}", "--rf", "3", "--keyspace", "stress", "--json"]
        # an older tree's cluster is driven by the current stress through --host (its nodes
        # take no login); the current cluster's through its local cluster (and its login)
        hosts = ",".join(f"127.0.0.{i}:{port}" for i in range(1, 4))
        try:
            self.ringctl(*start, tree=tree)
            host = ["--host", hosts] if tree and tree != METRICS_OFF else []
            self.stress(label, sync, host, round_)
        finally:
            try:
                self.ringctl("cluster", "remove", name, "--json", tree=tree)
            except RuntimeError as exc:
                print(f"cleanup: {exc}", file=sys.stderr)

    def ceiling(self) -> None:
        port = free_port()
        proc = subprocess.Popen([sys.executable, __file__, "--serve-ceiling", str(port)])
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit("the ceiling server did not start") from None
                    time.sleep(0.05)
            self.stress("ceiling", "-", ["--host", f"127.0.0.1:{port}"])
        finally:
            proc.kill()
            proc.wait()


def fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


HEADER = (
    f"{'tree':<16} {'sync':<9} {'mode':<6} {'c':>3} {'op/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
    f"{'p99.9 ms':>9} {'errors':>6} {'cluster µs/op':>14} {'client µs/op':>13}"
)


def line(row: dict[str, Any]) -> str:
    lat = row["latency_ms"]
    return (
        f"{row['tree']:<16} {row['sync']:<9} {row['mode']:<6} {row['c']:>3} "
        f"{row['op_rate']:>8.0f} {fmt(lat['p50']):>8} {fmt(lat['p99']):>8} {fmt(lat['p999']):>9} "
        f"{row['errors']:>6} {fmt(row['cluster_cpu_us_per_op'], '.0f'):>14} "
        f"{fmt(row['client_cpu_us_per_op'], '.0f'):>13}"
    )


def ratios(rows: list[dict[str, Any]]) -> None:
    """Current over each baseline, paired within a round: the median over the rounds, and
    with more than one round the range of the same-round ratios."""
    metrics = {
        "op/s": lambda r: r["op_rate"],
        "p50": lambda r: r["latency_ms"]["p50"],
        "p99.9": lambda r: r["latency_ms"]["p999"],
        "cpu/op": lambda r: r["cluster_cpu_us_per_op"],
    }
    rounds = len({r["round"] for r in rows})
    width = 17 if rounds > 1 else 7

    def ratio(pairs: list[tuple[dict[str, Any], dict[str, Any]]], value: Any) -> str:
        found = [value(r) / value(b) for r, b in pairs if value(r) and value(b)]
        if not found:
            return "-"
        text = f"{statistics.median(found):.2f}"
        if len(found) > 1:
            text += f" ({min(found):.2f}-{max(found):.2f})"
        return text

    for label in dict.fromkeys(r["tree"] for r in rows if r["tree"].startswith("baseline")):
        base = {(r["sync"], r["mode"], r["c"], r["round"]): r for r in rows if r["tree"] == label}
        pairs: dict[tuple[str, str, int], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
        for r in rows:
            b = base.get((r["sync"], r["mode"], r["c"], r["round"]))
            if r["tree"] == "current" and b is not None:
                pairs.setdefault((r["sync"], r["mode"], r["c"]), []).append((r, b))
        print(
            f"\ncurrent / {label}" + (f", median of {rounds} rounds (range)" if rounds > 1 else "")
        )
        print(f"{'sync':<9} {'mode':<6} {'c':>3} " + " ".join(f"{m:>{width}}" for m in metrics))
        for (sync, mode, c), found in pairs.items():
            cells = " ".join(f"{ratio(found, value):>{width}}" for value in metrics.values())
            print(f"{sync:<9} {mode:<6} {c:>3} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", default="10s", help="each stress run (default 10s)")
    parser.add_argument("--baseline", metavar="REV", help="also measure this commit")
    parser.add_argument("--sync", default="batch,periodic", help="commitlog_sync modes")
    parser.add_argument("--concurrency", default="1,64", help="in-flight counts")
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--no-ceiling", action="store_true", help="skip the ceiling server")
    parser.add_argument(
        "--metrics-off", action="store_true", help="also run with metric records as no-ops"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure every tree this many times, alternating"
    )
    parser.add_argument("--serve-ceiling", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_ceiling:
        serve_ceiling(args.serve_ceiling)
        return
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        trees: list[tuple[str, Path | None]] = [("current", None)]
        if args.baseline:
            tree = Path(tmp) / "baseline"
            tree.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", args.baseline],
                capture_output=True,
                check=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
            trees.append((f"baseline {args.baseline[:8]}", tree))
        if args.metrics_off:
            trees.append(("baseline nometric", METRICS_OFF))
        bench = Bench(Path(tmp) / "home", args)
        print(
            f"3 nodes, RF 3, QUORUM, 48-byte values, {args.duration} per run, {os.cpu_count()} cores"
        )
        print(HEADER, flush=True)
        for round_ in range(args.rounds):
            order = trees if round_ % 2 == 0 else trees[::-1]  # drift favours neither
            for sync in args.sync.split(","):
                for label, tree in order:
                    bench.cluster(label, sync, tree, round_)
        if not args.no_ceiling:
            bench.ceiling()
        if args.baseline or args.metrics_off:
            ratios(bench.rows)


if __name__ == "__main__":
    main()
