"""Benchmark: the storage engine against SQLite on the same rows, in the same run.

    python tests/bench/bench_engine.py [--rows N] [--reads R] [--dir DIR]

Writes N small rows (key ``user:{i}``, one column of ``--value-bytes`` bytes) through the
engine in periodic commit-log mode, point-reads a random sample from the memtable, flushes,
point-reads the sample again from sstables, compacts (major), measures bytes on disk before and
after, closes, reopens (restart time) and reads the sample once more. Then the same rows go into
Python's sqlite3 (WAL, synchronous=NORMAL, ``key PRIMARY KEY, value``, one transaction per
``--batch`` rows) and the same sample is read back.

Each side runs in its own process, so peak memory (max RSS) is its own. Prints a table of
numbers and the engine/SQLite ratios (for rates, above 1 means the engine is faster).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import trio  # noqa: E402

from ringd.db.cells import Cell, Row  # noqa: E402
from ringd.db.engine import EngineOptions, StorageEngine  # noqa: E402


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _sample(rows: int, reads: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    return [b"user:%d" % rng.randrange(rows) for _ in range(reads)]


def run_engine(args: argparse.Namespace, out: Any) -> None:
    data_dir = Path(args.dir) / "engine"
    shutil.rmtree(data_dir, ignore_errors=True)
    value = b"v" * args.value_bytes
    sample = _sample(args.rows, args.reads)
    res: dict[str, float] = {}
    options = EngineOptions(
        memtable_flush_bytes=args.memtable_mb * 1024 * 1024,
        background_compaction=False,
    )

    def read_all(engine: StorageEngine) -> float:
        t = time.perf_counter()
        for key in sample:
            row = engine.read("bench", key)
            assert row is not None and row.cells["v"].value == value
        return time.perf_counter() - t

    async def main() -> None:
        engine = StorageEngine.open(data_dir, options)
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            ts = 1_700_000_000_000_000
            t = time.perf_counter()
            apply = engine.apply
            checkpoint = trio.lowlevel.checkpoint
            for i in range(args.rows):
                await apply("bench", b"user:%d" % i, Row({"v": Cell(ts + i, value)}))
                if i % 1000 == 999:
                    await checkpoint()  # let the commit-log syncer and flusher run
            res["write_s"] = time.perf_counter() - t
            res["mem_read_s"] = read_all(engine)
            t = time.perf_counter()
            await engine.flush()
            res["flush_s"] = time.perf_counter() - t
            await engine.sync()
            stats = engine.stats()["bench"]
            res["sstables_before"] = stats["sstable_count"]
            res["bytes_before"] = stats["bytes_on_disk"]
            res["sst_read_s"] = read_all(engine)
            t = time.perf_counter()
            await engine.compact()
            res["compact_s"] = time.perf_counter() - t
            res["bytes_after"] = engine.stats()["bench"]["bytes_on_disk"]
            res["compacted_read_s"] = read_all(engine)
            nursery.cancel_scope.cancel()
        await engine.close()
        res["dir_bytes"] = _dir_bytes(data_dir)
        res["peak_rss_mb"] = _max_rss_mb()
        t = time.perf_counter()
        engine = StorageEngine.open(data_dir, options)
        res["open_s"] = time.perf_counter() - t
        res["restart_read_s"] = read_all(engine)
        await engine.close()

    trio.run(main)
    out.put(res)


def run_sqlite(args: argparse.Namespace, out: Any) -> None:
    db_dir = Path(args.dir) / "sqlite"
    shutil.rmtree(db_dir, ignore_errors=True)
    db_dir.mkdir(parents=True)
    path = db_dir / "bench.db"
    value = b"v" * args.value_bytes
    sample = _sample(args.rows, args.reads)
    res: dict[str, float] = {}

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def read_all(conn: sqlite3.Connection) -> float:
        t = time.perf_counter()
        for key in sample:
            got = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
            assert got is not None and got[0] == value
        return time.perf_counter() - t

    conn = connect()
    conn.execute("CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB)")
    t = time.perf_counter()
    batch = args.batch
    for start in range(0, args.rows, batch):
        stop = min(start + batch, args.rows)
        conn.executemany(
            "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
            [(b"user:%d" % i, value) for i in range(start, stop)],
        )
        conn.commit()
    res["write_s"] = time.perf_counter() - t
    res["mem_read_s"] = read_all(conn)
    t = time.perf_counter()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    res["flush_s"] = time.perf_counter() - t
    res["bytes_before"] = _dir_bytes(db_dir)
    res["sst_read_s"] = res["mem_read_s"]
    t = time.perf_counter()
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    res["compact_s"] = time.perf_counter() - t
    res["bytes_after"] = _dir_bytes(db_dir)
    res["compacted_read_s"] = read_all(conn)
    conn.close()
    res["dir_bytes"] = _dir_bytes(db_dir)
    res["peak_rss_mb"] = _max_rss_mb()
    t = time.perf_counter()
    conn = connect()
    conn.execute("SELECT value FROM kv WHERE key = ?", (b"user:0",)).fetchone()
    res["open_s"] = time.perf_counter() - t
    res["restart_read_s"] = read_all(conn)
    conn.close()
    out.put(res)


def _in_process(target: Any, args: argparse.Namespace) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(args, queue))
    proc.start()
    res = queue.get()
    proc.join()
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reads", type=int, default=100_000)
    parser.add_argument("--value-bytes", type=int, default=20)
    parser.add_argument("--batch", type=int, default=1000, help="SQLite rows per transaction")
    parser.add_argument(
        "--memtable-mb", type=int, default=64, help="engine flush threshold (its default: 64)"
    )
    parser.add_argument("--dir", default=None, help="where to put the files (default: a temp dir)")
    args = parser.parse_args()
    args.reads = min(args.reads, args.rows)
    own_dir = args.dir is None
    if own_dir:
        args.dir = tempfile.mkdtemp(prefix="ringd-bench-")
    try:
        print(
            f"{args.rows:,} rows of one {args.value_bytes}-byte column, {args.reads:,} point "
            f"reads; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs",
            flush=True,
        )
        eng = _in_process(run_engine, args)
        sql = _in_process(run_sqlite, args)
    finally:
        if own_dir:
            shutil.rmtree(args.dir, ignore_errors=True)

    n, r = args.rows, args.reads
    table: list[tuple[str, str, float, float, bool]] = [
        ("writes/s (periodic, memtable)", "rate", n / eng["write_s"], n / sql["write_s"], True),
        ("point reads/s, memtable", "rate", r / eng["mem_read_s"], r / sql["mem_read_s"], True),
        ("flush s (SQLite: WAL checkpoint)", "s", eng["flush_s"], sql["flush_s"], False),
        ("point reads/s, after flush", "rate", r / eng["sst_read_s"], r / sql["sst_read_s"], True),
        ("sstables before compaction", "n", eng["sstables_before"], 1, False),
        ("MB on disk before compaction", "mb", eng["bytes_before"], sql["bytes_before"], False),
        ("major compaction s (SQLite: VACUUM)", "s", eng["compact_s"], sql["compact_s"], False),
        ("MB on disk after compaction", "mb", eng["bytes_after"], sql["bytes_after"], False),
        (
            "point reads/s, after compaction",
            "rate",
            r / eng["compacted_read_s"],
            r / sql["compacted_read_s"],
            True,
        ),
        ("restart (open) s", "s", eng["open_s"], sql["open_s"], False),
        (
            "point reads/s, after restart",
            "rate",
            r / eng["restart_read_s"],
            r / sql["restart_read_s"],
            True,
        ),
        ("peak memory MB (max RSS)", "n", eng["peak_rss_mb"], sql["peak_rss_mb"], False),
    ]

    def fmt(kind: str, v: float) -> str:
        if kind == "rate":
            return f"{v:,.0f}"
        if kind == "mb":
            return f"{v / 1024 / 1024:,.1f}"
        if kind == "s":
            return f"{v:,.3f}"
        return f"{v:,.0f}"

    print(f"{'':38} {'engine':>14} {'sqlite':>14} {'engine/sqlite':>14}")
    for label, kind, e, s, _higher_better in table:
        ratio = e / s if s else float("inf")
        print(f"{label:38} {fmt(kind, e):>14} {fmt(kind, s):>14} {ratio:>14.2f}")
    print(
        f"per write: engine {eng['write_s'] / n * 1e6:.2f} us, sqlite {sql['write_s'] / n * 1e6:.2f}"
        f" us; per read after compaction: engine {eng['compacted_read_s'] / r * 1e6:.2f} us, "
        f"sqlite {sql['compacted_read_s'] / r * 1e6:.2f} us"
    )


if __name__ == "__main__":
    main()
