"""Data commands: put, get, delete, load, dump, ping, version."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

import ringd
from ringctl import output, target
from ringctl.client import AsyncClient, Client
from ringctl.options import Consistency, Host, Json, Key, Keyspace, ReadConsistency, Timestamp
from ringd.protocol.errors import ProtocolError
from ringd.words import plural

LOAD_CONCURRENCY = 64


def parse_value(text: str) -> dict[str, Any]:
    """VALUE as columns: a JSON object writes its columns; any other JSON (or plain text) writes
    the single column ``value``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"value": text}
    value = output.from_jsonable(value)
    if isinstance(value, dict):
        if not value:
            output.fail("VALUE is an empty JSON object: give at least one column", output.USAGE)
        return value
    return {"value": value}


def _count(name: str) -> Any:
    return typer.Option(
        f"-{name}", help=f"Explicit number of replicas that must answer ({name}).", min=1
    )


def put(
    keyspace: Keyspace,
    key: Key,
    value: Annotated[
        str,
        typer.Argument(
            help="JSON: an object writes its columns; anything else the column 'value'."
        ),
    ],
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
    as_json: Json = False,
) -> None:
    """Write columns of a row."""
    columns = parse_value(value)
    with output.errors(), Client(target.resolve(host)) as db:
        result = db.put(
            keyspace, key, columns, ttl=ttl, timestamp=timestamp, consistency=consistency, w=w
        )
    output.emit(
        {"keyspace": keyspace, "key": key, **result},
        as_json,
        lambda r: output.console.print(
            f"OK ({plural(r['acks'], 'ack')}, timestamp {r['timestamp']})"
        ),
    )


def get(
    keyspace: Keyspace,
    key: Key,
    consistency: ReadConsistency = None,
    r: Annotated[int | None, _count("r")] = None,
    host: Host = None,
    as_json: Json = False,
) -> None:
    """Read a row. Exits 1 if it does not exist."""
    with output.errors(), Client(target.resolve(host)) as db:
        row = db.get(keyspace, key, consistency=consistency, r=r)
    if row is None:
        if as_json:
            output.emit(None, True, print)
        else:
            output.err_console.print(f"ringctl: {keyspace}/{key}: not found", markup=False)
        raise typer.Exit(output.NOT_FOUND)

    def render(row: dict[str, Any]) -> None:
        rows = [
            [name, output.dumps(value), row["writetime"].get(name)]
            for name, value in sorted(row["columns"].items())
        ]
        output.console.print(
            output.table(f"{keyspace}/{key}", ["column", "value", "writetime"], rows)
        )

    output.emit(row, as_json, render)


def delete(
    keyspace: Keyspace,
    key: Key,
    columns: Annotated[
        list[str] | None, typer.Argument(help="Columns to delete (default: the whole row).")
    ] = None,
    timestamp: Timestamp = None,
    consistency: Consistency = None,
    w: Annotated[int | None, _count("w")] = None,
    host: Host = None,
    as_json: Json = False,
) -> None:
    """Delete a row, or only the named columns (writes tombstones)."""
    with output.errors(), Client(target.resolve(host)) as db:
        result = db.delete(
            keyspace, key, columns or None, timestamp=timestamp, consistency=consistency, w=w
        )
    output.emit(
        {"keyspace": keyspace, "key": key, "columns": columns or None, **result},
        as_json,
        lambda r: output.console.print(
            f"OK ({plural(r['acks'], 'ack')}, timestamp {r['timestamp']})"
        ),
    )


def ping(host: Host = None, as_json: Json = False) -> None:
    """Check that a node answers, and how fast."""
    address = target.resolve(host)
    with output.errors(), Client(address) as db:
        db.connect()
        start = time.perf_counter()
        result = db.ping()
        elapsed_ms = (time.perf_counter() - start) * 1000
    data = {
        "address": address,
        "host_id": result["host_id"],
        "version": result["version"],
        "ms": round(elapsed_ms, 3),
    }
    output.emit(
        data,
        as_json,
        lambda d: output.console.print(f"{d['address']} ringd {d['version']}: {d['ms']:.2f} ms"),
    )


def version(as_json: Json = False) -> None:
    """Print ringctl's version."""
    output.emit({"version": ringd.__version__}, as_json, lambda d: print(f"ringctl {d['version']}"))


def _read_lines(source: str) -> Any:
    if source == "-":
        return sys.stdin
    try:
        return Path(source).open(encoding="utf-8")
    except OSError as exc:
        output.fail(f"cannot read {source}: {exc.strerror}", output.USAGE)


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
    as_json: Json = False,
) -> None:
    """Bulk-write rows from JSON lines (as 'dump' prints them), with bounded concurrency."""
    import trio  # only load needs it; other commands start faster without

    lines = _read_lines(source)
    address = target.resolve(host)
    counts = {"written": 0, "failed": 0, "skipped": 0}
    errors: list[str] = []

    def parse(lineno: int, line: str) -> tuple[Any, dict[str, Any]] | None:
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {lineno}: not JSON: {exc.msg}")
            return None
        if not isinstance(item, dict) or "key" not in item or "value" not in item:
            errors.append(f'line {lineno}: needs "key" and "value"')
            return None
        key = output.from_jsonable(item["key"])
        value = output.from_jsonable(item["value"])
        if not isinstance(key, str | bytes) or not key:
            errors.append(f"line {lineno}: key must be a non-empty string")
            return None
        columns = value if isinstance(value, dict) and value else {"value": value}
        return key, columns

    async def run() -> None:
        send, receive = trio.open_memory_channel[tuple[int, Any, dict[str, Any]]](concurrency)

        async def writer(db: AsyncClient, inbox: Any) -> None:
            async for lineno, key, columns in inbox:
                try:
                    await db.put(keyspace, key, columns, consistency=consistency)
                    counts["written"] += 1
                except ProtocolError as exc:
                    counts["failed"] += 1
                    errors.append(f"line {lineno}: {exc.code}: {exc.message}")

        async with AsyncClient(address) as db, trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(writer, db, receive.clone())
            receive.close()
            async with send:
                for lineno, line in enumerate(lines, 1):
                    if not line.strip():
                        continue
                    parsed = parse(lineno, line)
                    if parsed is None:
                        counts["skipped"] += 1
                        continue
                    await send.send((lineno, *parsed))

    with output.errors():
        with Client(address) as db:
            names = [k["name"] for k in db.keyspace_list()["keyspaces"]]
        if keyspace not in names:
            output.fail(
                f"keyspace {keyspace!r} does not exist; create it with: ringctl keyspace create {keyspace}",
                output.USAGE,
            )
        trio.run(run)
    for message in errors[:20]:
        output.err_console.print(f"ringctl: {message}", markup=False)
    output.emit(
        {"keyspace": keyspace, **counts},
        as_json,
        lambda c: output.console.print(
            f"loaded {plural(c['written'], 'row')} into {keyspace} "
            f"({c['failed']} failed, {c['skipped']} skipped)"
        ),
    )
    if counts["failed"] or counts["skipped"]:
        raise typer.Exit(output.NOT_FOUND)


def dump(
    keyspace: Keyspace,
    consistency: ReadConsistency = None,
    page_size: Annotated[
        int, typer.Option("--page-size", help="Rows per request.", min=1, max=5000)
    ] = 500,
    host: Host = None,
) -> None:
    """Print every row as JSON lines {"key", "value"} in token order (what 'load' reads)."""
    out = sys.stdout
    with output.errors(), Client(target.resolve(host)) as db:
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
