"""The interval lines and the final Results block, as plain fixed-width text."""

from __future__ import annotations

from typing import Any

COLUMNS = ("time s", "total ops", "op/s", "mean", "p50", "p95", "p99", "p99.9", "max", "errors")
WIDTHS = (7, 10, 9, 8, 8, 8, 8, 8, 8, 7)
LATENCIES = ("mean", "p50", "p95", "p99", "p999", "max")


def _row(cells: list[str]) -> str:
    return " ".join(c.rjust(w) for c, w in zip(cells, WIDTHS, strict=True))


def header() -> str:
    return _row(list(COLUMNS)) + "   (latencies in ms)"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def interval(line: dict[str, Any]) -> str:
    lat = line["latency_ms"]
    return _row(
        [
            f"{line['time_s']:.1f}",
            str(line["ops"]),
            f"{line['op_rate']:.0f}",
            *(_ms(lat[name]) for name in LATENCIES),
            str(line["errors"]),
        ]
    )


def _cpu(summary: dict[str, Any]) -> str:
    per_op = summary["cluster_cpu_us_per_op"]
    if per_op is None:
        return "n/a (needs /proc and every node's process on this machine)"
    nodes = summary["node_cpu_s"] or {}
    return f"{per_op:,.0f} µs  ({summary['cluster_cpu_s']:.2f} s over {len(nodes)} nodes)"


def results(summary: dict[str, Any]) -> list[str]:
    """The Results block, one string per line."""
    lat = summary["latency_ms"]
    rates = ", ".join(f"{op}: {s['op_rate']:,.0f} op/s" for op, s in summary["by_op"].items())
    codes = ", ".join(f"{code} {n}" for code, n in summary["errors_by_code"].items())
    client = summary["client_cpu_us_per_op"]
    elapsed = summary["elapsed_s"]
    lines = [
        "Results:" + ("  (interrupted)" if summary["interrupted"] else ""),
        f"Op rate                   : {summary['op_rate']:,.0f} op/s  [{rates}]",
        f"Latency mean              : {_ms(lat['mean'])} ms",
        f"Latency median            : {_ms(lat['p50'])} ms",
        f"Latency 95th percentile   : {_ms(lat['p95'])} ms",
        f"Latency 99th percentile   : {_ms(lat['p99'])} ms",
        f"Latency 99.9th percentile : {_ms(lat['p999'])} ms",
        f"Latency max               : {_ms(lat['max'])} ms",
        f"Total errors              : {summary['errors']:,}" + (f"  [{codes}]" if codes else ""),
        f"Total operation count     : {summary['ops']:,}",
        f"Cluster CPU per op        : {_cpu(summary)}",
        f"Client CPU per op         : {'n/a' if client is None else f'{client:,.0f} µs'}",
        f"Total operation time      : {int(elapsed // 3600):02d}:{int(elapsed % 3600 // 60):02d}:"
        f"{elapsed % 60:06.3f}",
    ]
    read = summary["by_op"].get("read")
    if read is not None:
        lines.insert(10, f"Reads that found a row    : {read['found']:,} of {read['ops']:,}")
    return lines
