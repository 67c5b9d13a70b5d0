"""Log levels at run time, as nodetool's: ``setlogginglevel`` and ``getlogginglevels``.

Per node (the target node only), until it restarts; ``log_level`` in the configuration sets
the root logger's level at start.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ringctl import output
from ringctl.commands.admin import _call
from ringctl.layout import Col, compact_table
from ringctl.options import Host, Json, Timeout

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
COLUMNS = (Col("Logger", whole=True), Col("Level", whole=True), Col("Effective", whole=True))


def _render(r: dict[str, Any]) -> None:
    rows = [[lg["name"], lg["level"], lg["effective"]] for lg in r["loggers"]]
    output.console.print(compact_table(COLUMNS, rows))


def setlogginglevel(
    words: Annotated[
        list[str],
        typer.Argument(
            metavar="[LOGGER] LEVEL",
            help=(
                f"The logger (default root; a name 'getlogginglevels --all' lists) and a level: "
                f"{', '.join(LEVELS)}, or NOTSET for a named logger to follow its parent."
            ),
            show_default=False,
        ),
    ],
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Set a logger's level on the node (admin). Applies to the target node only, until it
    restarts."""
    if len(words) > 2:
        output.fail("setlogginglevel takes [LOGGER] LEVEL", output.USAGE)
    logger, level = (words[0], words[1]) if len(words) == 2 else ("root", words[0])
    result = _call(host, timeout, "setlogginglevel", logger=logger, level=level)

    def render(r: dict[str, Any]) -> None:
        output.say(f"{r['name']}: {r['level']} (in effect: {r['effective']})")

    output.emit(result, as_json, render)


def getlogginglevels(
    every: Annotated[
        bool, typer.Option("--all", help="Every logger the node has, not only those with a level.")
    ] = False,
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """The node's root logger and every logger with a level of its own: level and level in
    effect."""
    output.emit(_call(host, timeout, "getlogginglevels", all=every), as_json, _render)


def register(app: typer.Typer) -> None:
    for fn in (setlogginglevel, getlogginglevels):
        app.command()(fn)
