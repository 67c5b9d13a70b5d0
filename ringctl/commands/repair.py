"""Anti-entropy repair, as nodetool's: ``repair``, ``repair status``, ``repair_admin``.

``ringctl repair [KS]`` starts a session on the target node and follows it (a progress bar on a
terminal) until it ends, then prints a summary per keyspace. ``repair`` is a group whose default
command is ``run``: ``ringctl repair demo -pr`` is ``ringctl repair run demo -pr`` (a keyspace
named ``status`` is repaired with ``ringctl repair run status``).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from typer import _click as click
from typer.core import TyperGroup

from ringctl import output, target
from ringctl.completion import KEYSPACES
from ringctl.options import Host, Json, Timeout
from ringd.words import plural

POLL_S = 0.25


class DefaultGroup(TyperGroup):
    """A group that runs ``run`` when its first argument is not one of its commands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help",)):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=DefaultGroup,
    help="Repair replicas with Merkle trees: only rows that differ are streamed. "
    "'ringctl repair [KS]' runs a repair; 'ringctl repair status' shows when ranges were last "
    "repaired.",
    no_args_is_help=False,
)
admin_app = typer.Typer(
    help="Repair sessions on a node: list them, cancel one.", no_args_is_help=True
)


def _client_call(host: str | None, timeout: float | None, op: str, **args: Any) -> Any:
    with output.errors(), target.client(host, timeout) as db:
        return db.admin(op, timeout=timeout, **args)


def _pairs(entry: dict[str, Any]) -> str:
    out = entry.get("out_of_sync") or {}
    return ", ".join(f"{pair}: {plural(n, 'range')}" for pair, n in out.items()) or "-"


def render_session(s: dict[str, Any]) -> None:
    preview = s.get("preview")
    rows = []
    for ks, e in s.get("keyspaces", {}).items():
        rows.append(
            [
                ks,
                len(e.get("ranges", [])),
                e.get("in_sync", 0),
                _pairs(e),
                e.get("rows_streamed", 0),
                output.human_bytes(e.get("bytes_streamed", 0)),
            ]
        )
    streamed = "would stream" if preview else "streamed"
    output.console.print(
        output.table(
            f"Repair {s['id']}: {s['state']}" + (" (preview)" if preview else ""),
            ["keyspace", "ranges", "in sync", "out of sync (pairs)", f"rows {streamed}", "bytes"],
            rows,
        )
    )
    if preview:
        if s["rows_streamed"]:
            out_ranges = sum(
                sum(e.get("out_of_sync", {}).values()) for e in s["keyspaces"].values()
            )
            output.say(
                f"Total estimated streaming: {plural(out_ranges, 'range')}, "
                f"{plural(s['rows_streamed'], 'row')}, {output.human_bytes(s['bytes_streamed'])}"
            )
        else:
            output.say("Previewed data was in sync")
    took = s["last_activity"] - s["started"]
    output.say(
        f"{plural(s['ranges_done'], 'range')} of {s['ranges_total']}, "
        f"{plural(s['rows_compared'], 'row')} compared, {plural(s['rows_streamed'], 'row')} "
        f"{streamed} in {took:.1f} s"
    )
    if s.get("error"):
        output.err_console.print(f"repair failed: {s['error']}", markup=False)


def _follow(
    host: str | None, timeout: float | None, session: dict[str, Any], quiet: bool
) -> dict[str, Any]:
    """Poll the session until it ends; a progress bar on a terminal unless ``quiet``."""
    sid = session["id"]
    show = not quiet and output.err_console.is_terminal
    with output.errors(), target.client(host, timeout) as db:
        if not show:
            while session["state"] == "RUNNING":
                time.sleep(POLL_S)
                session = db.admin("repair_session", id=sid)
            return session
        columns = (
            TextColumn("repair {task.fields[sid]}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} ranges"),
            TextColumn("{task.fields[rows]} rows compared, {task.fields[streamed]} streamed"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=output.err_console, transient=True) as bar:
            task = bar.add_task(
                "repair", total=session["ranges_total"] or 1, sid=sid, rows=0, streamed=0
            )
            while session["state"] == "RUNNING":
                time.sleep(POLL_S)
                session = db.admin("repair_session", id=sid)
                bar.update(
                    task,
                    completed=session["ranges_done"],
                    rows=session["rows_compared"],
                    streamed=session["rows_streamed"],
                )
    return session


@app.command("run")
def run(
    keyspace: Annotated[
        str | None,
        typer.Argument(help="Keyspace (default: every keyspace).", autocompletion=KEYSPACES),
    ] = None,
    primary_range: Annotated[
        bool,
        typer.Option(
            "-pr", "--partitioner-range", help="Only the ranges this node is primary for."
        ),
    ] = False,
    start_token: Annotated[
        str | None,
        typer.Option(
            "-st", "--start-token", help="Repair from this token (exclusive).", metavar="TOKEN"
        ),
    ] = None,
    end_token: Annotated[
        str | None,
        typer.Option(
            "-et", "--end-token", help="Repair up to this token (inclusive).", metavar="TOKEN"
        ),
    ] = None,
    dc: Annotated[
        str | None, typer.Option("--dc", help="Only the replicas of this datacenter.")
    ] = None,
    hosts: Annotated[
        str | None,
        typer.Option(
            "--hosts",
            help="Only these replicas, HOST:PORT,... (must include the target node).",
            metavar="ADDRESSES",
        ),
    ] = None,
    preview: Annotated[
        bool,
        typer.Option(
            "--preview", help="Compare and report what would be streamed; change nothing."
        ),
    ] = False,
    jobs: Annotated[
        int, typer.Option("-j", "--jobs", help="Ranges repaired at once (1-4).", min=1, max=4)
    ] = 1,
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Repair a keyspace (or all) on the target node's ranges with their other replicas.

    Exits 0 when the repair completed, 3 when a replica is down or the session failed."""
    tokens: dict[str, int] = {}
    for name, value in (("start_token", start_token), ("end_token", end_token)):
        if value is not None:
            try:
                tokens[name] = int(value)
            except ValueError:
                output.fail(
                    f"{name.replace('_', '-')} must be an integer token, not {value!r}",
                    output.USAGE,
                )
    if primary_range and (dc or hosts):
        output.fail("-pr cannot be combined with --dc or --hosts", output.USAGE)
    args: dict[str, Any] = {
        "keyspace": keyspace,
        "primary_range": primary_range or None,
        "dc": dc,
        "hosts": [h.strip() for h in hosts.split(",") if h.strip()] if hosts else None,
        "preview": preview or None,
        "jobs": jobs,
        **tokens,
    }
    session = _client_call(host, timeout, "repair_start", **args)
    session = _follow(host, timeout, session, as_json)
    output.emit(session, as_json, render_session)
    if session["state"] != "COMPLETED":
        raise typer.Exit(output.UNAVAILABLE)


@app.command("status")
def status(host: Host = None, timeout: Timeout = None, as_json: Json = False) -> None:
    """When this node's ranges were last repaired, per keyspace, and the repairs in progress.

    Warns (and exits 1) when a keyspace has ranges not repaired within its gc_grace."""
    result = _client_call(host, timeout, "repair_state")

    def render(r: dict[str, Any]) -> None:
        now = time.time()
        rows = []
        for k in r["keyspaces"]:
            oldest = k["oldest_repair"]
            age = "never" if oldest is None else f"{(now - oldest) / 3600:.1f} h ago"
            rows.append(
                [
                    k["keyspace"],
                    k["ranges"],
                    k["never_repaired"],
                    age,
                    k["gc_grace_seconds"],
                    "STALE" if k["stale"] else "ok",
                ]
            )
        output.console.print(
            output.table(
                None,
                ["keyspace", "ranges", "never repaired", "oldest repair", "gc_grace (s)", "state"],
                rows,
            )
        )
        for s in r["running"]:
            output.say(f"running: {s['id']} {s['ranges_done']}/{s['ranges_total']} ranges")
        for k in r["keyspaces"]:
            if k["stale"]:
                output.err_console.print(
                    f"warning: {k['keyspace']} has ranges not repaired within gc_grace "
                    f"({k['gc_grace_seconds']} s): deleted data may come back; run 'ringctl repair {k['keyspace']}'",
                    markup=False,
                )

    output.emit(result, as_json, render)
    if any(k["stale"] for k in result["keyspaces"]):
        raise typer.Exit(output.NOT_FOUND)


@admin_app.command("list")
def admin_list(host: Host = None, timeout: Timeout = None, as_json: Json = False) -> None:
    """Repair sessions this node coordinated: id, state, last activity, coordinator, participants."""
    result = _client_call(host, timeout, "repair_sessions")

    def render(r: dict[str, Any]) -> None:
        rows = [
            [
                s["id"],
                s["state"],
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s["last_activity"])),
                s["coordinator"],
                ", ".join(s["participants"]),
            ]
            for s in r["sessions"]
        ]
        output.console.print(
            output.table(
                None, ["id", "state", "last activity", "coordinator", "participants"], rows
            )
        )

    output.emit(result, as_json, render)


@admin_app.command("cancel")
def admin_cancel(
    session_id: Annotated[
        str, typer.Argument(help="Session id (from 'repair_admin list').", metavar="ID")
    ],
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Cancel a running repair session."""
    result = _client_call(host, timeout, "repair_cancel", id=session_id)
    output.emit(result, as_json, lambda s: output.say(f"session {s['id']}: {s['state'].lower()}"))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="repair")
    root.add_typer(admin_app, name="repair_admin")
