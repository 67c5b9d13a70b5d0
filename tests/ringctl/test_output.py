"""What ringctl prints is data: no rich markup is interpreted in keys, values or filter rules;
tokens are strings in every --json document; gossipinfo is a table; the commands without
--json are exactly the ones the README names."""

from __future__ import annotations

import json
from pathlib import Path

from nodes import Ringd
from typer.testing import CliRunner

from ringctl import output
from ringctl.app import app
from ringctl.commands import cluster
from ringctl.docgen import Command, command_tree

README = Path(__file__).resolve().parents[2] / "README.md"


def _run(node: Ringd, *args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, list(args), env={"RINGCTL_HOST": node.address})
    return done.exit_code, done.stdout


def test_keys_and_values_print_literally(node: Ringd) -> None:
    code, _ = _run(node, "put", "demo", "[bold]x", '{"[i]note": "see [docs] and [/]"}')
    assert code == 0
    code, out = _run(node, "get", "demo", "[bold]x")
    assert code == 0
    assert "demo/[bold]x" in out and "[i]note" in out and "see [docs] and [/]" in out


def test_status_prints_node_data_literally(ringd_factory) -> None:  # type: ignore[no-untyped-def]
    n = ringd_factory(dc="[red]dc", rack="[b]r1")
    code, out = _run(n, "status")
    assert code == 0
    assert "Datacenter: [red]dc" in out and "[b]r1" in out


def test_filter_rules_print_literally() -> None:
    items = [
        {
            "node": "node1",
            "address": "127.0.0.1:1",
            "sent": 3,
            "dropped": 1,
            "delayed": 0,
            "rules": [{"action": "drop", "to": "127.0.0.2:1", "verbs": ["mutate"], "matched": 1}],
        }
    ]
    with output.console.capture() as captured:
        cluster._render_filters(items)
    assert "drop 127.0.0.2:1 [mutate] (1)" in captured.get()


def _is_token_text(value: object) -> bool:
    return isinstance(value, str) and str(int(value)) == value


def test_tokens_are_strings_in_json(node: Ringd) -> None:
    ring = json.loads(_run(node, "ring", "--json")[1])
    assert ring["tokens"] and all(_is_token_text(t["token"]) for t in ring["tokens"])
    ranges = json.loads(_run(node, "describering", "demo", "--json")[1])["ranges"]
    assert all(_is_token_text(r["start_token"]) and _is_token_text(r["end_token"]) for r in ranges)
    assert _is_token_text(json.loads(_run(node, "getendpoints", "demo", "k", "--json")[1])["token"])
    gossip = json.loads(_run(node, "gossipinfo", "--json")[1])
    for ep in gossip.values():
        assert ep["states"]["TOKENS"]["value"]
        assert all(_is_token_text(t) for t in ep["states"]["TOKENS"]["value"])
    status = json.loads(_run(node, "status", "--json")[1])
    assert status["nodes"][0]["tokens"] == 16  # a count, not a token


def test_gossipinfo_is_a_table(node: Ringd) -> None:
    code, out = _run(node, "gossipinfo")
    assert code == 0
    assert "Address" in out and "Heartbeat" in out and node.address in out
    assert "{'value'" not in out and "'version'" not in out


def _leaves(cmd: Command) -> list[Command]:
    if not cmd.subcommands:
        return [cmd]
    return [leaf for sub in cmd.subcommands for leaf in _leaves(sub)]


def test_every_command_has_json_but_those_the_readme_names() -> None:
    without = sorted(
        " ".join(cmd.path)
        for cmd in _leaves(command_tree())
        if not any("--json" in p.opts for p in cmd.params)
    )
    assert without == ["cluster logs", "cluster node logs", "dump"]
    readme = README.read_text()
    assert "except `dump`" in readme and "`cluster logs`" in readme
    assert "`cluster node N logs`" in readme
