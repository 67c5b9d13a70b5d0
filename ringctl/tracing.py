"""``--trace`` on get, put and delete: the request's events on every node, as a table or JSON.

The node answers a traced request with ``{"result": ..., "trace": [event, ...]}`` (an error
carries the events as its ``trace`` detail); each event is ``{node, elapsed_us, kind, event,
...}`` with ``elapsed_us`` counted from when the request reached that node (docs/protocol.md,
section 11.9).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ringctl import output
from ringd.protocol.errors import ProtocolError

Trace = Annotated[
    bool,
    typer.Option(
        "--trace",
        help="Also print what the request did on every node it touched, with µs elapsed on "
        "each node (like cqlsh TRACING ON); with --json, one document {result, trace}. Events "
        "after the answer (a replica answering late) are not included.",
    ),
]


def table(events: list[dict[str, Any]], title: str) -> Table:
    """The events as a table that fits 80 columns (the event text wraps)."""
    t = Table(title=Text(title), title_justify="left", header_style="bold", expand=False)
    t.add_column(Text("µs"), justify="right", no_wrap=True)
    t.add_column(Text("node"), no_wrap=True, max_width=22, overflow="ellipsis")
    t.add_column(Text("event"), overflow="fold", ratio=1)
    for e in events:
        elapsed = e.get("elapsed_us")
        t.add_row(
            Text(f"{elapsed:,}" if isinstance(elapsed, int) else "?"),
            Text(str(e.get("node", "?"))),
            Text(str(e.get("event", ""))),
        )
    return t


def events_of(value: Any) -> list[dict[str, Any]]:
    """The events of a traced answer or error detail (only well-formed ones)."""
    if not isinstance(value, list):
        return []
    return [e for e in value if isinstance(e, dict)]


def show(events: list[dict[str, Any]], what: str, result: Any, as_json: bool) -> None:
    """Print a traced request's outcome: the JSON document ``{result, trace}``, or the table
    (after whatever the command printed for the result)."""
    if as_json:
        output.emit({"result": result, "trace": events}, True, print)
        return
    output.console.print(table(events, f"Tracing {what}"))


@contextmanager
def on_error(enabled: bool, what: str, as_json: bool) -> Iterator[None]:
    """A traced request that failed still shows its events (then the error as usual)."""
    try:
        yield
    except ProtocolError as exc:
        events = events_of(exc.details.get("trace")) if enabled else []
        if events:
            if as_json:
                error = {"code": str(exc.code), "message": exc.message}
                output.emit({"error": error, "trace": events}, True, print)
            else:
                output.console.print(table(events, f"Tracing {what}"))
        raise
