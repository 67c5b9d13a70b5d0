"""Usable on an 80-column terminal: tables keep host ids, addresses and keyspace names whole
and no line is wider than the terminal; help keeps option names whole."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from nodes import Ringd
from rich.console import Console

from ringctl.commands.admin import render_status
from ringctl.commands.keyspace import render_keyspaces


def _render(fn, data) -> list[str]:  # type: ignore[no-untyped-def]
    console = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    fn(data, console)
    console.file.close()
    lines = console.export_text().splitlines()
    too_wide = [line for line in lines if len(line) > 80]
    assert not too_wide, too_wide
    return lines


def _status_node(i: int, dc: str, rack: str) -> dict[str, object]:
    return {
        "address": f"127.0.0.{100 + i}:65535",
        "dc": dc,
        "rack": rack,
        "host_id": str(uuid.uuid4()),
        "status": "UP" if i % 2 else "DOWN",
        "state": "NORMAL",
        "load": 987_654_321_098 * i,
        "tokens": 256,
        "owns": 1 / 3,
    }


def test_status_keeps_every_address_and_host_id_whole_in_80_columns(node: Ringd) -> None:
    with node.client() as db:
        real = db.admin("status", keyspace="demo")
    nodes = [
        *real["nodes"],
        _status_node(1, "datacenter_one", "rack_a"),
        _status_node(2, "datacenter_one", "rack_b"),
        _status_node(3, "dc2", "rack_a"),
    ]
    lines = _render(render_status, {**real, "nodes": nodes})
    for n in nodes:
        row = [line for line in lines if n["host_id"] in line]
        assert len(row) == 1 and n["address"] in row[0], (n, lines)
        assert f"rack: {n['rack']}" in "\n".join(lines)


def test_keyspace_list_keeps_names_whole_and_folds_the_replication() -> None:
    long_name = "customer_events_by_day_archive"
    keyspaces = [
        {
            "name": long_name,
            "replication": {
                "class": "NetworkTopologyStrategy",
                **{f"datacenter_{i}": 3 for i in range(6)},
            },
            "gc_grace_seconds": 864000,
            "default_ttl": 630720000,
            "hinted_handoff": True,
            "sloppy_quorum": False,
        },
        {
            "name": "demo",
            "replication": {"class": "SimpleStrategy", "replication_factor": 3},
            "gc_grace_seconds": 0,
            "default_ttl": 0,
            "hinted_handoff": False,
            "sloppy_quorum": True,
        },
    ]
    lines = _render(render_keyspaces, {"keyspaces": keyspaces})
    text = "\n".join(lines)
    assert any(long_name in line for line in lines)
    assert "Simple rf=3" in text
    for i in range(6):  # every factor is shown, none cut off
        assert f"datacenter_{i}=3" in text


@pytest.mark.parametrize(
    "command",
    [["keyspace", "create"], ["cluster", "start"], ["cluster", "status"], ["put"], ["get"]],
    ids=" ".join,
)
def test_help_fits_80_columns_with_option_names_whole(command: list[str], tmp_path: Path) -> None:
    from ringctl import docgen

    env = {**os.environ, "COLUMNS": "80", "RINGCTL_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "ringctl", *command, "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert "…" not in done.stdout
    for marker in ("<str>", "<bool>", "<int", "{"):
        assert marker not in done.stdout.split("Options:")[1] if marker != "{" else True
    assert "{" not in lines[0], lines[0]  # usage names arguments KEYSPACE, not {keyspace}
    tree = docgen.command_tree()
    cmd = next(c for c in tree.walk() if c.path == tuple(command))
    words = set(done.stdout.replace(",", " ").replace("/", " ").split())
    for param in cmd.options:
        for opt in param.all_opts:
            assert opt in words, f"{opt} is not shown whole in:\n{done.stdout}"
