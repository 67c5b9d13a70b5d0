"""Pid-file supervision and the command line, without starting ringd: stale pid files, look-alike
processes, the current-cluster address, option checks and clean removal."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nodes import wait_for
from typer.testing import CliRunner

from ringctl.app import app
from ringctl.cluster import layout, manager
from ringctl.cluster.manager import PAUSED, RUNNING, STOPPED, ClusterError


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process that is not ringd."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _look_alike(data_dir: Path) -> subprocess.Popen[bytes]:
    """A process whose command line is that of the node's ringd (but sleeps)."""
    argv = [sys.executable, "-c", "import time; time.sleep(120)", "ringd.main"]
    return subprocess.Popen([*argv, "--data-dir", str(data_dir)])


def test_stale_pid_files_are_removed(home: Path, sleeper: subprocess.Popen[bytes]) -> None:
    spec = manager.create("c", "2", port=7611)
    node = spec.node(1)
    pid_file = spec.paths(node).pid

    pid_file.write_text("999999999\n")  # no such process
    assert manager.node_process(spec, node) == manager.NodeProcess(None, STOPPED)
    assert not pid_file.exists()

    pid_file.write_text(f"{sleeper.pid}\n")  # running, but not this node's ringd
    assert manager.node_process(spec, node, clean=False).state == STOPPED
    assert pid_file.exists()  # clean=False only looks
    assert manager.node_process(spec, node).state == STOPPED
    assert not pid_file.exists()

    pid_file.write_text("garbage")
    assert manager.node_process(spec, node).pid is None


def test_live_node_process_is_recognised_by_its_data_dir(home: Path) -> None:
    spec = manager.create("c", "10", port=7611)
    one, ten = spec.node(1), spec.node(10)
    proc = _look_alike(spec.paths(ten).data)
    try:
        spec.paths(ten).pid.write_text(f"{proc.pid}\n")
        spec.paths(one).pid.write_text(f"{proc.pid}\n")  # node1's path is a prefix of node10's
        assert manager.node_process(spec, ten) == manager.NodeProcess(proc.pid, RUNNING)
        assert manager.node_process(spec, one).state == STOPPED
        assert manager.current_cluster() == ("c", ten.address)

        os.kill(proc.pid, signal.SIGSTOP)
        wait_for(lambda: manager.node_process(spec, ten).state == PAUSED, 10, "SIGSTOP")
        assert manager.current_cluster() == ("c", None)  # a paused node is not live
        os.kill(proc.pid, signal.SIGCONT)

        results = manager.stop(spec, [10], timeout=10)
        assert results == [{"node": "node10", "pid": proc.pid, "result": "stopped"}]
        assert proc.wait(5) is not None
        assert not spec.paths(ten).pid.exists()
    finally:
        proc.kill()
        proc.wait()


def test_stop_escalates_to_sigkill(home: Path) -> None:
    spec = manager.create("c", "1", port=7611)
    data = spec.paths(1).data
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(120)"
    )
    argv = [sys.executable, "-c", code, "ringd.main", "--data-dir", str(data)]
    proc: subprocess.Popen[str] = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        spec.paths(1).pid.write_text(f"{proc.pid}\n")
        results = manager.stop(spec, timeout=0.5)
        assert results[0]["result"] == "killed"
        assert proc.wait(5) == -9
    finally:
        proc.kill()
        proc.wait()


def test_current_cluster_without_clusters(home: Path) -> None:
    assert manager.current_cluster() is None
    assert not home.exists()  # a read creates nothing
    manager.create("c", "3", port=7611)
    assert manager.current_cluster() == ("c", None)  # nothing running


def test_ensure_refuses_options_that_differ(home: Path) -> None:
    spec, created = manager.ensure("c", "2:1", port=7611)
    assert created and spec.counts == [2, 1]
    same, created = manager.ensure("c", "2:1")
    assert not created and same == spec
    with pytest.raises(ClusterError, match="differs") as err:
        manager.ensure("c", "3", port=7612)
    assert err.value.code == 2
    with pytest.raises(ClusterError, match="more than"):
        manager.ensure("d", "2", rf=3)
    assert not layout.exists("d")


def test_remove_leaves_no_files(home: Path) -> None:
    a = manager.create("a", "2", port=7611)
    b = manager.create("b", "1", port=7612)
    assert layout.read_current() == "b"
    manager.remove(b)
    assert layout.read_current() is None and layout.names() == ["a"]
    manager.switch("a")
    manager.remove(a)
    assert list(home.rglob("*")) == []


runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_cli_create_list_switch(home: Path) -> None:
    code, out = _run("cluster", "create", "--name", "one", "-n", "2:1", "--port", "7611")
    assert code == 0, out
    assert "127.0.0.3:7611" in out
    code, out = _run("cluster", "create", "--name", "two", "--single-address", "--port", "7620")
    assert code == 0, out
    code, out = _run("cluster", "list", "--json")
    clusters = {c["name"]: c for c in json.loads(out)["clusters"]}
    assert clusters["two"]["current"] and not clusters["one"]["current"]
    assert clusters["one"]["datacenters"] == [2, 1]
    assert _run("cluster", "switch", "one")[0] == 0
    assert layout.read_current() == "one"
    code, out = _run("cluster", "switch", "nope")
    assert code == 1 and "no cluster named 'nope'" in out


def test_cli_errors_have_exit_codes(home: Path) -> None:
    assert _run("cluster", "status")[0] == 1  # no current cluster
    assert _run("cluster", "create", "-n", "0")[0] == 2
    assert _run("cluster", "create", "--name", "a/b")[0] == 2
    assert _run("cluster", "create", "--conf", "listen=x")[0] == 2
    assert _run("cluster", "create", "--name", "x", "--port", "7611")[0] == 0
    assert _run("cluster", "create", "--name", "x")[0] == 2  # exists
    assert _run("cluster", "node", "4", "show")[0] == 1  # no such node
    code, out = _run("cluster", "node", "2", "pause")
    assert code == 4 and "not running" in out
    code, out = _run("cluster", "partition", "1", "2")
    assert code == 4 and "fault injection needs it running" in out
    code, out = _run("cluster", "node", "1", "clock-offset", "-500")
    assert code == 4, out  # a negative offset parses; the node is just not running
    code, out = _run("cluster", "status", "--json")
    nodes = json.loads(out)["nodes"]
    assert [(n["node"], n["process"], n["status"], n["pid"]) for n in nodes] == [
        ("node1", "stopped", "DOWN", None),
        ("node2", "stopped", "DOWN", None),
        ("node3", "stopped", "DOWN", None),
    ]


def test_start_refuses_an_address_in_use(home: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        code, out = _run("cluster", "start", "-n", "2", "--port", str(port))
    assert code == 5
    assert f"127.0.0.1:{port} (node1) is already in use;" in out
    assert manager.current_cluster() == ("local", None)  # nothing was started
