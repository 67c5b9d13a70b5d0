"""Every ringctl command against a real node: exit 0, and with --json exactly one JSON document."""

from __future__ import annotations

import json

import pytest
from nodes import Ringd
from typer.testing import CliRunner

from ringctl.app import app

COMMANDS = [
    ["status"],
    ["status", "demo"],
    ["info"],
    ["ring"],
    ["describecluster"],
    ["describering", "demo"],
    ["getendpoints", "demo", "k1"],
    ["gossipinfo"],
    ["proxyhistograms"],
    ["tpstats"],
    ["tablehistograms", "demo"],
    ["netstats"],
    ["toppartitions", "demo", "50ms"],
    ["top", "--count", "1", "--interval", "0.2"],
    ["getlogginglevels"],
    ["setlogginglevel", "ringd.db.engine", "INFO"],
    ["flush"],
    ["flush", "demo"],
    ["compact", "demo"],
    ["compactionstats"],
    ["tablestats"],
    ["tablestats", "demo"],
    ["verify"],
    ["ping"],
    ["version"],
    ["keyspace", "list"],
    ["get", "demo", "k1"],
]


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory):
    node = Ringd(tmp_path_factory.mktemp("cmd") / "node1").start()
    try:
        with node.client() as db:
            db.keyspace_create("demo")
            for i in range(50):
                db.put("demo", f"k{i}", {"n": i})
        yield node
    finally:
        node.kill()


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
def test_command_prints_for_people_and_json_for_scripts(populated: Ringd, args: list[str]) -> None:
    runner = CliRunner()
    env = {"RINGCTL_HOST": populated.address}
    human = runner.invoke(app, args, env=env)
    assert human.exit_code == 0, human.output
    assert human.output.strip()
    as_json = runner.invoke(app, [*args, "--json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    json.loads(as_json.stdout)  # exactly one document


def test_tablestats_counts_flushed_rows(populated: Ringd) -> None:
    runner = CliRunner()
    env = {"RINGCTL_HOST": populated.address}
    assert runner.invoke(app, ["flush", "demo"], env=env).exit_code == 0
    stats = json.loads(runner.invoke(app, ["tablestats", "demo", "--json"], env=env).stdout)
    demo = stats["keyspaces"]["demo"]
    assert demo["sstable_count"] >= 1
    assert demo["live_cells"] == 50
    assert demo["bytes_on_disk"] > 0


def test_usage_errors_exit_2(populated: Ringd) -> None:
    runner = CliRunner()
    env = {"RINGCTL_HOST": populated.address}
    assert runner.invoke(app, ["put", "demo"], env=env).exit_code == 2
    assert (
        runner.invoke(
            app, ["keyspace", "create", "x", "--rf", "1", "--replication", "dc1:1"], env=env
        ).exit_code
        == 2
    )
    bad = runner.invoke(app, ["get", "demo", "k1", "-c", "SOMETIMES"], env=env)
    assert bad.exit_code == 2
    assert "SOMETIMES" in bad.output


def test_tablestats_counts_cells_still_in_the_memtable(node: Ringd) -> None:
    with node.client() as db:
        for i in range(5):
            db.put("demo", f"m{i}", {"a": i, "b": i})
        db.delete("demo", "m0", ["b"])
        db.delete("demo", "m1")
    env = {"RINGCTL_HOST": node.address}
    stats = json.loads(CliRunner().invoke(app, ["tablestats", "demo", "--json"], env=env).stdout)
    demo = stats["keyspaces"]["demo"]
    assert demo["sstable_count"] == 0
    assert (demo["live_cells"], demo["tombstone_cells"]) == (9, 2)


def test_keyspace_list_names_prints_one_name_a_line(populated: Ringd) -> None:
    runner = CliRunner()
    env = {"RINGCTL_HOST": populated.address}
    names = runner.invoke(app, ["keyspace", "list", "--names"], env=env)
    assert (names.exit_code, names.stdout) == (0, "demo\n")
    both = runner.invoke(app, ["keyspace", "list", "--names", "--json"], env=env)
    assert both.exit_code == 2
    assert both.output == "ringctl: error: give either --json or --names, not both\n"


def test_keyspace_read_repair_option(node: Ringd) -> None:
    runner = CliRunner()
    env = {"RINGCTL_HOST": node.address}

    def mode(name: str) -> str:
        listed = json.loads(runner.invoke(app, ["keyspace", "list", "--json"], env=env).stdout)
        return next(k["read_repair"] for k in listed["keyspaces"] if k["name"] == name)

    made = runner.invoke(app, ["keyspace", "create", "rr", "--read-repair", "none"], env=env)
    assert made.exit_code == 0, made.output
    assert mode("rr") == "NONE"
    changed = runner.invoke(app, ["keyspace", "alter", "rr", "--read-repair", "BLOCKING"], env=env)
    assert changed.exit_code == 0, changed.output
    assert mode("rr") == "BLOCKING"
    bad = runner.invoke(app, ["keyspace", "alter", "rr", "--read-repair", "sometimes"], env=env)
    assert bad.exit_code == 2 and "sometimes" in bad.output
    assert mode("rr") == "BLOCKING"
