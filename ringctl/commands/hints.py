"""Hinted handoff, as nodetool's: statushandoff, enable/disable, pause/resume, hints per host.

Like nodetool's, these settings are per node (the target node only) and last until it restarts;
set them on every node to change the whole cluster, and in the configuration to keep them.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from ringctl import output, target
from ringctl.options import Host, Json, Timeout
from ringd.words import plural

PER_NODE = " Applies to the target node only, until it restarts."


def _call(host: str | None, timeout: float | None, op: str, **args: Any) -> Any:
    with output.errors(), target.client(host, timeout) as db:
        return db.admin(op, timeout=timeout, **args)


def _say_status(r: dict[str, Any]) -> None:
    output.say("Hinted handoff is running" if r["running"] else "Hinted handoff is not running")
    if r.get("paused"):
        output.say("Hint delivery is paused")
    if r.get("disabled_dcs"):
        output.say(f"Data center(s) disabled: {', '.join(r['disabled_dcs'])}")


def statushandoff(host: Host = None, timeout: Timeout = None, as_json: Json = False) -> None:
    """Whether the node keeps hints, whether delivery is paused, and disabled datacenters."""
    output.emit(_call(host, timeout, "hints_status"), as_json, _say_status)


def _setter(name: str, doc: str, **change: Any) -> Any:
    """A command that applies one fixed change with ``hints_set`` and prints the status."""

    def command(host: Host = None, timeout: Timeout = None, as_json: Json = False) -> None:
        output.emit(_call(host, timeout, "hints_set", **change), as_json, _say_status)

    command.__name__ = name
    command.__doc__ = doc + PER_NODE
    return command


enablehandoff = _setter("enablehandoff", "Keep hints for replicas that miss writes.", enabled=True)
disablehandoff = _setter(
    "disablehandoff", "Stop keeping new hints (stored ones are still delivered).", enabled=False
)
pausehandoff = _setter(
    "pausehandoff", "Pause delivering hints (new ones are still kept).", paused=True
)
resumehandoff = _setter("resumehandoff", "Resume delivering hints.", paused=False)

Datacenter = Annotated[str, typer.Argument(help="Datacenter name.", metavar="DC")]


def enablehintsfordc(
    dc: Datacenter, host: Host = None, timeout: Timeout = None, as_json: Json = False
) -> None:
    """Keep hints again for the replicas of a datacenter. Applies to the target node only, until
    it restarts."""
    output.emit(_call(host, timeout, "hints_set", enable_dc=dc), as_json, _say_status)


def disablehintsfordc(
    dc: Datacenter, host: Host = None, timeout: Timeout = None, as_json: Json = False
) -> None:
    """Keep no hints for the replicas of a datacenter. Applies to the target node only, until it
    restarts."""
    output.emit(_call(host, timeout, "hints_set", disable_dc=dc), as_json, _say_status)


def truncatehints(
    address: Annotated[
        str | None,
        typer.Argument(
            help="Only the hints for the node at HOST:PORT (default: all).", metavar="ADDRESS"
        ),
    ] = None,
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Delete stored hints (for one node, or all) without delivering them."""
    result = _call(host, timeout, "hints_truncate", address=address)
    output.emit(result, as_json, lambda r: output.say(f"deleted {plural(r['files'], 'hint file')}"))


def getmaxhintwindow(host: Host = None, timeout: Timeout = None, as_json: Json = False) -> None:
    """How long a node may be down and still get hints (ms)."""
    result = _call(host, timeout, "hints_status")
    output.emit(
        {"max_hint_window_ms": result["max_hint_window_ms"]},
        as_json,
        lambda r: output.say(f"Current max hint window: {r['max_hint_window_ms']} ms"),
    )


def setmaxhintwindow(
    ms: Annotated[int, typer.Argument(help="Milliseconds.", metavar="MS", min=0)],
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Set how long a node may be down and still get hints (ms)."""
    result = _call(host, timeout, "hints_set", max_hint_window_ms=ms)
    output.emit(
        result, as_json, lambda r: output.say(f"max hint window: {r['max_hint_window_ms']} ms")
    )


def sethintedhandoffthrottlekb(
    kb: Annotated[
        int,
        typer.Argument(
            help="KiB per second per destination; 0 = unthrottled.", metavar="KB", min=0
        ),
    ],
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Set the hint delivery rate (KiB/s, divided among the other nodes as Cassandra does)."""
    result = _call(host, timeout, "hints_set", throttle_kb=kb)
    output.emit(
        result, as_json, lambda r: output.say(f"hinted handoff throttle: {r['throttle_kb']} KiB/s")
    )


def _when(ms: int | None) -> str:
    return "-" if ms is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def listpendinghints(host: Host = None, timeout: Timeout = None, as_json: Json = False) -> None:
    """Hints waiting per target node: files, size, newest, oldest, estimated replay time."""
    result = _call(host, timeout, "hints_pending")

    def render(r: dict[str, Any]) -> None:
        if not r["hosts"]:
            output.say("This node does not have any pending hints")
            return
        rows = [
            [
                h["host_id"],
                h.get("address") or "?",
                h.get("rack") or "?",
                h.get("dc") or "?",
                h.get("status") or "?",
                h["files"],
                output.human_bytes(h["total_bytes"]),
                _when(h["newest_ms"]),
                _when(h["oldest_ms"]),
                f"{h['replay_seconds']:.0f} s",
                ", ".join(h["corrupted"]) or "-",
            ]
            for h in r["hosts"]
        ]
        columns = ["Host ID", "Address", "Rack", "DC", "Status", "Total files", "Total size"]
        columns += ["Newest", "Oldest", "Replay", "Corrupted"]
        output.console.print(output.table(None, columns, rows))

    output.emit(result, as_json, render)


def register(app: typer.Typer) -> None:
    for fn in (
        statushandoff,
        enablehandoff,
        disablehandoff,
        pausehandoff,
        resumehandoff,
        enablehintsfordc,
        disablehintsfordc,
        truncatehints,
        getmaxhintwindow,
        setmaxhintwindow,
        sethintedhandoffthrottlekb,
        listpendinghints,
    ):
        app.command(fn.__name__)(fn)
