"""The one place that renders: rich tables for people, one JSON document for scripts, and the
exit codes and one-line errors (README.md, "Exit codes").

Exit codes: 0 success; 1 not found or a failed check; 2 usage error (including a request the
node rejects as invalid, and one that cannot be sent); 3 the cluster could not meet the request
(unavailable, timeout, overloaded, no answer within --timeout); 4 cannot connect, not a ringd
node, not a node of the current cluster, or not authorised; 5 server error; 130 interrupted.

What is printed is data, never markup: both consoles have rich markup and highlighting off, and
table cells are ``Text``, so ``[bold]`` in a key or value prints as it is. In JSON documents,
tokens (64-bit) are strings: JSON readers such as jq and JavaScript lose precision on integers
above 2^53.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from ringd.protocol.errors import ErrorCode, ProtocolError

OK, NOT_FOUND, USAGE, UNAVAILABLE, CONNECT, SERVER = 0, 1, 2, 3, 4, 5
INTERRUPTED = 130  # 128 + SIGINT, as shells report it

_EXIT_BY_CODE = {
    ErrorCode.INVALID: USAGE,
    ErrorCode.UNAVAILABLE: UNAVAILABLE,
    ErrorCode.WRITE_TIMEOUT: UNAVAILABLE,
    ErrorCode.READ_TIMEOUT: UNAVAILABLE,
    ErrorCode.OVERLOADED: UNAVAILABLE,
    ErrorCode.UNAUTHORIZED: CONNECT,
    ErrorCode.PROTOCOL_ERROR: SERVER,
    ErrorCode.SERVER_ERROR: SERVER,
}

_NEXT_STEP = {
    ErrorCode.UNAVAILABLE: "start the down nodes or lower the consistency level",
    ErrorCode.WRITE_TIMEOUT: "check 'ringctl status' for slow or down nodes, then retry",
    ErrorCode.READ_TIMEOUT: "check 'ringctl status' for slow or down nodes, then retry",
    ErrorCode.OVERLOADED: "retry later or through another node",
}

# When piped, rich would wrap at 80 columns and cut cells (host ids!): give it room instead.
console = Console(width=None if sys.stdout.isatty() else 1000, markup=False, highlight=False)
err_console = Console(
    stderr=True, width=None if sys.stderr.isatty() else 1000, markup=False, highlight=False
)

TOKEN_KEYS = frozenset({"token", "start_token", "end_token"})


def tokens_as_text(value: Any) -> Any:
    """``value`` with every token a string: fields named token/start_token/end_token and the
    gossip TOKENS state."""
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if k in TOKEN_KEYS and isinstance(v, int) and not isinstance(v, bool):
                out[k] = str(v)
            elif k == "TOKENS" and isinstance(v, dict) and isinstance(v.get("value"), list):
                out[k] = {**v, "value": [str(t) for t in v["value"]]}
            else:
                out[k] = tokens_as_text(v)
        return out
    if isinstance(value, list):
        return [tokens_as_text(v) for v in value]
    return value


def to_jsonable(value: Any) -> Any:
    """Values as JSON can hold them: bytes become {"$bytes": hex}."""
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def from_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and "$bytes" in value and isinstance(value["$bytes"], str):
            try:
                return bytes.fromhex(value["$bytes"])
            except ValueError:
                return value
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":"))


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """Print ``data`` as one JSON document, or hand it to ``render`` for people."""
    if as_json:
        document = to_jsonable(tokens_as_text(data))
        sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    else:
        render(data)


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    """A table of data: every cell and the title are plain text, never markup."""
    t = Table(
        title=None if title is None else Text(title), title_justify="left", header_style="bold"
    )
    for c in columns:
        t.add_column(Text(c))
    for r in rows:
        t.add_row(*(Text("" if v is None else str(v)) for v in r))
    return t


def say(text: str) -> None:
    """One line of data for people on stdout, printed as it is."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} rows/s")


@contextmanager
def row_progress(enabled: bool, label: str) -> Iterator[Callable[[], None]]:
    """A progress display (rows, rows/s) on stderr when it is a terminal; yields ``advance``,
    which counts one row. Nothing is shown when stderr is piped or ``enabled`` is false."""
    if not enabled or not err_console.is_terminal:
        yield lambda: None
        return
    columns = (SpinnerColumn(), TextColumn(label), BarColumn(), TextColumn("{task.completed} rows"))
    with Progress(
        *columns, _Rate(), TimeElapsedColumn(), console=err_console, transient=True
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda: bar.advance(task)


def fail(message: str, code: int) -> NoReturn:
    err_console.print(f"ringctl: error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def exit_code_for(exc: ProtocolError) -> int:
    from ringctl.client import ConnectError, RequestError, RequestTimeout

    if isinstance(exc, ConnectError):
        return CONNECT
    if isinstance(exc, RequestTimeout):
        return UNAVAILABLE
    if isinstance(exc, RequestError):
        return USAGE
    return _EXIT_BY_CODE.get(exc.code, SERVER)


def _next_step(exc: ProtocolError) -> str | None:
    """What to try next; for UNAVAILABLE it depends on whether any replica is down at all."""
    details = exc.details
    if (
        exc.code == ErrorCode.UNAVAILABLE
        and isinstance(details.get("replicas"), int)
        and details.get("alive") == details["replicas"]
    ):
        return (
            "the keyspace's replication factor exceeds the live nodes; "
            "alter the keyspace's replication or add nodes"
        )
    return _NEXT_STEP.get(exc.code)


def error_line(exc: ProtocolError) -> str:
    from ringctl.client import ConnectError, NotRingd, RequestError, RequestTimeout, WrongCluster

    if isinstance(exc, NotRingd | WrongCluster):
        return f"{exc.message}; give the address of a ringd node with --host HOST:PORT"
    if isinstance(exc, ConnectError):
        return f"{exc.message}; is ringd running there? (try --host HOST:PORT or 'ringctl cluster start')"
    if isinstance(exc, RequestTimeout):
        return f"timed out: {exc.message}; the node may be paused or overloaded (see --timeout)"
    if isinstance(exc, RequestError):
        return exc.message
    step = _next_step(exc)
    text = f"{exc.code}: {exc.message}"
    return f"{text}; {step}" if step else text


@contextmanager
def errors() -> Iterator[None]:
    """Turn known failures into one line on stderr and the right exit code."""
    try:
        yield
    except ProtocolError as exc:
        if os.environ.get("RINGCTL_DEBUG") == "1":
            traceback.print_exc()
        fail(error_line(exc), exit_code_for(exc))
    except KeyboardInterrupt:
        fail("interrupted", INTERRUPTED)


def human_bytes(n: int | float | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} TiB"
