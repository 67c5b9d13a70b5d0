"""Staleness and consistency: ``staleness`` (measured), ``predictconsistency`` (PBS, predicted
from the replica latencies every node measured) and ``consistency probe`` (measured directly:
write, wait, read through another coordinator). Fields: docs/metrics.md."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Annotated, Any

import typer

from ringctl import output, pbs, target
from ringctl.client import Client
from ringctl.commands.admin import OptionalKeyspace, _call
from ringctl.completion import KEYSPACES
from ringctl.layout import Col, compact_table
from ringctl.options import Host, Json, Timeout
from ringd.protocol.errors import ErrorCode, ProtocolError

app = typer.Typer(
    help="Consistency measured on the cluster (see also predictconsistency).",
    no_args_is_help=True,
)

PROBE_TTL_S = 600  # probe rows expire by themselves


def _numbers(text: str, name: str, kind: type = int) -> list[Any]:
    """``1,2,3`` as numbers (a usage error names the option otherwise)."""
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        output.fail(f"{name}: expected comma-separated numbers, not {text!r}", output.USAGE)
    if not values:
        output.fail(f"{name}: give at least one number", output.USAGE)
    if any(v < 0 for v in values):
        output.fail(f"{name}: numbers must not be negative", output.USAGE)
    return values


def _ms(t: float) -> str:
    return f"{t:g}"


def staleness(
    keyspace: OptionalKeyspace = None,
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Digest mismatches per keyspace, hints waiting, repair age and the replica lag probe."""
    result = _call(host, timeout, "staleness", keyspace=keyspace)

    def render(r: dict[str, Any]) -> None:
        cols = (
            Col("Keyspace", whole=True),
            Col("Compared", whole=True, justify="right"),
            Col("Mismatches", whole=True, justify="right"),
            Col("Per s", whole=True, justify="right"),
            Col("Ratio", whole=True, justify="right"),
            Col("Repaired ago", whole=True, justify="right"),
        )
        rows = [
            [
                k["keyspace"],
                k["reads_compared"],
                k["digest_mismatches"],
                f"{k['mismatch_rate']:.2f}",
                f"{k['mismatch_ratio'] * 100:.1f}%",
                "never" if k["oldest_repair_age_s"] is None else f"{k['oldest_repair_age_s']:g}s",
            ]
            for k in r["keyspaces"]
        ]
        output.console.print(compact_table(cols, rows))
        age = r["oldest_hint_age_s"]
        output.say(
            f"Hints waiting: {output.human_bytes(r['hints_bytes'])} for {len(r['hints'])} "
            f"host(s)" + ("" if age is None else f", oldest {age:g}s")
        )
        probe = r["lag_probe"]
        if not probe["interval_s"]:
            output.say("Replica lag probe: off")
            return
        lag = probe["lag"]
        output.say(
            f"Replica lag probe (every {probe['interval_s']:g}s): {probe['canaries']} canaries, "
            f"{probe['incomplete']} incomplete"
        )
        output.say(
            f"Replica lag: p50 {lag['p50_us'] / 1000:.1f} ms, p99 {lag['p99_us'] / 1000:.1f} ms, "
            f"max {lag['max_us'] / 1000:.1f} ms"
        )

    output.emit(result, as_json, render)


def _up_nodes(db: Client) -> list[str]:
    return [n["address"] for n in db.admin("status")["nodes"] if n["status"] == "UP"]


@contextmanager
def _clients(addresses: list[str], timeout: float | None) -> Iterator[list[Client]]:
    with ExitStack() as stack:
        clients = []
        for address in addresses:
            clients.append(stack.enter_context(target.client(address, timeout)))
        yield clients


def predictconsistency(
    rf: Annotated[int, typer.Option("--rf", help="Replication factor N.", min=1, max=32)],
    w: Annotated[
        str,
        typer.Option("--w", metavar="W[,W...]", help="Write acknowledgements W (or a list: 1,2)."),
    ],
    r: Annotated[
        str, typer.Option("--r", metavar="R[,R...]", help="Read replicas R (or a list: 1,2).")
    ],
    after_ms: Annotated[
        str,
        typer.Option("--after-ms", metavar="T[,T...]", help="Milliseconds after the write."),
    ],
    trials: Annotated[
        int, typer.Option("--trials", help="Monte Carlo trials.", min=100, max=1_000_000)
    ] = 10_000,
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Predict the chance that a read returns the latest write T ms after it committed (PBS).

    A Monte Carlo over the one-way replica latencies every live node measured recently (write,
    ack, read, response: docs/metrics.md), for each (w, r); with expected latencies."""
    ws, rs = _numbers(w, "--w"), _numbers(r, "--r")
    ts = _numbers(after_ms, "--after-ms", float)
    pairs = [(a, b) for a in ws for b in rs]
    for a, b in pairs:
        if not (1 <= a <= rf and 1 <= b <= rf):
            output.fail(f"--w and --r must be between 1 and --rf {rf}", output.USAGE)
    with output.errors():
        with target.client(host, timeout) as db:
            addresses = _up_nodes(db)
        exports = []
        for address in addresses:
            with target.client(address, timeout) as db:
                trips = db.admin("replica_latencies")
            exports.append({name: trips[name]["buckets"] for name in pbs.TRIPS})
    dists = pbs.merge(exports)
    samples = {name: sum(c for _, c in dists[name]) for name in pbs.TRIPS}
    if not samples["write"]:
        output.fail(
            "no replica write latencies measured in the last minutes; write some data first "
            "(at least a few writes to replicated keyspaces)",
            output.NOT_FOUND,
        )
    predictions = pbs.predict(rf, pairs, ts, dists, trials=trials)
    result = {
        "rf": rf,
        "trials": trials,
        "nodes": addresses,
        "samples": samples,
        "predictions": [
            {
                "w": p.w,
                "r": p.r,
                "write_latency_ms": round(p.write_latency_ms, 3),
                "read_latency_ms": round(p.read_latency_ms, 3),
                "consistent": [
                    {"after_ms": t, "probability": round(p.consistent[t], 6)} for t in ts
                ],
            }
            for p in predictions
        ],
    }

    def render(res: dict[str, Any]) -> None:
        output.say(
            f"Consistency prediction (PBS), N={rf}, {trials} trials over "
            f"{samples['write']} write and {samples['read']} read samples from "
            f"{len(addresses)} node(s)"
        )
        cols = (
            Col("W", whole=True, justify="right"),
            Col("R", whole=True, justify="right"),
            *(Col(f"P@{_ms(t)}ms", whole=True, justify="right") for t in ts),
            Col("Write ms", whole=True, justify="right"),
            Col("Read ms", whole=True, justify="right"),
        )
        rows = [
            [
                p["w"],
                p["r"],
                *(f"{c['probability']:.4f}" for c in p["consistent"]),
                f"{p['write_latency_ms']:.2f}",
                f"{p['read_latency_ms']:.2f}",
            ]
            for p in res["predictions"]
        ]
        output.console.print(compact_table(cols, rows))

    output.emit(result, as_json, render)


@app.command()
def probe(
    keyspace: Annotated[
        str,
        typer.Option(
            "--keyspace",
            "-k",
            metavar="KS",
            help="Keyspace to write probe rows to.",
            autocompletion=KEYSPACES,
        ),
    ],
    w: Annotated[int, typer.Option("--w", help="Write acknowledgements.", min=1)] = 1,
    r: Annotated[int, typer.Option("--r", help="Read replicas.", min=1)] = 1,
    after_ms: Annotated[
        str,
        typer.Option("--after-ms", metavar="T[,T...]", help="Milliseconds between write and read."),
    ] = "0",
    samples: Annotated[
        int, typer.Option("--samples", help="Writes and reads per T.", min=1, max=100_000)
    ] = 100,
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Measure the chance a read returns the latest write T ms after it was acknowledged.

    Each sample writes a new row at w through one coordinator, waits T ms, and reads it at r
    through another, going round every pair of live nodes. Probe rows are keyed
    ringctl-probe-..., and expire after 10 minutes (TTL). Exit 3 if no sample got through."""
    ts = _numbers(after_ms, "--after-ms", float)
    run = uuid.uuid4().hex[:12]
    with output.errors():
        with target.client(host, timeout) as db:
            addresses = _up_nodes(db)
        if len(addresses) < 2:
            output.fail(
                "the probe needs two live nodes (one writes, another reads)", output.UNAVAILABLE
            )
        pairs = [(a, b) for a in range(len(addresses)) for b in range(len(addresses)) if a != b]
        results = []
        with _clients(addresses, timeout) as clients:
            for t in ts:
                fresh = errors = 0
                for i in range(samples):
                    writer, reader = pairs[i % len(pairs)]
                    key = f"ringctl-probe-{run}-{_ms(t)}-{i}"
                    value = f"{run}-{i}"
                    try:
                        clients[writer].put(keyspace, key, {"v": value}, w=w, ttl=PROBE_TTL_S)
                        if t:
                            time.sleep(t / 1000)
                        row = clients[reader].get(keyspace, key, r=r)
                    except ProtocolError as exc:
                        if exc.code == ErrorCode.INVALID:
                            raise
                        errors += 1
                        continue
                    if row is not None and row["columns"].get("v") == value:
                        fresh += 1
                done = samples - errors
                results.append(
                    {
                        "after_ms": t,
                        "samples": samples,
                        "fresh": fresh,
                        "errors": errors,
                        "probability": round(fresh / done, 6) if done else None,
                    }
                )
    result = {"keyspace": keyspace, "w": w, "r": r, "nodes": addresses, "results": results}

    def render(res: dict[str, Any]) -> None:
        output.say(f"Consistency probe: w={w}, r={r} on {keyspace}, {len(addresses)} nodes")
        cols = (
            Col("After ms", whole=True, justify="right"),
            Col("Samples", whole=True, justify="right"),
            Col("Fresh", whole=True, justify="right"),
            Col("Errors", whole=True, justify="right"),
            Col("Probability", whole=True, justify="right"),
        )
        rows = [
            [
                _ms(x["after_ms"]),
                x["samples"],
                x["fresh"],
                x["errors"],
                "-" if x["probability"] is None else f"{x['probability']:.4f}",
            ]
            for x in res["results"]
        ]
        output.console.print(compact_table(cols, rows))

    output.emit(result, as_json, render)
    if all(x["probability"] is None for x in results):
        raise typer.Exit(output.UNAVAILABLE)  # no sample got through: nothing was measured


def register(root: typer.Typer) -> None:
    root.command()(staleness)
    root.command()(predictconsistency)
    root.add_typer(app, name="consistency")
