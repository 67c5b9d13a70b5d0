"""``ringctl stress MODE``: load the cluster with writes, reads or a mix and measure it."""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ringctl import credentials, output
from ringctl.client import DEFAULT_ADDRESS
from ringctl.completion import KEYSPACES
from ringctl.options import WRITE_LEVEL_VALUES, Json
from ringctl.stress import cpu, report
from ringctl.stress.workload import DISTS, MODES, ZIPF_MAX_KEYS, Workload

if TYPE_CHECKING:  # the runner (trio, hdrhistogram) is imported when stress runs
    from ringctl.stress import runner

DEFAULT_DURATION = "10s"
INTERRUPTED = 130
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, option: str) -> float:
    """``30s``, ``2m``, ``500ms``, ``1h`` or plain seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
    if match is None or float(match.group(1)) <= 0:
        output.fail(
            f"{option} {text!r}: expected a positive duration such as 30s, 2m or 500ms",
            output.USAGE,
        )
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def resolve_targets(host: str | None) -> list[str]:
    """--host (comma-separated), else every running node of the current local cluster, else
    127.0.0.1 on the default port."""
    if host:
        targets = [h.strip() for h in host.split(",") if h.strip()]
        if not targets:
            output.fail("--host: give at least one HOST:PORT", output.USAGE)
        return targets
    return list(cpu.local_cluster_pids()) or [DEFAULT_ADDRESS]


def stress(
    mode: Annotated[str, typer.Argument(metavar="MODE", help="write, read or mixed.")],
    ops: Annotated[
        int | None, typer.Option("--ops", "-n", help="Stop after this many requests.", min=1)
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration",
            help=f"Stop after this long, e.g. 30s, 2m (default {DEFAULT_DURATION} unless -n).",
        ),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", "-c", help="Requests in flight.", min=1, max=10_000),
    ] = 64,
    connections: Annotated[
        int | None,
        typer.Option(
            "--connections",
            help="Connections to spread the requests over, round-robin over the targets "
            "(default: one per target).",
            min=1,
            max=1024,
        ),
    ] = None,
    consistency: Annotated[
        str | None,
        typer.Option(
            "--consistency",
            "-cl",
            metavar="LEVEL",
            help="Consistency level (default QUORUM).",
            autocompletion=WRITE_LEVEL_VALUES,
        ),
    ] = None,
    w: Annotated[
        int | None, typer.Option("-w", help="Replicas that must acknowledge a write.", min=1)
    ] = None,
    r: Annotated[
        int | None, typer.Option("-r", help="Replicas that must answer a read.", min=1)
    ] = None,
    read_ratio: Annotated[
        float,
        typer.Option("--read-ratio", help="Share of reads in mixed mode.", min=0.0, max=1.0),
    ] = 0.5,
    keys: Annotated[
        int,
        typer.Option("--keys", help="Number of distinct keys (key0 ... keyN-1).", min=1, max=10**9),
    ] = 100_000,
    dist: Annotated[
        str,
        typer.Option(
            "--dist",
            help="Key distribution: uniform, zipf, or seq (each key in turn; "
            "'write --dist seq -n KEYS' populates every key once).",
        ),
    ] = "uniform",
    zipf_exponent: Annotated[
        float, typer.Option("--zipf-exponent", help="Exponent of the zipf distribution.", min=0.01)
    ] = 1.0,
    value_size: Annotated[
        int,
        typer.Option("--value-size", help="Bytes in each written value.", min=0, max=1 << 20),
    ] = 48,
    rate: Annotated[
        float,
        typer.Option("--rate", help="At most this many requests per second (0: no limit).", min=0),
    ] = 0.0,
    keyspace: Annotated[
        str,
        typer.Option(
            "--keyspace", help="Keyspace to use; created if missing.", autocompletion=KEYSPACES
        ),
    ] = "stress",
    rf: Annotated[
        int | None,
        typer.Option(
            "--rf",
            help="Replication factor if the keyspace is created (default min(3, nodes)).",
            min=1,
        ),
    ] = None,
    interval: Annotated[
        str, typer.Option("--interval", help="How often to print a progress line.")
    ] = "1s",
    timeout: Annotated[
        float,
        typer.Option("--timeout", help="Seconds the client waits for each response.", min=0.1),
    ] = 30.0,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed for key and op choice (default: random).")
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            envvar="RINGCTL_HOST",
            show_envvar=True,
            help="Nodes to send requests to, HOST:PORT[,HOST:PORT...] (default: every running "
            "node of the current local cluster, else 127.0.0.1:7400).",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Load the cluster and measure it: a line per interval, then a Results block.

    Reports throughput, HDR latency percentiles, errors by code and, when every node runs on
    this machine, the CPU the nodes spent per operation (docs/stress.md).
    """
    if mode not in MODES:
        output.fail(f"MODE {mode!r}: expected one of {', '.join(MODES)}", output.USAGE)
    if dist not in DISTS:
        output.fail(f"--dist {dist!r}: expected one of {', '.join(DISTS)}", output.USAGE)
    if dist == "zipf" and keys > ZIPF_MAX_KEYS:
        output.fail(f"--dist zipf takes at most {ZIPF_MAX_KEYS:,} --keys", output.USAGE)
    if ops is not None and duration is not None:
        output.fail("give either -n or --duration, not both", output.USAGE)
    seconds = (
        None if ops is not None else parse_duration(duration or DEFAULT_DURATION, "--duration")
    )
    targets = resolve_targets(host)
    from ringctl.stress import runner

    config = runner.StressConfig(
        targets=targets,
        workload=Workload(mode, read_ratio, keys, dist, zipf_exponent, value_size, seed),
        concurrency=concurrency,
        connections=connections or len(targets),
        ops=ops,
        duration=seconds,
        consistency=consistency,
        w=w,
        r=r,
        keyspace=keyspace,
        rf=rf,
        rate=rate,
        interval=parse_duration(interval, "--interval"),
        timeout=timeout,
        credentials=lambda address: credentials.resolve(None, address),
    )
    summary = _run(config, as_json)
    if as_json:
        output.emit(summary, True, print)
    else:
        print("\n".join(report.results(summary)), flush=True)
    if summary["interrupted"]:
        raise typer.Exit(INTERRUPTED)


def _run(config: runner.StressConfig, as_json: bool) -> dict[str, Any]:
    import trio

    from ringctl.stress import runner

    printed: list[bool] = []

    def on_interval(line: dict[str, Any]) -> None:
        if as_json:
            return
        if not printed:
            printed.append(True)
            print(
                f"stress {config.workload.mode} against {', '.join(config.targets)}: "
                f"{config.concurrency} in flight over {config.connections} connection(s)",
            )
            print(report.header())
        print(report.interval(line), flush=True)

    try:
        with output.errors():
            return trio.run(runner.run, config, on_interval)
    except runner.StressError as exc:
        output.fail(str(exc), output.UNAVAILABLE)
    except KeyboardInterrupt:
        sys.stderr.write("ringctl: interrupted before the run started\n")
        raise typer.Exit(INTERRUPTED) from None


def register(app: typer.Typer) -> None:
    app.command("stress")(stress)
