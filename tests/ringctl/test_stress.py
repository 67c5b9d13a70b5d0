"""``ringctl stress``: real runs against real nodes (JSON summary, rate limit, Ctrl-C, CPU per
op), and the parts that need no process (key choice, rate limiter, pid lookup)."""

from __future__ import annotations

import collections
import math
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from cluster.kit import Ringctl, cluster_port
from nodes import Ringd, free_port, wait_for

from ringctl.stress import cpu
from ringctl.stress.stats import Stats, latency_ms
from ringctl.stress.workload import KeyChooser, RateLimiter, Workload


def stress(ringctl: Ringctl, *args: str) -> dict[str, Any]:
    summary: dict[str, Any] = ringctl.json("stress", *args, timeout=60)
    return summary


def assert_ordered(latency: dict[str, Any]) -> None:
    values = [latency[k] for k in ("p50", "p95", "p99", "p999", "max")]
    assert None not in values, latency
    assert values == sorted(values) and values[0] > 0, latency


def test_write_read_mixed_on_a_cluster(
    cluster_factory: Callable[..., list[Ringd]], tmp_path: Path
) -> None:
    nodes = cluster_factory(3)
    ringctl = Ringctl(tmp_path / "home")
    hosts = ",".join(n.address for n in nodes)
    common = ["-c", "16", "--host", hosts, "--keys", "2000"]

    wrote = stress(ringctl, "write", "-n", "2000", "--dist", "seq", *common)
    assert wrote["ops"] == 2000 and wrote["errors"] == 0 and wrote["errors_by_code"] == {}
    assert wrote["keyspace_created"] is True and wrote["connections"] == 3
    assert wrote["by_op"]["write"]["ops"] == 2000
    assert_ordered(wrote["latency_ms"])
    assert wrote["op_rate"] > 0 and wrote["elapsed_s"] > 0 and wrote["interrupted"] is False
    # every node's process is found by its listening socket: the CPU it spent is reported
    assert set(wrote["node_cpu_s"]) == {n.address for n in nodes}
    assert wrote["cluster_cpu_us_per_op"] is not None and wrote["cluster_cpu_us_per_op"] > 0
    assert wrote["client_cpu_us_per_op"] > 0
    with nodes[0].client() as db:
        ks = next(k for k in db.keyspace_list()["keyspaces"] if k["name"] == "stress")
        assert ks["replication"]["replication_factor"] == 3
        assert db.get("stress", "key1999", consistency="ALL") is not None

    read = stress(ringctl, "read", "-n", "2000", *common)
    assert read["ops"] == 2000 and read["errors"] == 0 and read["keyspace_created"] is False
    assert read["by_op"]["read"]["found"] == 2000  # every key was written by the seq run
    assert_ordered(read["latency_ms"])

    mixed = stress(ringctl, "mixed", "-n", "2000", "--read-ratio", "0.5", "--seed", "7", *common)
    assert mixed["ops"] == 2000 and mixed["errors"] == 0
    by_op = mixed["by_op"]
    assert by_op["read"]["ops"] + by_op["write"]["ops"] == 2000
    assert 600 < by_op["read"]["ops"] < 1400
    assert by_op["read"]["found"] == by_op["read"]["ops"]

    # --rate: starts are spaced 1/rate apart, so the count is bounded whatever the speed
    limited = stress(ringctl, "write", "--rate", "100", "--duration", "1s", *common)
    assert limited["errors"] == 0
    assert 0 < limited["ops"] <= 100 * 1 * 1.1 + 16

    # a write that cannot reach enough replicas is counted, not fatal
    nodes[2].kill()
    failed = stress(ringctl, "write", "-n", "50", "-w", "3", "--host", nodes[0].address)
    assert failed["ops"] == 50 and failed["errors"] == 50
    # UNAVAILABLE once node1 sees node3 down, WRITE_TIMEOUT before
    assert set(failed["errors_by_code"]) <= {"UNAVAILABLE", "WRITE_TIMEOUT"}


def test_human_output_and_ctrl_c(node: Ringd, tmp_path: Path) -> None:
    """Interval lines as they come; SIGINT prints the results so far and exits 130."""
    out = tmp_path / "stress.out"
    env = {**os.environ, "RINGCTL_HOME": str(tmp_path / "home"), "RINGCTL_HOST": node.address}
    argv = [sys.executable, "-m", "ringctl", "stress", "write", "--duration", "60s", "-c", "8"]
    argv += ["--interval", "0.2s", "--rf", "1"]
    with out.open("wb") as f:
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(lambda: len(out.read_text().splitlines()) >= 4, 30, "two interval lines")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = out.read_text().splitlines()
    assert lines[0].startswith("stress write against " + node.address)
    assert lines[1].split()[:3] == ["time", "s", "total"]
    assert "Results:  (interrupted)" in lines
    ops = next(line for line in lines if line.startswith("Total operation count"))
    assert int(ops.split(":")[1].replace(",", "")) > 0
    assert any(line.startswith("Cluster CPU per op") and "µs" in line for line in lines)


def test_unreachable_target_is_exit_4(tmp_path: Path) -> None:
    ringctl = Ringctl(tmp_path / "home")
    done = ringctl("stress", "write", "-n", "10", "--host", f"127.0.0.1:{free_port()}")
    assert done.returncode == 4
    assert done.stderr.startswith("ringctl: error: cannot connect") and done.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["blah"],
        ["write", "-n", "5", "--duration", "1s"],
        ["write", "--dist", "zipf", "--keys", "2000000"],
    ],
)
def test_bad_options_are_usage_errors(tmp_path: Path, args: list[str]) -> None:
    done = Ringctl(tmp_path / "home")("stress", *args, "--host", "127.0.0.1:1")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr


def test_local_cluster_pids_from_pid_files(tmp_path: Path) -> None:
    """No --host: every running node of the current local cluster is a target, and their pid
    files name the processes whose CPU is summed."""
    ringctl = Ringctl(tmp_path / "home")
    try:
        ringctl.ok("cluster", "start", "-n", "3", "--port", str(cluster_port(3)), "--json")
        summary = stress(ringctl, "write", "-n", "300", "-c", "8")
        assert summary["ops"] == 300 and summary["errors"] == 0
        assert len(summary["targets"]) == 3 and summary["connections"] == 3
        assert set(summary["node_cpu_s"]) == set(summary["targets"])
        assert summary["cluster_cpu_us_per_op"] > 0
    finally:
        ringctl.cleanup()


# ---- no processes ----------------------------------------------------------------------------


def test_zipf_prefers_low_ranks_and_stays_in_range() -> None:
    chooser = KeyChooser(Workload(keys=1000, dist="zipf", zipf_exponent=1.1, seed=1))
    counts = collections.Counter(chooser.next() for _ in range(20_000))
    assert min(counts) >= 0 and max(counts) < 1000
    assert counts[0] > counts[1] > counts[10] and counts[0] > 20_000 * 0.1


def test_seq_visits_every_key_in_turn() -> None:
    chooser = KeyChooser(Workload(keys=5, dist="seq"))
    assert [chooser.next() for _ in range(7)] == [0, 1, 2, 3, 4, 0, 1]


async def test_rate_limiter_spaces_starts(autojump_clock: trio.abc.Clock) -> None:
    limiter = RateLimiter(5)
    start = trio.current_time()
    for _ in range(11):
        await limiter.wait()
    assert math.isclose(trio.current_time() - start, 2.0)


def test_percentiles_come_from_the_histogram() -> None:
    stats = Stats()
    for ms in range(1, 101):
        stats.record("write", ms * 1000)
    stats.error("write", "UNAVAILABLE")
    interval, errors = stats.take_interval()
    lat = latency_ms(stats.total)
    assert errors == 1 and interval.count == 100 and stats.ops == 101
    assert lat["mean"] == 50.5  # exact: the sum of the values over their count
    assert lat["p50"] == pytest.approx(50, rel=0.01) and lat["max"] == pytest.approx(100, rel=0.01)
    assert lat["p99"] == pytest.approx(99, rel=0.01)
    assert latency_ms(Stats().total)["p50"] is None


def test_listener_pid_finds_the_listening_process() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        address = f"127.0.0.1:{s.getsockname()[1]}"
        assert cpu.listener_pid(address) == os.getpid()
        assert cpu.node_pids([address]) == {address: os.getpid()}
    # nothing listens there any more: the cluster's CPU is unknown rather than partial
    assert cpu.listener_pid(address) is None
    assert cpu.node_pids([address]) is None
    assert cpu.process_cpu_seconds(os.getpid()) is not None
