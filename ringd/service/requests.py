"""Client request arguments to rows, and rows back to what clients see.

Column values travel as CBOR data items and are stored as their CBOR encoding, so the merge
tie-break on equal timestamps compares encoded bytes, the same on every replica.
"""

from __future__ import annotations

import math
from typing import Any

import cbor2

from ringd.db.cells import Cell, Row, RowTombstone
from ringd.protocol import codec
from ringd.protocol.errors import InvalidRequest
from ringd.protocol.messages import arg
from ringd.schema import MAX_TTL

MAX_KEY_BYTES = 64 * 1024
MAX_COLUMN_NAME = 1024


def key_bytes(args: dict[str, Any]) -> bytes:
    key = arg(args, "key", (str, bytes))
    raw = key.encode() if isinstance(key, str) else key
    if not raw:
        raise InvalidRequest("key must not be empty")
    if len(raw) > MAX_KEY_BYTES:
        raise InvalidRequest(f"key is {len(raw)} bytes; the limit is {MAX_KEY_BYTES}")
    return raw


def key_out(raw: bytes) -> str | bytes:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


def _column_name(name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_COLUMN_NAME:
        raise InvalidRequest(f"column names must be 1-{MAX_COLUMN_NAME} characters of text")
    return name


def client_timestamp(args: dict[str, Any]) -> int | None:
    """The client's timestamp; ``None`` (the node's clock) when absent, null or 0."""
    ts = arg(args, "timestamp", int, None)
    if ts is not None and not 0 <= ts < 1 << 62:
        raise InvalidRequest("timestamp must be microseconds since the epoch, non-negative")
    return ts or None


def check_not_future(ts: int, wall_seconds: float, max_future_ms: int) -> None:
    """``INVALID`` if timestamp ``ts`` (µs) is more than ``max_future_ms`` ahead of the clock."""
    limit = int(wall_seconds * 1_000_000) + max_future_ms * 1000
    if ts > limit:
        raise InvalidRequest(
            f"timestamp {ts} is more than {max_future_ms} ms ahead of this node's clock "
            "(max_future_timestamp_ms)"
        )


_VALUE_TYPES = (str, bytes, int, float, bool, type(None))


def _check_value(value: Any, depth: int = 0) -> None:
    """Column values are JSON-like data: text, bytes, numbers, booleans, null, lists, maps."""
    if isinstance(value, _VALUE_TYPES):
        return
    if depth > 16:
        raise InvalidRequest("column value nests too deeply")
    if isinstance(value, list):
        for item in value:
            _check_value(item, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            _check_value(item, depth + 1)
    else:
        raise InvalidRequest(f"column values cannot hold {type(value).__name__}")


def put_row(args: dict[str, Any], timestamp: int, now: float, default_ttl: int) -> Row:
    columns = arg(args, "columns", dict)
    if not columns:
        raise InvalidRequest("a put needs at least one column")
    ttl = arg(args, "ttl", int, None)
    if ttl is None:
        ttl = default_ttl
    if not 0 <= ttl <= MAX_TTL:
        raise InvalidRequest(f"ttl must be between 0 and {MAX_TTL} seconds")
    # expiry is whole seconds (the cell format's resolution), rounded up so that a cell is
    # readable for at least ``ttl`` seconds after the write, and less than ttl + 1
    ldt = expiry_time(now, ttl) if ttl else None
    cells = {}
    for name, value in columns.items():
        _check_value(value)
        cells[_column_name(name)] = Cell(timestamp, codec.encode(value), ldt)
    return Row(cells)


def expiry_time(now: float, ttl: int) -> int:
    """The whole second at which a cell written at ``now`` with ``ttl`` stops being live."""
    return math.ceil(now + ttl)


def delete_row(args: dict[str, Any], timestamp: int, now: float) -> Row:
    names = arg(args, "columns", list, [])
    ldt = int(now)
    if not names:
        return Row({}, RowTombstone(timestamp, ldt))
    return Row({_column_name(n): Cell(timestamp, None, ldt) for n in names})


def row_out(row: Row | None, now: float) -> dict[str, Any] | None:
    """The columns a client sees, decoded; ``None`` when nothing is live."""
    if row is None:
        return None
    live = row.live_columns(int(now))
    if not live:
        return None
    return {name: cbor2.loads(value) for name, value in live.items()}


def writetimes(row: Row, columns: dict[str, Any]) -> dict[str, int]:
    return {name: row.cells[name].timestamp for name in columns}
