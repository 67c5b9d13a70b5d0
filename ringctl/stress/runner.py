"""The trio run: connections, one looping task per in-flight slot, a line per interval, stop.

Workers never spawn a task per request: each of the ``concurrency`` tasks loops, taking a
request from the budget (``-n`` or ``--duration``), waiting for the rate limiter, and awaiting
its response. Errors are counted by code, not raised; a worker whose connection breaks stops.
SIGINT stops the workers at once (requests in flight are abandoned) and the run returns what
it measured so far with ``interrupted`` set.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import trio

from ringctl import target
from ringctl.client import AsyncClient, ConnectError
from ringctl.stress import cpu
from ringctl.stress.stats import Stats, latency_ms
from ringctl.stress.workload import KeyChooser, OpChooser, RateLimiter, Workload, key_name
from ringd.net.channel import CallTimeout
from ringd.protocol.errors import ProtocolError

SCHEMA_WAIT = 30.0


class StressError(Exception):
    """The run could not start (for example the keyspace never reached every target)."""


@dataclass(frozen=True)
class StressConfig:
    targets: list[str]
    workload: Workload = field(default_factory=Workload)
    concurrency: int = 64
    connections: int = 1
    ops: int | None = None  # stop after this many requests...
    duration: float | None = None  # ...or after this many seconds
    consistency: str | None = None
    w: int | None = None
    r: int | None = None
    keyspace: str = "stress"
    rf: int | None = None  # for a keyspace this run creates; default min(3, nodes)
    rate: float = 0.0
    interval: float = 1.0
    timeout: float = 30.0  # per request, on the client
    #: the login for each target (None: none); default: ``ringctl.credentials`` per target
    credentials: Callable[[str], dict[str, str] | None] | None = None


class _Budget:
    def __init__(self, ops: int | None, deadline: float | None) -> None:
        self.left = ops
        self.deadline = deadline

    def take(self) -> bool:
        if self.deadline is not None and trio.current_time() >= self.deadline:
            return False
        if self.left is None:
            return True
        if self.left <= 0:
            return False
        self.left -= 1
        return True


async def _ring(client: AsyncClient) -> tuple[list[str], int] | None:
    """Addresses of the ring's UP nodes and the ring's size, as the first target sees them."""
    try:
        status = await client.admin("status")
    except ProtocolError:
        return None
    nodes = status.get("nodes") or []
    return [n["address"] for n in nodes if n.get("status") == "UP"], len(nodes)


async def _has_keyspace(client: AsyncClient, name: str) -> bool:
    listing = await client.keyspace_list()
    return any(ks.get("name") == name for ks in listing.get("keyspaces", []))


async def _ensure_keyspace(clients: list[AsyncClient], name: str, rf: int) -> bool:
    """Create the keyspace if missing and wait until every connection's node knows it.
    Whether this run created it."""
    created = False
    if not await _has_keyspace(clients[0], name):
        replication = {"class": "SimpleStrategy", "replication_factor": rf}
        await clients[0].keyspace_create(name, replication=replication, if_not_exists=True)
        created = True
    with trio.move_on_after(SCHEMA_WAIT):
        for client in clients:
            while not await _has_keyspace(client, name):  # noqa: ASYNC110 - polls a remote node
                await trio.sleep(0.05)
        return created
    raise StressError(f"keyspace {name!r} did not reach every node within {SCHEMA_WAIT:g}s")


async def run(
    config: StressConfig, on_interval: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Run the stress workload; ``on_interval`` gets each interval's line as it ends. Returns the
    summary document (see docs/stress.md)."""
    async with AsyncExitStack() as stack:
        clients = []
        for i in range(config.connections):
            address = config.targets[i % len(config.targets)]
            login = config.credentials(address) if config.credentials else None
            client = AsyncClient(
                address,
                timeout=config.timeout,
                credentials=login,
                tls_ca=target.tls_ca_for(None, address),
            )
            clients.append(await stack.enter_async_context(client))
        ring = await _ring(clients[0])
        rf = config.rf or (min(3, ring[1]) if ring else 1)
        created = await _ensure_keyspace(clients, config.keyspace, rf)
        pids = cpu.node_pids(ring[0]) if ring and ring[0] else None
        return await _measure(config, clients, pids, created, on_interval)


async def _measure(
    config: StressConfig,
    clients: list[AsyncClient],
    pids: dict[str, int] | None,
    created: bool,
    on_interval: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    workload = config.workload
    stats = Stats()
    keys, ops = KeyChooser(workload), OpChooser(workload)
    limiter = RateLimiter(config.rate)
    columns = {"value": os.urandom(workload.value_size)}
    ks, cl = config.keyspace, config.consistency
    interrupted = False

    async def worker(client: AsyncClient) -> None:
        while budget.take():
            await limiter.wait()
            op, key = ops.next(), key_name(keys.next())
            started = time.perf_counter_ns()
            try:
                if op == "write":
                    await client.put(ks, key, columns, consistency=cl, w=config.w)
                    found = False
                else:
                    found = await client.get(ks, key, consistency=cl, r=config.r) is not None
            except ConnectError:
                stats.error(op, "CONNECTION_LOST")
                return
            except CallTimeout:
                stats.error(op, "CLIENT_TIMEOUT")
            except ProtocolError as exc:
                stats.error(op, str(exc.code))
            else:
                stats.record(op, (time.perf_counter_ns() - started) // 1000, found)

    last = 0.0  # when the current interval began

    def interval_line(now: float) -> None:
        nonlocal last
        latencies, errors = stats.take_interval()
        count = latencies.count + errors
        began, last = last, now
        if count == 0 and now - began < config.interval / 2:
            return  # nothing in a short final interval
        on_interval(
            {
                "time_s": round(now - start, 3),
                "ops": stats.ops,
                "op_rate": round(count / (now - began), 1) if now > began else 0.0,
                "latency_ms": latency_ms(latencies),
                "errors": errors,
            }
        )

    async def reporter() -> None:
        while True:
            await trio.sleep_until(last + config.interval)
            interval_line(trio.current_time())

    async def on_sigint(scope: trio.CancelScope) -> None:
        nonlocal interrupted
        with trio.open_signal_receiver(signal.SIGINT) as signals:
            async for _ in signals:
                interrupted = True
                scope.cancel()

    cluster_cpu = cpu.ClusterCpu(pids)
    cluster_cpu.start()
    client_cpu = cpu.own_cpu_seconds()
    start = last = trio.current_time()
    budget = _Budget(config.ops, None if config.duration is None else start + config.duration)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reporter)
        with trio.CancelScope() as workers_scope:
            nursery.start_soon(on_sigint, workers_scope)
            async with trio.open_nursery() as workers:
                for j in range(config.concurrency):
                    workers.start_soon(worker, clients[j % len(clients)])
        end = trio.current_time()
        nursery.cancel_scope.cancel()
    cluster_cpu.stop()
    client_cpu = cpu.own_cpu_seconds() - client_cpu
    interval_line(end)
    return _summary(config, stats, end - start, cluster_cpu, client_cpu, created, interrupted)


def _per_op(seconds: float | None, ops: int) -> float | None:
    return None if seconds is None or ops == 0 else round(seconds * 1e6 / ops, 1)


def _summary(
    config: StressConfig,
    stats: Stats,
    elapsed: float,
    cluster_cpu: cpu.ClusterCpu,
    client_cpu: float,
    created: bool,
    interrupted: bool,
) -> dict[str, Any]:
    w = config.workload
    cluster_seconds = None if cluster_cpu.spent is None else sum(cluster_cpu.spent.values())
    return {
        "mode": w.mode,
        "keyspace": config.keyspace,
        "keyspace_created": created,
        "targets": config.targets,
        "connections": config.connections,
        "concurrency": config.concurrency,
        "consistency": config.consistency,
        "w": config.w,
        "r": config.r,
        "keys": w.keys,
        "dist": w.dist,
        "zipf_exponent": w.zipf_exponent if w.dist == "zipf" else None,
        "read_ratio": w.read_ratio if w.mode == "mixed" else None,
        "value_size": w.value_size,
        "rate_limit": config.rate,
        "ops": stats.ops,
        "errors": stats.errors,
        "errors_by_code": dict(sorted(stats.errors_by_code.items())),
        "elapsed_s": round(elapsed, 3),
        "op_rate": round(stats.ops / elapsed, 1) if elapsed > 0 else 0.0,
        "latency_ms": latency_ms(stats.total),
        "by_op": {
            op: {**s.to_json(op), "op_rate": round(s.ops / elapsed, 1) if elapsed > 0 else 0.0}
            for op, s in sorted(stats.by_op.items())
        },
        "cluster_cpu_us_per_op": _per_op(cluster_seconds, stats.ops),
        "cluster_cpu_s": None if cluster_seconds is None else round(cluster_seconds, 3),
        "node_cpu_s": cluster_cpu.spent,
        "client_cpu_us_per_op": _per_op(client_cpu, stats.ops),
        "interrupted": interrupted,
    }
