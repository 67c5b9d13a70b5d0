"""Option aliases shared by every command (typer ``Annotated`` types)."""

from __future__ import annotations

from typing import Annotated

import typer

Host = Annotated[
    str | None,
    typer.Option(
        "--host",
        envvar="RINGCTL_HOST",
        help="Node to talk to, HOST:PORT (default: the current local cluster, else 127.0.0.1:7400).",
        show_envvar=True,
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
Consistency = Annotated[
    str | None,
    typer.Option(
        "--consistency",
        "-c",
        help="ONE, TWO, THREE, QUORUM, ALL, ANY (writes), LOCAL_ONE, LOCAL_QUORUM or EACH_QUORUM "
        "(default QUORUM).",
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
Keyspace = Annotated[str, typer.Argument(help="Keyspace name.")]
Key = Annotated[str, typer.Argument(help="Row key.")]
