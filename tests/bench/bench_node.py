"""Single-node throughput: ringd put and get with 1 and 64 requests in flight, next to a bare trio
echo server that speaks the same framing, measured in the same run; prints ops/s, latency
percentiles and the ratio to the echo baseline.

    python tests/bench/bench_node.py [--seconds 3] [--sync periodic|batch|group]

Both servers run as separate processes; the client is one trio process with one connection.
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

import trio

from ringctl.client import Client
from ringd.net.channel import open_channel
from ringd.protocol import codec, messages
from ringd.protocol.framing import DEFAULT_MAX_FRAME, FrameReader, frame


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- the baseline: the same framing and codec, no database ---------------------------------


async def echo_server(port: int) -> None:
    async def handle(stream: trio.SocketStream) -> None:
        reader = FrameReader(DEFAULT_MAX_FRAME)
        out: list[bytes] = []
        wake = trio.Event()

        async def writer() -> None:
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
                        msg = codec.decode_map(body)
                        reply = messages.result(msg.get("id"), msg.get("args"))
                        out.append(frame(codec.encode(reply)))
                        wake.set()
                nursery.cancel_scope.cancel()
        except trio.BrokenResourceError:
            pass

    await trio.serve_tcp(handle, port, host="127.0.0.1")


# ---- the load -----------------------------------------------------------------------------------


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


async def run_load(address: str, op: str, in_flight: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    counter = iter(range(10**9))
    async with trio.open_nursery() as nursery:
        channel = await open_channel(nursery, address, messages.hello_args("client"))
        deadline = trio.current_time() + seconds

        async def worker() -> None:
            while trio.current_time() < deadline:
                i = next(counter)
                key = f"user:{i % 100_000}"
                args = (
                    {
                        "keyspace": "bench",
                        "key": key,
                        "columns": {"name": "Alice Smith", "n": i},
                        "consistency": "ONE",
                    }
                    if op == "put"
                    else {"keyspace": "bench", "key": key, "consistency": "ONE"}
                )
                start = time.perf_counter()
                await channel.call(op, args)
                latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        async with trio.open_nursery() as workers:
            for _ in range(in_flight):
                workers.start_soon(worker)
        elapsed = time.perf_counter() - started
        channel.close()
    latencies.sort()
    return {
        "ops": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


def wait_ready(address: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with Client(address, timeout=2) as db:
                db.ping()
            return
        except Exception:
            time.sleep(0.05)
    raise SystemExit(f"server on {address} did not start")


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("echo server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sync", default="periodic", choices=["periodic", "batch", "group"])
    parser.add_argument("--echo-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_server:
        trio.run(echo_server, args.echo_server)
        return

    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            echo_port = free_port()
            procs.append(
                subprocess.Popen([sys.executable, __file__, "--echo-server", str(echo_port)])
            )
            wait_port(echo_port)
            ringd_port = free_port()
            ringd_address = f"127.0.0.1:{ringd_port}"
            log = open(Path(tmp) / "ringd.log", "wb")  # noqa: SIM115
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "ringd.main",
                        "--listen",
                        ringd_address,
                        "--data-dir",
                        str(Path(tmp) / "data"),
                        "--commitlog-sync",
                        args.sync,
                        "--log-level",
                        "warning",
                        # the load logs in as nobody: a node of its own, no passwords
                        "--authenticator",
                        "none",
                    ],
                    stdout=log,
                    stderr=log,
                )
            )
            wait_ready(ringd_address, procs[-1])
            with Client(ringd_address) as db:
                db.keyspace_create("bench", if_not_exists=True)

            print(
                f"single node, commitlog {args.sync}, {args.seconds:g}s per run, {os.cpu_count()} cores"
            )
            print(f"{'run':<22}{'ops/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs echo':>9}")
            for in_flight in (1, 64):
                echo = trio.run(run_load, f"127.0.0.1:{echo_port}", "put", in_flight, args.seconds)
                print(
                    f"{'echo  x' + str(in_flight):<22}{echo['ops']:>10.0f}{echo['p50_ms']:>9.3f}{echo['p99_ms']:>9.3f}{1.0:>9.2f}"
                )
                for op in ("put", "get"):
                    r = trio.run(run_load, ringd_address, op, in_flight, args.seconds)
                    name = f"ringd {op} x{in_flight}"
                    print(
                        f"{name:<22}{r['ops']:>10.0f}{r['p50_ms']:>9.3f}{r['p99_ms']:>9.3f}{r['ops'] / echo['ops']:>9.2f}"
                    )
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    main()
