"""Merkle-tree repair of 100k rows on 3 local nodes (RF 3): in sync, then 0.1 % differing.

    python tests/bench/bench_repair.py [--rows 100000] [--differ 0.001]

Starts three ringd processes on 127.0.0.1 (free ports, a temporary directory), loads ``--rows``
rows at ALL, flushes, and runs ``repair`` from node 1 twice: first with every replica in sync
(rows streamed must be 0; the time is validation and comparison only, so it gives validation
rows/s over the three replicas), then after writing ``--differ`` of the rows again at QUORUM with
node 1's mutations to node 3 dropped (test hooks), so they differ on node 3 only: rows streamed
÷ rows differing (target at most 2) and the total time. Numbers only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nodes import Ringd, free_port, wait_all_up, wait_for  # noqa: E402

from ringctl.client import AsyncClient  # noqa: E402

RF3 = {"class": "SimpleStrategy", "replication_factor": 3}


async def load(address: str, keys: list[str], value: str, consistency: str) -> None:
    async with AsyncClient(address, timeout=60) as db:
        sem = trio.Semaphore(64)

        async def one(key: str) -> None:
            async with sem:
                await db.put("bench", key, {"v": value}, consistency=consistency)

        async with trio.open_nursery() as nursery:
            for key in keys:
                nursery.start_soon(one, key)


def repair(node: Ringd) -> tuple[dict[str, Any], float]:
    start = time.monotonic()
    with node.client(timeout=60) as db:
        session = db.admin("repair_start", keyspace="bench")
        while session["state"] == "RUNNING":
            time.sleep(0.05)
            session = db.admin("repair_session", id=session["id"])
    return session, time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--differ", type=float, default=0.001)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-repair-") as tmp:
        ports = [free_port() for _ in range(3)]
        seeds = [f"127.0.0.1:{ports[0]}"]
        nodes = [
            Ringd(Path(tmp) / f"node{i + 1}", port=ports[i], seeds=seeds, enable_test_hooks=True)
            for i in range(3)
        ]
        try:
            for n in nodes:
                n.start(wait=False)
            for n in nodes:
                n.wait_ready()
            wait_all_up(nodes)
            n1, _, n3 = nodes
            with n1.client() as db:
                db.keyspace_create("bench", replication=RF3, hinted_handoff=False)
            wait_for(
                lambda: all(n.client().keyspace_list()["keyspaces"] for n in nodes),
                10,
                "keyspace everywhere",
            )
            keys = [f"key{i:07d}" for i in range(args.rows)]
            t = time.monotonic()
            trio.run(load, n1.address, keys, "a" * 40, "ALL")
            print(f"loaded {args.rows} rows at ALL in {time.monotonic() - t:.1f} s")
            for n in nodes:
                with n.client(timeout=120) as db:
                    db.admin("flush", keyspace="bench")

            session, took = repair(n1)
            validated = 3 * args.rows
            print(
                f"0 % differing: {session['state']}, {session['ranges_done']} ranges, "
                f"rows streamed {session['rows_streamed']} (target 0), total {took:.2f} s, "
                f"validation {validated / took:,.0f} rows/s ({validated} rows on 3 replicas)"
            )

            differing = keys[:: max(1, round(1 / args.differ))]
            with n1.client() as db:
                db.admin("test_filter", action="drop", to=[n3.address], verbs=["mutate"])
            trio.run(load, n1.address, differing, "b" * 40, "QUORUM")
            with n1.client() as db:
                db.admin("test_filter", action="clear")
            session, took = repair(n1)
            streamed = session["rows_streamed"]
            print(
                f"{len(differing) / args.rows:.1%} differing ({len(differing)} rows on node 3): "
                f"{session['state']}, rows compared {session['rows_compared']}, rows streamed "
                f"{streamed}, streamed/differing {streamed / len(differing):.2f} (target <= 2), "
                f"{session['bytes_streamed']} bytes, total {took:.2f} s"
            )
        finally:
            for n in nodes:
                n.kill()


if __name__ == "__main__":
    main()
