"""toppartitions, top, netstats' repair streams on participants, log levels and the log lines of
flush, compaction, hint delivery and repair, on real 3-node clusters (docs/metrics.md)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nodes import Ringd, create_keyspace, wait_for, wait_status

RF3 = {"class": "SimpleStrategy", "replication_factor": 3}
TOP_FIELDS = {
    "address",
    "host_id",
    "dc",
    "status",
    "state",
    "reads_per_s",
    "writes_per_s",
    "read_p99_ms",
    "write_p99_ms",
    "hints_pending_bytes",
    "hints_oldest_age_s",
    "dropped",
    "digest_mismatch_pct",
    "repair_lag_s",
    "never_repaired_ranges",
    "error",
}
STREAM_FIELDS = {
    "id",
    "keyspace",
    "ranges_validated",
    "rows_received",
    "bytes_received",
    "rows_sent",
    "bytes_sent",
}


def ringctl(
    node: Ringd, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ringctl", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "RINGCTL_HOST": node.address, **(env or {})},
        timeout=timeout,
        check=False,
    )


def ringctl_json(node: Ringd, *args: str) -> Any:
    out = ringctl(node, *args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def create(nodes: list[Ringd], name: str, **options: Any) -> None:
    create_keyspace(nodes, name, RF3, **options)


@pytest.fixture
def abc(cluster_factory: Callable[..., list[Ringd]]) -> list[Ringd]:
    nodes = cluster_factory(3, gossip_interval_ms=100)
    create(nodes, "users", hinted_handoff=False)
    return nodes


@contextlib.contextmanager
def load(node: Ringd, keyspace: str, keys: int = 20) -> Iterator[None]:
    """Writes and reads through ``node`` until the block ends."""
    stop = threading.Event()

    def run() -> None:
        with node.client() as db:
            i = 0
            while not stop.is_set():
                db.put(keyspace, f"l{i % keys}", {"n": i}, consistency="ALL")
                db.get(keyspace, f"l{i % keys}", consistency="ALL")
                i += 1

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(30)


def in_flight(node: Ringd) -> int:
    with node.client() as db:
        stages = db.admin("tpstats")["stages"]
    return int(next(s for s in stages if s["name"] == "RequestStage")["active"])


# -- toppartitions ---------------------------------------------------------------------------


def test_toppartitions_finds_the_hottest_keys(abc: list[Ringd]) -> None:
    a, b, _ = abc
    proc = subprocess.Popen(
        # a window long enough for the 52 requests below on a loaded host
        [sys.executable, "-m", "ringctl", "toppartitions", "users", "8s", "-k", "3", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RINGCTL_HOST": b.address},
    )
    try:
        wait_for(lambda: in_flight(b) >= 1, 10, "the sampling to start on B")
        with a.client() as db:  # coordinated by A: B samples what its replica serves
            for i in range(30):
                db.put("users", "hot", {"n": i}, consistency="ALL")
            for i in range(10):
                db.put("users", f"cold{i}", {"n": i}, consistency="ALL")
            for _ in range(12):
                db.get("users", "warm", consistency="ALL")
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    r = json.loads(out)
    assert (r["keyspace"], r["duration_ms"], r["capacity"]) == ("users", 8000, 256)
    writes, reads = r["writes"], r["reads"]
    assert writes["sampled"] >= 40 and writes["tracked"] == 11
    assert len(writes["top"]) == 3
    assert writes["top"][0] == {"key": "hot", "count": 30, "error": 0}
    assert reads["top"][0]["key"] == "warm" and reads["top"][0]["count"] >= 12
    # the sampling ended: nothing is offered any more (a new, short one sees nothing old)
    again = ringctl_json(b, "toppartitions", "users", "100")
    assert again["writes"]["sampled"] == 0 and again["duration_ms"] == 100


def test_toppartitions_text_and_bad_input(abc: list[Ringd]) -> None:
    a = abc[0]
    with a.client() as db:
        db.put("users", "k", {"n": 1})
    text = ringctl(a, "toppartitions", "users", "300ms", env={"COLUMNS": "80"})
    assert text.returncode == 0, text.stderr
    assert "WRITES Sampler" in text.stdout and "READS Sampler" in text.stdout
    for args, needle in (
        (["nosuch", "1s"], "does not exist"),
        (["users", "soon"], "not a duration"),
        (["users", "11m"], "10 minutes"),
        (["users", "1s", "-s", "4", "-k", "5"], "must not exceed"),
    ):
        out = ringctl(a, "toppartitions", *args)
        assert out.returncode == 2, out
        assert needle in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


# -- top ---------------------------------------------------------------------------------------


def test_top_json_one_document_per_interval(abc: list[Ringd]) -> None:
    a, b, c = abc
    with load(a, "users"):
        out = ringctl(a, "top", "--json", "--count", "2", "--interval", "0.5")
    assert out.returncode == 0, out.stderr
    docs = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(docs) == 2
    for doc in docs:
        assert set(doc) == {"time", "interval_s", "cluster", "nodes"}
        assert sorted(n["address"] for n in doc["nodes"]) == sorted(x.address for x in abc)
        for n in doc["nodes"]:
            assert set(n) == TOP_FIELDS
            assert n["status"] == "UP" and n["error"] is None
            assert n["dropped"] == 0 and n["hints_pending_bytes"] == 0
            assert n["never_repaired_ranges"] > 0 and n["repair_lag_s"] is None
            assert 0 <= n["digest_mismatch_pct"] <= 100
    coordinator = next(n for n in docs[-1]["nodes"] if n["address"] == a.address)
    assert coordinator["writes_per_s"] > 0 and coordinator["reads_per_s"] > 0
    assert coordinator["write_p99_ms"] > 0
    # a node that goes down is shown down, the others still answer
    c.stop()
    wait_status(a, c.address, "DOWN")
    doc = json.loads(ringctl(a, "top", "--json", "--count", "1", "--interval", "0.2").stdout)
    down = next(n for n in doc["nodes"] if n["address"] == c.address)
    assert down["status"] == "DOWN" and down["reads_per_s"] is None
    assert next(n for n in doc["nodes"] if n["address"] == b.address)["status"] == "UP"


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_top_renders_in_place_in_an_80_column_tmux_pane(abc: list[Ringd], tmp_path: Path) -> None:
    a = abc[0]
    server = f"ringd-top-{os.getpid()}"
    env = " ".join(
        f"{k}={v}"
        for k, v in (
            ("RINGCTL_HOST", a.address),
            ("RINGCTL_HOME", os.environ["RINGCTL_HOME"]),
            ("PATH", os.environ["PATH"]),
            ("TERM", "xterm-256color"),
        )
    )
    done = tmp_path / "done"
    command = (
        f"env {env} {sys.executable} -m ringctl top --count 4 --interval 0.3; "
        f"touch {done}; sleep 120"
    )
    tmux = ["tmux", "-L", server, "-f", "/dev/null"]
    subprocess.run(
        [*tmux, "new-session", "-d", "-x", "80", "-y", "24", "-s", "top", command], check=True
    )
    try:
        wait_for(done.exists, 30, "ringctl top to finish in tmux")
        pane = subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", "top"], capture_output=True, text=True, check=True
        ).stdout
        width = subprocess.run(
            [*tmux, "display", "-p", "-t", "top", "#{pane_width}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    finally:
        subprocess.run([*tmux, "kill-server"], check=False)
    assert width == "80"
    lines = pane.splitlines()
    header = [line for line in lines if line.startswith("Address")]
    # refreshed in place: one heading and one table after four refreshes
    assert len(header) == 1, pane
    assert header[0].split() == [
        "Address",
        "St",
        "Rd/s",
        "Wr/s",
        "Rd",
        "p99",
        "Wr",
        "p99",
        "Hints",
        "Drop",
        "Mism%",
        "Repair",
        "lag",
    ], pane
    assert sum(1 for line in lines if line.startswith("ringctl top")) == 1, pane
    for n in abc:
        row = next(line for line in lines if line.startswith(n.address))
        assert row.split()[1] == "UN" and row.rstrip().endswith("never"), pane
    assert all(len(line) <= 80 for line in lines)


# -- netstats: repair streams on a participant -----------------------------------------------


def test_netstats_shows_a_repair_streaming_into_a_participant(abc: list[Ringd]) -> None:
    a, _, c = abc
    with a.client() as db:
        db.admin("test_filter", action="drop", to=[c.address], verbs=["mutate"])
        for i in range(50):
            db.put("users", f"r{i}", {"n": i}, w=2)
        db.admin("test_filter", action="clear")
        # C lets go of the session only when A's release arrives: hold it back
        db.admin(
            "test_filter", action="delay", to=[c.address], verbs=["repair_release"], delay_ms=6000
        )
        session = db.admin("repair_start", keyspace="users")

    def streamed_in() -> dict[str, Any] | None:
        streams = ringctl_json(c, "netstats")["repair_incoming"]
        return next((s for s in streams if s["rows_received"] >= 50), None)

    wait_for(lambda: streamed_in() is not None, 60, "C to show the rows it received")
    s = streamed_in()
    assert s is not None and set(s) == STREAM_FIELDS
    assert s["id"] == session["id"] and s["keyspace"] == "users"
    assert s["rows_received"] == 50 and s["bytes_received"] > 50 * 10
    assert s["ranges_validated"] >= 1
    text = ringctl(c, "netstats", env={"COLUMNS": "80"}).stdout
    assert "Repair streams here" in text and session["id"] in text
    assert max(len(line) for line in text.splitlines()) <= 80, text
    # once released, the session is gone from C and C logged it
    wait_for(lambda: not ringctl_json(c, "netstats")["repair_incoming"], 30, "the release")
    wait_for(
        lambda: f"repair session {session['id']} ended on this replica: users" in c.log(),
        10,
        "C's log line for the session",
    )
    line = next(x for x in c.log().splitlines() if "ended on this replica" in x)
    assert "50 rows" in line and " s" in line


# -- log levels and log lines ------------------------------------------------------------------


ADMIN = {"user": "admin", "password": "admin-secret"}
VIEWER = {"user": "viewer", "password": "viewer-secret"}


def test_logging_levels_are_set_by_admins_only(
    ringd_factory: Callable[..., Ringd], tmp_path: Path
) -> None:
    pw = tmp_path / "admin.password"
    pw.write_text(ADMIN["password"] + "\n")
    node = ringd_factory(authenticator="password", initial_admin_password_file=pw, wait=False)

    def up() -> bool:
        with node.client(timeout=2, credentials=ADMIN) as db:
            return bool(db.ping())

    wait_for(up, 20, "the node to serve its admin")
    with node.client(credentials=ADMIN) as db:
        db.admin("role_create", name="viewer", kind="readonly", password=VIEWER["password"])
    files = {}
    for who in (ADMIN, VIEWER):
        path = tmp_path / f"{who['user']}.pw"
        path.write_text(who["password"])
        path.chmod(0o600)
        files[who["user"]] = {"RINGCTL_USER": who["user"], "RINGCTL_PASSWORD_FILE": str(path)}

    out = ringctl(node, "setlogginglevel", "ringd.db.engine", "debug", "--json", env=files["admin"])
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "name": "ringd.db.engine",
        "level": "DEBUG",
        "effective": "DEBUG",
    }
    out = ringctl(node, "getlogginglevels", "--json", env=files["viewer"])
    assert out.returncode == 0, out.stderr
    levels = {lg["name"]: lg for lg in json.loads(out.stdout)["loggers"]}
    assert levels["root"]["level"] == "INFO"
    assert levels["ringd.db.engine"] == {
        "name": "ringd.db.engine",
        "level": "DEBUG",
        "effective": "DEBUG",
    }
    assert "ringd.hints.service" not in levels  # no level of its own
    every = json.loads(
        ringctl(node, "getlogginglevels", "--all", "--json", env=files["viewer"]).stdout
    )
    assert {"name": "ringd.hints.service", "level": "NOTSET", "effective": "INFO"} in every[
        "loggers"
    ]
    # a readonly role may look but not change
    out = ringctl(node, "setlogginglevel", "WARNING", env=files["viewer"])
    assert out.returncode == 4 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    # root (the default logger), then back; bad names and levels are usage errors
    out = ringctl(node, "setlogginglevel", "warning", "--json", env=files["admin"])
    assert json.loads(out.stdout)["name"] == "root"
    assert "log level of root set to WARNING by admin" in node.log()
    for args, needle in (
        (["no.such.logger", "INFO"], "has no logger"),
        (["LOUD"], "level must be one of"),
        (["root", "NOTSET"], "level must be one of"),
        (["a", "b", "c"], "[LOGGER] LEVEL"),
    ):
        out = ringctl(node, "setlogginglevel", *args, env=files["admin"])
        assert out.returncode == 2 and needle in out.stderr, (args, out.stderr)
    text = ringctl(node, "getlogginglevels", env={**files["admin"], "COLUMNS": "80"}).stdout
    assert text.splitlines()[0].split() == ["Logger", "Level", "Effective"]
    assert ["ringd.db.engine", "DEBUG", "DEBUG"] in [line.split() for line in text.splitlines()]


def test_flush_compaction_and_hint_delivery_each_log_a_line(
    cluster_factory: Callable[..., list[Ringd]],
) -> None:
    nodes = cluster_factory(3, gossip_interval_ms=100)
    a, _, c = nodes
    create(nodes, "logged")
    with a.client() as db:
        for round_ in range(2):
            db.put("logged", f"f{round_}", {"n": round_}, consistency="ALL")
            db.admin("flush", keyspace="logged")
        db.admin("compact", keyspace="logged")
    log = a.log()
    assert "flushed keyspace logged: 1 rows" in log
    compacted = next(x for x in log.splitlines() if "compacted keyspace logged (major)" in x)
    assert "2 sstables" in compacted and compacted.endswith(" ms")

    c.stop()
    wait_status(a, c.address, "DOWN")
    with a.client() as db:
        for i in range(5):
            db.put("logged", f"h{i}", {"n": i}, w=2)
    c.start()
    wait_for(lambda: "hint delivery to " + c.address in a.log(), 60, "A to replay C's hints")
    line = next(x for x in a.log().splitlines() if "hint delivery to " + c.address in x)
    assert "finished: 5 rows" in line and line.endswith(" ms"), line
