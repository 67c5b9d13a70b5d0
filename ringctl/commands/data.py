"""Data commands: put, get, delete, load, dump, ping, version."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer

import ringd
from ringctl import output, target, tracing, values
from ringctl.client import AsyncClient
from ringctl.options import (
    Consistency,
    Host,
    Json,
    Key,
    Keyspace,
    ReadConsistency,
    Timeout,
    Timestamp,
)
from ringctl.values import MAX_VALUE_BYTES
from ringd.protocol.errors import ProtocolError
from ringd.words import plural

LOAD_CONCURRENCY = 64
MAX_LINE_BYTES = 2 * MAX_VALUE_BYTES  # a load line longer than this is skipped, not read whole
READ_BATCH = 512  # lines read per trip to the reading thread

KeyHex = Annotated[
    bool,
    typer.Option(
        "--key-hex", help="KEY is hexadecimal bytes (for keys that are not UTF-8 or hold NUL)."
    ),
]


def _key(key: str, key_hex: bool) -> str | bytes:
    try:
        return values.row_key(key, hex_key=key_hex)
    except values.BadValue as exc:
        output.fail(str(exc), output.USAGE)


def parse_value(text: str, raw: bool = False) -> dict[str, Any]:
    """VALUE as columns (see ``ringctl.values.columns``); a refused value exits 2."""
    try:
        return values.columns(text, raw=raw)
    except values.BadValue as exc:
        output.fail(str(exc), output.USAGE)


def _count(name: str) -> Any:
    return typer.Option(
        f"-{name}", help=f"Explicit number of replicas that must answer ({name}).", min=1
    )


def _value_text(value: str | None, value_file: str | None) -> str:
    if value is not None and value_file is not None:
        output.fail("give VALUE or --value-file, not both", output.USAGE)
    if value is None and value_file is None:
        output.fail("give VALUE, - (read it from stdin) or --value-file PATH", output.USAGE)
    try:
        if value_file is not None:
            return values.read_value(value_file)
        return values.read_value("-") if value == "-" else str(value)
    except values.BadValue as exc:
        output.fail(str(exc), output.USAGE)


def put(
    keyspace: Keyspace,
    key: Key,
    value: Annotated[
        str | None,
        typer.Argument(
            help="JSON: an object writes its columns; anything else the column 'value'. "
            "Text starting with { or [ must be valid JSON (or give --raw). - reads stdin.",
            show_default=False,
        ),
    ] = None,
    value_file: Annotated[
        str | None,
        typer.Option(
            "--value-file", metavar="PATH", help="Read VALUE from a file (for large values)."
        ),
    ] = None,
    raw: Annotated[
        bool,
        typer.Option("--raw", "--text", help="VALUE is text: store it as it is, never as JSON."),
    ] = False,
    key_hex: KeyHex = False,
    ttl: Annotated[
        int | None,
        typer.Option(
            "--ttl",
            help="Seconds until the written cells expire; 0 = never, overriding the keyspace's "
            "default_ttl (default: the keyspace's default_ttl).",
            min=0,
        ),
    ] = None,
    timestamp: Timestamp = None,
    consistency: Consistency = None,
    w: Annotated[int | None, _count("w")] = None,
    host: Host = None,
    timeout: Timeout = None,
    trace: tracing.Trace = False,
    as_json: Json = False,
) -> None:
    """Write columns of a row."""
    columns = parse_value(_value_text(value, value_file), raw)
    row_key = _key(key, key_hex)
    what = f"put {keyspace}/{values.show_key(row_key)}"
    with (
        output.errors(),
        tracing.on_error(trace, what, as_json),
        target.client(host, timeout) as db,
    ):
        result = db.put(
            keyspace,
            row_key,
            columns,
            ttl=ttl,
            timestamp=timestamp,
            consistency=consistency,
            w=w,
            trace=trace,
        )
    _written({"keyspace": keyspace, "key": row_key}, result, trace, what, as_json)


def _written(doc: dict[str, Any], result: Any, trace: bool, what: str, as_json: bool) -> None:
    """A put's or delete's outcome, and with ``trace`` its events."""
    events = tracing.events_of(result.get("trace")) if trace else []
    if trace:
        result = result.get("result") or {}
    doc = {**doc, **result}
    if trace and as_json:
        tracing.show(events, what, doc, True)
        return
    output.emit(
        doc,
        as_json,
        lambda r: output.say(f"OK ({plural(r['acks'], 'ack')}, timestamp {r['timestamp']})"),
    )
    if trace:
        tracing.show(events, what, doc, False)


def get(
    keyspace: Keyspace,
    key: Key,
    key_hex: KeyHex = False,
    consistency: ReadConsistency = None,
    r: Annotated[int | None, _count("r")] = None,
    host: Host = None,
    timeout: Timeout = None,
    trace: tracing.Trace = False,
    as_json: Json = False,
) -> None:
    """Read a row. Exits 1 if it does not exist."""
    row_key = _key(key, key_hex)
    shown = f"{keyspace}/{values.show_key(row_key)}"
    with (
        output.errors(),
        tracing.on_error(trace, f"get {shown}", as_json),
        target.client(host, timeout) as db,
    ):
        row = db.get(keyspace, row_key, consistency=consistency, r=r, trace=trace)
    events: list[dict[str, Any]] = []
    if trace:
        events, row = tracing.events_of(row.get("trace")), row.get("result")
        if as_json:
            tracing.show(events, f"get {shown}", row, True)
            if row is None:
                raise typer.Exit(output.NOT_FOUND)
            return
    if row is None:
        if as_json:
            output.emit(None, True, print)
        else:
            output.err_console.print(f"ringctl: {shown}: not found", markup=False)
            if trace:
                tracing.show(events, f"get {shown}", None, False)
        raise typer.Exit(output.NOT_FOUND)

    def render(row: dict[str, Any]) -> None:
        rows = [
            [name, output.dumps(value), row["writetime"].get(name)]
            for name, value in sorted(row["columns"].items())
        ]
        output.console.print(output.table(shown, ["column", "value", "writetime"], rows))

    output.emit(row, as_json, render)
    if trace:
        tracing.show(events, f"get {shown}", row, False)


def delete(
    keyspace: Keyspace,
    key: Key,
    columns: Annotated[
        list[str] | None, typer.Argument(help="Columns to delete (default: the whole row).")
    ] = None,
    key_hex: KeyHex = False,
    timestamp: Timestamp = None,
    consistency: Consistency = None,
    w: Annotated[int | None, _count("w")] = None,
    host: Host = None,
    timeout: Timeout = None,
    trace: tracing.Trace = False,
    as_json: Json = False,
) -> None:
    """Delete a row, or only the named columns (writes tombstones)."""
    row_key = _key(key, key_hex)
    what = f"delete {keyspace}/{values.show_key(row_key)}"
    with (
        output.errors(),
        tracing.on_error(trace, what, as_json),
        target.client(host, timeout) as db,
    ):
        result = db.delete(
            keyspace,
            row_key,
            columns or None,
            timestamp=timestamp,
            consistency=consistency,
            w=w,
            trace=trace,
        )
    doc = {"keyspace": keyspace, "key": row_key, "columns": columns or None}
    _written(doc, result, trace, what, as_json)


def ping(host: Host = None, timeout: Timeout = None, as_json: Json = False) -> None:
    """Check that a node answers, and how fast (gives up after --timeout, exit 3)."""
    with output.errors(), target.client(host, timeout) as db:
        start = time.perf_counter()
        result = db.ping()
        elapsed_ms = (time.perf_counter() - start) * 1000
    data = {
        "address": db.address,
        "cluster": db.server_info.get("cluster"),
        "host_id": result["host_id"],
        "version": result["version"],
        "ms": round(elapsed_ms, 3),
    }
    output.emit(
        data,
        as_json,
        lambda d: output.say(
            f"{d['address']} ringd {d['version']} (cluster {d['cluster']}): {d['ms']:.2f} ms"
        ),
    )


def version(as_json: Json = False) -> None:
    """Print ringctl's version."""
    output.emit({"version": ringd.__version__}, as_json, lambda d: print(f"ringctl {d['version']}"))


def _open_source(source: str) -> BinaryIO:
    if source == "-":
        return sys.stdin.buffer
    try:
        return Path(source).open("rb")
    except OSError as exc:
        output.fail(f"cannot read {source}: {exc.strerror}", output.USAGE)


def _read_batch(f: BinaryIO, first: int) -> list[tuple[int, bytes | None]]:
    """Up to READ_BATCH numbered lines from ``first``; a line over MAX_LINE_BYTES is None."""
    batch: list[tuple[int, bytes | None]] = []
    while len(batch) < READ_BATCH:
        line = f.readline(MAX_LINE_BYTES + 1)
        if not line:
            break
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := f.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass  # skip the rest of an over-long line without holding it
            batch.append((first + len(batch), None))
            continue
        batch.append((first + len(batch), line))
    return batch


def _parse_row(line: bytes) -> tuple[str | bytes, dict[str, Any]]:
    """One JSON line {"key", "value"} as key and columns; ``BadValue`` says what is wrong."""
    try:
        text = line.decode()
    except UnicodeDecodeError:
        raise values.BadValue("not UTF-8") from None
    item = values.loads(text)
    if not isinstance(item, dict) or "key" not in item or "value" not in item:
        raise values.BadValue('needs "key" and "value"')
    key, value = item["key"], item["value"]
    if not isinstance(key, str | bytes) or not key:
        raise values.BadValue("key must be a non-empty string")
    return key, (value if isinstance(value, dict) and value else {"value": value})


def load(
    keyspace: Keyspace,
    source: Annotated[
        str,
        typer.Argument(
            metavar="FILE|-", help='JSON lines of {"key": ..., "value": ...}; - for stdin.'
        ),
    ],
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Writes in flight at once.", min=1, max=1024)
    ] = LOAD_CONCURRENCY,
    consistency: Consistency = None,
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Bulk-write rows from JSON lines (as 'dump' prints them), with bounded concurrency.

    Shows progress (rows, rows/s) on a terminal. Ctrl-C stops at once, says how many rows were
    written, and exits 130."""
    import trio  # only load needs it; other commands start faster without

    f = _open_source(source)
    with output.errors(), target.client(host, timeout) as db:
        names = [k["name"] for k in db.keyspace_list()["keyspaces"]]
    if keyspace not in names:
        output.fail(
            f"keyspace {keyspace!r} does not exist; create it with: ringctl keyspace create {keyspace}",
            output.USAGE,
        )
    counts = {"written": 0, "failed": 0, "skipped": 0}
    errors: list[str] = []
    interrupted = False

    async def run(advance: Callable[[], None]) -> None:
        nonlocal interrupted
        send, receive = trio.open_memory_channel[tuple[int, Any, dict[str, Any]]](concurrency)

        async def writer(db: AsyncClient, inbox: Any) -> None:
            async for lineno, key, columns in inbox:
                try:
                    await db.put(keyspace, key, columns, consistency=consistency)
                    counts["written"] += 1
                    advance()
                except ProtocolError as exc:
                    counts["failed"] += 1
                    errors.append(f"line {lineno}: {output.error_line(exc)}")

        async def on_sigint(scope: trio.CancelScope) -> None:
            nonlocal interrupted
            with trio.open_signal_receiver(signal.SIGINT) as signals:
                async for _ in signals:
                    interrupted = True
                    scope.cancel()
                    return

        async def read_all(send: Any) -> None:
            async with send:
                lineno = 1
                while batch := await trio.to_thread.run_sync(
                    _read_batch, f, lineno, abandon_on_cancel=True
                ):
                    lineno += len(batch)
                    for n, line in batch:
                        if line is None:
                            counts["skipped"] += 1
                            errors.append(f"line {n}: longer than {MAX_LINE_BYTES} bytes")
                            continue
                        if not line.strip():
                            continue
                        try:
                            key, columns = _parse_row(line)
                        except values.BadValue as exc:
                            counts["skipped"] += 1
                            errors.append(f"line {n}: {exc}")
                            continue
                        await send.send((n, key, columns))

        async with trio.open_nursery() as outer:
            outer.start_soon(on_sigint, outer.cancel_scope)
            async with target.async_client(host, timeout) as db, trio.open_nursery() as nursery:
                for _ in range(concurrency):
                    nursery.start_soon(writer, db, receive.clone())
                receive.close()
                await read_all(send)
            outer.cancel_scope.cancel()

    with output.errors(), output.row_progress(not as_json, f"loading {keyspace}") as advance:
        try:
            trio.run(run, advance)
        except KeyboardInterrupt:
            interrupted = True
        except BaseExceptionGroup as group:
            rest = group.subgroup(lambda e: not isinstance(e, KeyboardInterrupt | trio.Cancelled))
            if rest is not None:
                raise _first_leaf(rest) from None
            interrupted = True
    if interrupted:
        output.fail(
            f"interrupted: {counts['written']} rows written to {keyspace} "
            f"({counts['failed']} failed, {counts['skipped']} skipped); writes in flight may "
            "or may not have been applied",
            output.INTERRUPTED,
        )
    for message in errors[:20]:
        output.err_console.print(f"ringctl: {message}", markup=False)
    output.emit(
        {"keyspace": keyspace, **counts},
        as_json,
        lambda c: output.say(
            f"loaded {plural(c['written'], 'row')} into {keyspace} "
            f"({c['failed']} failed, {c['skipped']} skipped)"
        ),
    )
    if counts["failed"] or counts["skipped"]:
        raise typer.Exit(output.NOT_FOUND)


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def dump(
    keyspace: Keyspace,
    consistency: ReadConsistency = None,
    page_size: Annotated[
        int, typer.Option("--page-size", help="Rows per request.", min=1, max=5000)
    ] = 500,
    host: Host = None,
    timeout: Timeout = None,
) -> None:
    """Print every row as JSON lines {"key", "value"} in token order (what 'load' reads).

    The output is JSON already, one document per row, so there is no --json."""
    out = sys.stdout
    with output.errors(), target.client(host, timeout) as db:
        cursor = None
        while True:
            page = db.scan(keyspace, cursor, limit=page_size, consistency=consistency)
            for row in page["rows"]:
                out.write(output.dumps({"key": row["key"], "value": row["columns"]}) + "\n")
            cursor = page["cursor"]
            if cursor is None:
                break
    out.flush()


def register(app: typer.Typer) -> None:
    for fn in (put, get, delete, load, dump, ping, version):
        app.command()(fn)
