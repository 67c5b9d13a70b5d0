"""ringctl top's pure parts: rates from two samples, and a table that fits 80 columns."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from ringctl.commands.top import node_row, render, short

NODE = {
    "address": "127.0.0.1:7401",
    "host_id": "h1",
    "dc": "dc1",
    "status": "UP",
    "state": "NORMAL",
}


def views(at: float, reads: int, writes: int, reconciled: int) -> dict[str, Any]:
    latency = {"p99_us": 2500.0}
    return {
        "at": at,
        "wall": 1000.0 + at,
        "proxyhistograms": {
            "read": {**latency, "count": reads},
            "write": {**latency, "count": writes},
            "counters": {"read_repair_reconcile": reconciled},
        },
        "tpstats": {"messages": [{"dropped": 2}, {"dropped": 1}]},
        "netstats": {"hints": [{"bytes": 300, "oldest_ms": 900_000}]},
        "repair_state": {
            "keyspaces": [
                {"never_repaired": 0, "oldest_repair": 940.0},
                {"never_repaired": 0, "oldest_repair": 990.0},
            ]
        },
    }


def test_rates_are_counter_changes_over_the_interval() -> None:
    row = node_row(NODE, views(2.0, 500, 300, 10), views(0.0, 100, 100, 0))
    assert (row["reads_per_s"], row["writes_per_s"]) == (200.0, 100.0)
    assert row["digest_mismatch_pct"] == 2.5  # 10 of 400 reads
    assert (row["read_p99_ms"], row["dropped"], row["hints_pending_bytes"]) == (2.5, 3, 300)
    assert row["hints_oldest_age_s"] == 102.0 and row["repair_lag_s"] == 62.0
    first = node_row(NODE, views(0.0, 100, 100, 0), None)  # no rate before a second sample
    assert first["reads_per_s"] is None and first["read_p99_ms"] == 2.5
    down = node_row({**NODE, "status": "DOWN"}, None, None)
    assert down["reads_per_s"] is None and down["dropped"] is None


def test_short_numbers_stay_within_five_characters() -> None:
    assert [short(v) for v in (None, 0, 7, 2.5, 312, 1234, 45_600_000)] == [
        "-",
        "0",
        "7",
        "2.5",
        "312",
        "1.2k",
        "46M",
    ]
    assert short(999_999_999_999) == "1000G" and short(3 * 1024**3, "B") == "3.2GB"


def test_the_widest_rows_fit_80_columns() -> None:
    widest = {
        **NODE,
        "address": "255.255.255.255:65535",
        "reads_per_s": 987_654.0,
        "writes_per_s": 876_543.0,
        "read_p99_ms": 54_321.0,
        "write_p99_ms": 99_999.0,
        "hints_pending_bytes": 987 * 1024**3,
        "hints_oldest_age_s": 1.0,
        "dropped": 123_456_789,
        "digest_mismatch_pct": 100.0,
        "repair_lag_s": 8_640_000.0,
        "never_repaired_ranges": 0,
        "error": None,
    }
    down = {**widest, "status": "DOWN", "address": "10.0.0.2:7400", "reads_per_s": None}
    doc = {"time": 0.0, "interval_s": 2.0, "cluster": "production-east", "nodes": [widest, down]}
    console = Console(width=80, record=True, color_system=None)
    console.print(render(doc))
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    header = next(line for line in lines if line.startswith("Address"))
    assert header.split()[-2:] == ["Repair", "lag"]
    row = next(line for line in lines if line.startswith("255.255.255.255:65535"))
    assert row.split()[1:] == [
        "UN",
        "988k",
        "877k",
        "54k",
        "100k",
        "1.1TB",
        "123M",
        "100",
        "100.0d",
    ]
