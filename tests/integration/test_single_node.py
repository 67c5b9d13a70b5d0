"""One real ringd process, driven through ringctl and the client library (issue: foundation)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from nodes import Ringd, wait_for

from ringctl.client import Client


def ringctl(
    node: Ringd | None, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RINGCTL_HOME": os.environ.get("RINGCTL_HOME", "/nonexistent-ringctl-home"),
    }
    if node is not None:
        env["RINGCTL_HOST"] = node.address
    return subprocess.run(
        [sys.executable, "-m", "ringctl", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        timeout=60,
    )


def test_put_get_delete_through_ringctl(node: Ringd) -> None:
    put = ringctl(node, "put", "demo", "k1", '{"name":"Alice"}')
    assert put.returncode == 0, put.stderr
    got = ringctl(node, "get", "demo", "k1", "--json")
    assert got.returncode == 0, got.stderr
    row = json.loads(got.stdout)
    assert row["key"] == "k1" and row["columns"] == {"name": "Alice"}

    # a later write of another column leaves both
    assert ringctl(node, "put", "demo", "k1", '{"email":"alice@example.com"}').returncode == 0
    row = json.loads(ringctl(node, "get", "demo", "k1", "--json").stdout)
    assert row["columns"] == {"name": "Alice", "email": "alice@example.com"}

    deleted = ringctl(node, "delete", "demo", "k1")
    assert deleted.returncode == 0, deleted.stderr
    missing = ringctl(node, "get", "demo", "k1")
    assert missing.returncode == 1
    assert "not found" in missing.stderr
    assert ringctl(node, "get", "demo", "k1", "--json").stdout.strip() == "null"


def test_non_object_and_non_json_values_write_the_value_column(node: Ringd) -> None:
    assert ringctl(node, "put", "demo", "n", "42").returncode == 0
    assert ringctl(node, "put", "demo", "t", "plain text").returncode == 0
    with node.client() as db:
        assert db.get("demo", "n")["columns"] == {"value": 42}
        assert db.get("demo", "t")["columns"] == {"value": "plain text"}


def test_older_client_timestamp_does_not_overwrite_newer(node: Ringd) -> None:
    with node.client() as db:
        db.put("demo", "k", {"v": "new"}, timestamp=2_000_000)
        db.put("demo", "k", {"v": "old"}, timestamp=1_000_000)
        assert db.get("demo", "k")["columns"] == {"v": "new"}
        # an older delete does not remove it either
        db.delete("demo", "k", timestamp=1_500_000)
        assert db.get("demo", "k")["columns"] == {"v": "new"}
        db.delete("demo", "k", timestamp=3_000_000)
        assert db.get("demo", "k") is None


def test_column_delete_and_ttl(node: Ringd) -> None:
    with node.client() as db:
        db.put("demo", "r", {"a": 1, "b": 2})
        db.delete("demo", "r", ["a"])
        assert db.get("demo", "r")["columns"] == {"b": 2}
        db.put("demo", "short", {"v": 1}, ttl=1)
        assert db.get("demo", "short")["columns"] == {"v": 1}
        wait_for(lambda: db.get("demo", "short") is None, 10, "the TTL cell to expire")


def test_missing_keyspace_says_how_to_create_it(ringd_factory: Callable[..., Ringd]) -> None:
    n = ringd_factory()
    result = ringctl(n, "put", "nope", "k", "1")
    assert result.returncode == 2
    assert "ringctl keyspace create nope" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_keyspace_create_list_drop(ringd_factory: Callable[..., Ringd]) -> None:
    n = ringd_factory()
    assert ringctl(n, "keyspace", "create", "ks1", "--gc-grace", "60").returncode == 0
    again = ringctl(n, "keyspace", "create", "ks1")
    assert again.returncode == 2 and "already exists" in again.stderr
    listed = json.loads(ringctl(n, "keyspace", "list", "--json").stdout)
    assert [k["name"] for k in listed["keyspaces"]] == ["ks1"]
    assert listed["keyspaces"][0]["gc_grace_seconds"] == 60
    assert ringctl(n, "keyspace", "drop", "ks1").returncode == 0
    assert json.loads(ringctl(n, "keyspace", "list", "--json").stdout)["keyspaces"] == []


def test_acknowledged_write_survives_kill_9(ringd_factory: Callable[..., Ringd]) -> None:
    n = ringd_factory()
    with n.client() as db:
        db.keyspace_create("demo")
        for i in range(50):
            db.put("demo", f"k{i}", {"i": i})
    n.kill()  # SIGKILL right after the acknowledgements
    n.start()
    with n.client() as db:
        for i in range(50):
            assert db.get("demo", f"k{i}")["columns"] == {"i": i}


def test_load_and_dump_round_trip(node: Ringd, tmp_path: Path) -> None:
    lines = [
        json.dumps({"key": f"user:{i}", "value": {"n": i, "s": "x" * (i % 5)}}) for i in range(300)
    ]
    lines.append(json.dumps({"key": "scalar", "value": 7}))
    loaded = ringctl(node, "load", "demo", "-", "--json", stdin="\n".join(lines) + "\n")
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout)["written"] == 301
    dumped = ringctl(node, "dump", "demo")
    assert dumped.returncode == 0, dumped.stderr
    rows = [json.loads(line) for line in dumped.stdout.splitlines()]
    assert len(rows) == 301
    by_key = {r["key"]: r["value"] for r in rows}
    assert by_key["user:7"] == {"n": 7, "s": "xx"}
    assert by_key["scalar"] == {"value": 7}
    # dump output loads back into another keyspace unchanged
    assert ringctl(node, "keyspace", "create", "copy").returncode == 0
    assert ringctl(node, "load", "copy", "-", stdin=dumped.stdout).returncode == 0
    assert ringctl(node, "dump", "copy").stdout == dumped.stdout


def test_load_reports_bad_lines(node: Ringd) -> None:
    result = ringctl(
        node, "load", "demo", "-", "--json", stdin='{"key":"a","value":1}\nnot json\n{"x":1}\n'
    )
    assert result.returncode == 1
    assert json.loads(result.stdout) == {
        "keyspace": "demo",
        "written": 1,
        "failed": 0,
        "skipped": 2,
    }
    assert "line 2" in result.stderr


def test_sigterm_drains_and_exits_zero(ringd_factory: Callable[..., Ringd]) -> None:
    n = ringd_factory()
    with n.client() as db:
        db.keyspace_create("demo")
        db.put("demo", "k", {"v": 1})
    assert n.stop() == 0
    n.start()
    with n.client() as db:
        assert db.get("demo", "k")["columns"] == {"v": 1}


def test_refuses_a_data_dir_held_by_another_node(
    ringd_factory: Callable[..., Ringd], tmp_path: Path
) -> None:
    first = ringd_factory()
    second = Ringd(first.data_dir)
    result = subprocess.run(second.argv(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "in use by another running ringd" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--commitlog-sync", "sometimes"], "commitlog-sync"),
        (["--num-tokens", "zero"], "num-tokens"),
        (["--listen", "nowhere"], "listen"),
    ],
)
def test_refuses_bad_configuration(tmp_path: Path, flags: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ringd.main", "--data-dir", str(tmp_path / "d"), *flags],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_config_file_keys_mirror_flags_and_flags_win(
    tmp_path: Path, ringd_factory: Callable[..., Ringd]
) -> None:
    config = tmp_path / "ringd.toml"
    config.write_text('cluster_name = "from-file"\nnum_tokens = 4\n')
    n = ringd_factory(config=str(config), cluster_name="from-flag")
    with n.client() as db:
        info = db.admin("info")
    assert info["cluster"] == "from-flag"
    assert info["tokens"] == 4


def test_client_reuses_one_connection(node: Ringd) -> None:
    with Client(node.address) as db:
        # the fixture's connection may still be closing on the node's side
        wait_for(lambda: db.admin("info")["connections"] == 1, 10, "only this connection open")
        for i in range(20):
            db.put("demo", f"c{i}", {"i": i})
        assert db.admin("info")["connections"] == 1


def test_unreachable_node_exits_4() -> None:
    result = ringctl(None, "--help")
    assert result.returncode == 0
    result = subprocess.run(
        [sys.executable, "-m", "ringctl", "ping", "--host", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 4
    assert "cannot connect" in result.stderr


def test_drain_finishes_requests_in_flight(ringd_factory: Callable[..., Ringd]) -> None:
    n = ringd_factory(commitlog_sync="batch")
    with n.client() as db:
        db.keyspace_create("demo")
    import threading

    done: list[int] = []

    def writer() -> None:
        with n.client() as db:
            try:
                for i in range(100_000):
                    db.put("demo", f"w{i}", {"i": i})
                    done.append(i)
            except Exception:
                pass

    t = threading.Thread(target=writer)
    t.start()
    wait_for(lambda: len(done) > 20, 20, "writes to flow")
    assert n.proc is not None
    n.proc.send_signal(signal.SIGTERM)
    assert n.proc.wait(30) == 0
    t.join(30)
    n.start()
    with n.client() as db:
        for i in done:
            assert db.get("demo", f"w{i}") is not None, f"acknowledged write w{i} lost"
