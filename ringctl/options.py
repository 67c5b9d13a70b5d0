"""Option aliases shared by every command (typer ``Annotated`` types)."""

from __future__ import annotations

from typing import Annotated

import typer

from ringctl.completion import CHOICES, KEYSPACES, Complete

Host = Annotated[
    str | None,
    typer.Option(
        "--host",
        envvar="RINGCTL_HOST",
        help="Node to talk to (default: the current local cluster, else 127.0.0.1:7400).",
        show_envvar=True,
        metavar="HOST:PORT",
    ),
]
Timeout = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        help="Give up on an answer after this many seconds (exit 3; default 30).",
        min=0.1,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]
WRITE_LEVELS = (
    "ONE",
    "TWO",
    "THREE",
    "QUORUM",
    "ALL",
    "ANY",
    "LOCAL_ONE",
    "LOCAL_QUORUM",
    "EACH_QUORUM",
)
READ_LEVELS = tuple(level for level in WRITE_LEVELS if level != "ANY")
#: what -c completes to (the shell scripts carry these lists; see ringctl.docgen)
WRITE_LEVEL_VALUES = Complete(CHOICES, WRITE_LEVELS)
READ_LEVEL_VALUES = Complete(CHOICES, READ_LEVELS)


def _levels(levels: tuple[str, ...]) -> str:
    return ", ".join(levels[:-1]) + f" or {levels[-1]} (default QUORUM)."


Consistency = Annotated[
    str | None,
    typer.Option(
        "--consistency",
        "-c",
        metavar="LEVEL",
        help=_levels(WRITE_LEVELS),
        autocompletion=WRITE_LEVEL_VALUES,
    ),
]
#: reads: ANY (a hint counts) only makes sense for writes
ReadConsistency = Annotated[
    str | None,
    typer.Option(
        "--consistency",
        "-c",
        metavar="LEVEL",
        help=_levels(READ_LEVELS),
        autocompletion=READ_LEVEL_VALUES,
    ),
]
MAX_TIMESTAMP = (1 << 62) - 1  # the node's limit (docs/protocol.md)
Timestamp = Annotated[
    int | None,
    typer.Option(
        "--timestamp",
        help="Write timestamp in microseconds since the epoch (default: the node's clock).",
        min=0,
        max=MAX_TIMESTAMP,
    ),
]
Keyspace = Annotated[
    str, typer.Argument(help="Keyspace name.", metavar="KEYSPACE", autocompletion=KEYSPACES)
]
Key = Annotated[str, typer.Argument(help="Row key.", metavar="KEY")]
