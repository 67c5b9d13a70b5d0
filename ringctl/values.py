"""What ringctl writes: VALUE text as columns, row keys as text or hex, values from files.

JSON here is strict: NaN and Infinity are not JSON, numbers must fit the protocol's 64-bit
integers and finite floats, and a column value nests at most ``MAX_DEPTH`` levels, as the node
requires (docs/protocol.md, section 8). ``BadValue`` carries a one-line reason.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, BinaryIO

from ringctl.output import from_jsonable
from ringd.protocol.framing import DEFAULT_MAX_FRAME

MAX_DEPTH = 16  # lists and maps inside a column value, as the node counts them
INT_MIN, INT_MAX = -(1 << 64), (1 << 64) - 1  # what CBOR holds without a bignum tag
MAX_VALUE_BYTES = DEFAULT_MAX_FRAME  # a value larger than a frame cannot be sent


class BadValue(Exception):
    """A value or key ringctl refuses to send; ``str(exc)`` is the reason."""


class NotJson(BadValue):
    """Text that is not JSON syntax at all."""


def _not_json(name: str) -> Any:
    raise BadValue(f"{name} is not JSON")


def check(value: Any, depth: int = 0) -> None:
    """Refuse numbers the protocol cannot carry and nesting the node refuses."""
    if isinstance(value, bool) or value is None or isinstance(value, str | bytes):
        return
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise BadValue(f"the number {value} does not fit in 64 bits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadValue("a number is too large for a 64-bit float")
        return
    if depth >= MAX_DEPTH:
        raise BadValue(f"a value nests deeper than {MAX_DEPTH} levels")
    items = value.values() if isinstance(value, dict) else value
    for item in items:
        check(item, depth + 1)


def loads(text: str) -> Any:
    """Strict JSON (``$bytes`` maps become bytes); ``BadValue`` names what is wrong."""
    try:
        value = json.loads(text, parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        raise NotJson(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise BadValue(f"a value nests deeper than {MAX_DEPTH} levels") from None
    value = from_jsonable(value)
    if isinstance(value, dict):
        for item in value.values():
            check(item)
    else:
        check(value)
    return value


def columns(text: str, *, raw: bool = False) -> dict[str, Any]:
    """VALUE as columns: a JSON object writes its columns; any other JSON the single column
    ``value``; text that is not JSON is stored as text, except that text starting with ``{`` or
    ``[`` must be valid JSON unless ``raw``."""
    if raw:
        return {"value": text}
    try:
        value = loads(text)
    except NotJson as exc:
        if text.lstrip()[:1] in ("{", "["):
            raise BadValue(
                f"VALUE starts like JSON but is {exc}; pass --raw to store it as text"
            ) from None
        return {"value": text}
    except BadValue as exc:
        raise BadValue(f"VALUE: {exc}; pass --raw to store it as text") from None
    if isinstance(value, dict):
        if not value:
            raise BadValue("VALUE is an empty JSON object: give at least one column")
        return value
    return {"value": value}


def row_key(text: str, *, hex_key: bool = False) -> str | bytes:
    """KEY as sent: the text, or with ``hex_key`` the bytes it spells in hexadecimal."""
    if not hex_key:
        if not text:
            raise BadValue("KEY must not be empty")
        return text
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise BadValue(f"--key-hex: {text!r} is not hexadecimal") from None
    if not key:
        raise BadValue("KEY must not be empty")
    return key


def show_key(key: str | bytes) -> str:
    """A key for people: text as it is, bytes as 0x<hex>."""
    return f"0x{key.hex()}" if isinstance(key, bytes) else key


def read_value(source: str) -> str:
    """The value text from a file, or stdin for ``-``; one trailing newline is dropped."""
    try:
        if source == "-":
            data = _read_bounded(sys.stdin.buffer)
        else:
            with Path(source).open("rb") as f:
                data = _read_bounded(f)
    except OSError as exc:
        raise BadValue(f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise BadValue(f"{'stdin' if source == '-' else source} is not UTF-8 text") from None
    return text[:-1] if text.endswith("\n") else text


def _read_bounded(f: BinaryIO) -> bytes:
    data = f.read(MAX_VALUE_BYTES + 1)
    if len(data) > MAX_VALUE_BYTES:
        raise BadValue(
            f"the value is larger than {MAX_VALUE_BYTES} bytes, the most one request holds"
        )
    return data
