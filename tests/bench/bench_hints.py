"""Hinted handoff on a three-node cluster: write throughput while hints are written, and replay.

    python tests/bench/bench_hints.py [--duration 10s] [--concurrency 64] [--sync periodic]

Starts a local cluster (``ringctl cluster``, 3 nodes on 127.0.0.1-3, RF 3, a free non-default
port, a temporary RINGCTL_HOME), then, in the same run:

1. ``ringctl stress write`` at QUORUM with every node up;
2. node 3 stopped: the same load through nodes 1 and 2, which keep a hint for node 3 of every
   write (``listpendinghints`` afterwards: hints created, bytes pending);
3. the throttle off on nodes 1 and 2 (``ringctl sethintedhandoffthrottlekb 0``), node 3
   started: the replay rate (hints and bytes per second) from the moment ``ringctl cluster
   node 3 start`` returns (the running nodes see it up) until no hints are pending, from the
   nodes' ``delivered`` and ``delivered_bytes`` counters.

The cluster is removed at the end. Numbers only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cluster import Bench, free_port  # noqa: E402

NAME = "hints"


class HintsBench(Bench):
    def json(self, *argv: str) -> Any:
        return json.loads(self.ringctl(*argv, "--json"))

    def write_load(self) -> dict[str, Any]:
        """``ringctl stress write`` against the running nodes of the current cluster."""
        argv = ["stress", "write", "--duration", self.args.duration]
        argv += ["-c", str(self.args.concurrency), "-cl", "QUORUM", "--keys", "100000"]
        return dict(self.json(*argv))

    def pending(self, address: str) -> dict[str, Any]:
        return dict(self.json("listpendinghints", "--host", address))

    def node_up(self, observer: str, address: str) -> bool:
        status = self.json("status", "--host", observer)
        return any(
            n.get("address") == address and n.get("status") == "UP" for n in status.get("nodes", [])
        )


def report(label: str, summary: dict[str, Any]) -> None:
    lat = summary["latency_ms"]
    print(
        f"{label:<28} {summary['op_rate']:>8.0f} op/s  p50 {lat['p50']:.2f} ms  "
        f"p99 {lat['p99']:.2f} ms  errors {summary['errors']}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", default="10s", help="each stress run (default 10s)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--sync", default="periodic", help="commitlog_sync of the nodes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-hints-") as tmp:
        bench = HintsBench(Path(tmp) / "home", args)
        port = free_port()
        nodes = [f"127.0.0.{i}:{port}" for i in (1, 2, 3)]
        start = ["cluster", "start", "--name", NAME, "-n", "3", "--port", str(port)]
        start += ["--conf", f"commitlog_sync={args.sync}", "--rf", "3", "--keyspace", "stress"]
        print(
            f"3 nodes, RF 3, QUORUM writes, 48-byte values, {args.duration} per run, "
            f"c={args.concurrency}, commitlog_sync={args.sync}, {os.cpu_count()} cores"
        )
        try:
            bench.ringctl(*start, "--json")
            report("all up", bench.write_load())
            bench.ringctl("cluster", "node", "3", "stop")
            deadline = time.monotonic() + 60
            while bench.node_up(nodes[0], nodes[2]) or bench.node_up(nodes[1], nodes[2]):
                if time.monotonic() > deadline:
                    raise SystemExit("node 3 still seen up after 60 s")
                time.sleep(0.2)
            report("node 3 down (hints written)", bench.write_load())
            before = [bench.pending(a) for a in nodes[:2]]
            created = sum(p["totals"]["created"] for p in before)
            pending_bytes = sum(h["total_bytes"] for p in before for h in p["hosts"])
            print(f"hints kept for node 3: {created}, {pending_bytes / 1e6:.1f} MB pending")
            for address in nodes[:2]:
                bench.ringctl("sethintedhandoffthrottlekb", "0", "--host", address)
            delivered_before = sum(p["totals"]["delivered"] for p in before)
            bytes_before = sum(p["totals"]["delivered_bytes"] for p in before)
            started = time.monotonic()
            # returns once the running nodes see node 3 up, which is when delivery starts
            bench.ringctl("cluster", "node", "3", "start")
            up_at = time.monotonic()
            deadline = up_at + 600
            while True:
                now = [bench.pending(a) for a in nodes[:2]]
                if not any(p["hosts"] for p in now):
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("hints still pending after 600 s")
                time.sleep(0.2)
            took = time.monotonic() - up_at
            rows = sum(p["totals"]["delivered"] for p in now) - delivered_before
            size = sum(p["totals"]["delivered_bytes"] for p in now) - bytes_before
            print(
                f"replay, throttle off: {rows} hints, {size / 1e6:.2f} MB delivered in "
                f"{took:.2f} s after node 3 was up (start took {up_at - started:.2f} s): "
                f"{rows / took:.0f} hints/s, {size / took / 1e6:.2f} MB/s (poll step 0.2 s)"
            )
        finally:
            try:
                bench.ringctl("cluster", "remove", NAME, "--json")
            except RuntimeError as exc:
                print(f"cleanup: {exc}", file=sys.stderr)


if __name__ == "__main__":
    main()
