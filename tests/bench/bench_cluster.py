"""Three local ringd nodes (127.0.0.1-3, RF 3): QUORUM puts and gets through ``AsyncClient`` at
1 and 64 requests in flight; prints ops/s, latency percentiles and the CPU the three node
processes spent per operation (utime + stime from /proc, summed over the nodes).

    python tests/bench/bench_cluster.py [--seconds 3] [--sync periodic|batch|group]
        [--tree LABEL=PATH ...] [--repeat N]

Each ``--tree`` runs the nodes from another source checkout (e.g. an older commit exported with
``git archive REV | tar -x -C /tmp/old``) in the same run, so results can be compared as ratios;
the client is always this checkout's. Without ``--tree`` only this checkout is measured.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from ringctl.client import AsyncClient, Client

HERE = Path(__file__).resolve().parents[2]
TICK = os.sysconf("SC_CLK_TCK")


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


async def run_load(
    address: str, op: str, in_flight: int, seconds: float, pids: list[int]
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(10**9))
    async with AsyncClient(address, timeout=10) as db:
        deadline = trio.current_time() + seconds

        async def worker() -> None:
            nonlocal errors
            while trio.current_time() < deadline:
                i = next(counter)
                key = f"user:{i % 10_000}"
                start = time.perf_counter()
                try:
                    if op == "put":
                        await db.put("bench", key, {"v": "x" * 48}, consistency="QUORUM")
                    else:
                        await db.get("bench", key, consistency="QUORUM")
                except Exception:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - start)

        cpu0 = sum(cpu_seconds(p) for p in pids)
        started = time.perf_counter()
        async with trio.open_nursery() as workers:
            for _ in range(in_flight):
                workers.start_soon(worker)
        elapsed = time.perf_counter() - started
        cpu = sum(cpu_seconds(p) for p in pids) - cpu0
    latencies.sort()
    n = max(len(latencies), 1)
    return {
        "ops": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "cpu_us": cpu / n * 1e6,
        "errors": errors,
    }


def wait_for(what: str, check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def start_cluster(tree: Path, tmp: Path, sync: str) -> tuple[list[subprocess.Popen[bytes]], str]:
    hosts = [f"127.0.0.{i}" for i in (1, 2, 3)]
    addresses = [f"{h}:{free_port(h)}" for h in hosts]
    procs = []
    env = {**os.environ, "PYTHONPATH": str(tree)}
    for i, address in enumerate(addresses):
        log = open(tmp / f"node{i}.log", "wb")  # noqa: SIM115 - closed with the process
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ringd.main",
                    "--listen",
                    address,
                    "--data-dir",
                    str(tmp / f"node{i}"),
                    "--seeds",
                    addresses[0],
                    "--commitlog-sync",
                    sync,
                    "--log-level",
                    "warning",
                ],
                cwd=tree,
                env=env,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        )
        log.close()

    def all_up() -> bool:
        for address in addresses:
            with Client(address, timeout=2) as db:
                nodes = db.admin("status")["nodes"]
                if len(nodes) != 3 or any(n["status"] != "UP" for n in nodes):
                    return False
        return True

    wait_for("three nodes UP", all_up)
    with Client(addresses[0]) as db:
        db.keyspace_create(
            "bench",
            if_not_exists=True,
            replication={"class": "SimpleStrategy", "replication_factor": 3},
        )
    for address in addresses:
        wait_for(
            "the keyspace everywhere",
            lambda a=address: any(
                k["name"] == "bench" for k in Client(a).keyspace_list()["keyspaces"]
            ),
        )
    return procs, addresses[0]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sync", default="periodic", choices=["periodic", "batch", "group"])
    parser.add_argument("--tree", action="append", default=[], help="LABEL=PATH of a checkout")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    trees = [("this", HERE)] + [
        (label, Path(path).resolve()) for label, path in (t.split("=", 1) for t in args.tree)
    ]
    print(
        f"3 nodes RF 3 QUORUM, commitlog {args.sync}, {args.seconds:g}s per run, "
        f"{os.cpu_count()} cores"
    )
    print(
        f"{'tree':<10}{'run':<12}{'ops/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'cpu us/op':>11}{'err':>5}"
    )
    for _ in range(args.repeat):
        for label, tree in trees:
            with tempfile.TemporaryDirectory() as tmp:
                procs, address = start_cluster(tree, Path(tmp), args.sync)
                pids = [p.pid for p in procs]
                try:
                    for in_flight in (1, 64):
                        for op in ("put", "get"):
                            r = trio.run(run_load, address, op, in_flight, args.seconds, pids)
                            print(
                                f"{label:<10}{op + ' x' + str(in_flight):<12}{r['ops']:>9.0f}"
                                f"{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['cpu_us']:>11.0f}"
                                f"{r['errors']:>5.0f}",
                                flush=True,
                            )
                finally:
                    stop(procs)


if __name__ == "__main__":
    main()
