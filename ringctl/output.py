"""The one place that renders: rich tables for people, one JSON document for scripts, and the
exit codes and one-line errors of DESIGN.md section 7.

Exit codes: 0 success; 1 not found or a failed check; 2 usage error (including a request the
node rejects as invalid); 3 the cluster could not meet the request (unavailable, timeout,
overloaded); 4 cannot connect or not authorised; 5 server error.
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
from rich.table import Table

from ringd.protocol.errors import ErrorCode, ProtocolError

OK, NOT_FOUND, USAGE, UNAVAILABLE, CONNECT, SERVER = 0, 1, 2, 3, 4, 5

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
console = Console(width=None if sys.stdout.isatty() else 1000)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 1000)


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
        sys.stdout.write(json.dumps(to_jsonable(data), ensure_ascii=False, indent=2) + "\n")
    else:
        render(data)


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    return t


def fail(message: str, code: int) -> NoReturn:
    err_console.print(f"ringctl: error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def exit_code_for(exc: ProtocolError) -> int:
    from ringctl.client import ConnectError

    if isinstance(exc, ConnectError):
        return CONNECT
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
    from ringctl.client import ConnectError

    if isinstance(exc, ConnectError):
        return f"{exc.message}; is ringd running there? (try --host HOST:PORT or 'ringctl cluster start')"
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


def human_bytes(n: int | float | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} TiB"
