"""Strict CBOR for frame bodies: one data item, a map with text keys, no tags, bounded nesting.

A fresh decoder per frame; anything that is not exactly one well-formed item of the allowed types
raises ``ProtocolError`` (never another exception).

Decoding must notice bytes after the item, which ``cbor2.loads`` ignores. A body without a 0xff
byte is decoded by ``loads`` (the C decoder reading straight from the bytes, the cheapest way
for small frames) as the content of an indefinite-length array: anything after the item becomes
a second element or malformed input. A body with a 0xff byte (a break, which would close that
array early; most batch frames have one somewhere) is decoded once by a decoder over a
``BytesIO``, which tells where the item ended. Both reject tags, refuse duplicate keys and
bound the depth; then one pass over the decoded maps and lists checks that map keys are text.
"""

from __future__ import annotations

import io
from typing import Any

import cbor2

from ringd.protocol.errors import ErrorCode, ProtocolError

MAX_DEPTH = 32


def _reject_tag(*_: Any) -> Any:
    raise cbor2.CBORDecodeError("CBOR tags are not part of the protocol")


def _check_map(value: dict[Any, Any]) -> None:
    for key, item in value.items():
        if type(key) is not str:
            raise ProtocolError("malformed CBOR: map keys must be text strings")
        kind = type(item)
        if kind is dict:
            _check_map(item)
        elif kind is list:
            _check_list(item)


def _check_list(value: list[Any]) -> None:
    for item in value:
        kind = type(item)
        if kind is dict:
            _check_map(item)
        elif kind is list:
            _check_list(item)


# Every semantic tag cbor2 knows of is routed to a rejecting decoder; others reach the tag hook.
_NO_SEMANTIC_TAGS = {tag: _reject_tag for tag in range(0, 1 << 16)}


def encode(value: Any) -> bytes:
    """The CBOR encoding of ``value`` (maps, lists, text, bytes, ints, floats, bools, null)."""
    try:
        return cbor2.dumps(value)
    except (cbor2.CBOREncodeError, TypeError, ValueError) as exc:
        raise ProtocolError(f"cannot encode: {exc}", ErrorCode.SERVER_ERROR) from None


def _loads(data: bytes) -> Any:
    return cbor2.loads(
        data,
        tag_hook=_reject_tag,
        semantic_decoders=_NO_SEMANTIC_TAGS,
        max_depth=MAX_DEPTH + 1,
        allow_duplicate_keys=False,
    )


def _decode_alone(data: bytes) -> tuple[Any, int]:
    """The first item of ``data`` and the offset where it ended."""
    stream = io.BytesIO(data)
    value = cbor2.CBORDecoder(
        stream,
        tag_hook=_reject_tag,
        semantic_decoders=_NO_SEMANTIC_TAGS,
        max_depth=MAX_DEPTH,
        allow_duplicate_keys=False,
    ).decode()
    return value, stream.tell()


def decode_item(data: bytes) -> Any:
    """Decode exactly one CBOR item of the protocol's types from ``data``."""
    try:
        if b"\xff" in data:
            value, end = _decode_alone(data)
            after = len(data) - end
        else:
            items = _loads(b"".join((b"\x9f", data, b"\xff")))
            if not items:
                raise ProtocolError("malformed CBOR: no data item")
            value = items[0]
            after = len(items) - 1
    except ProtocolError:
        raise
    except Exception as exc:  # cbor2 raises several types for malformed input
        raise _why_malformed(data, exc) from None
    if type(value) is dict:
        _check_map(value)
    elif type(value) is list:
        _check_list(value)
    if after:
        raise ProtocolError("bytes after the CBOR item")
    if isinstance(value, cbor2.CBORSimpleValue) or value is cbor2.undefined:
        raise ProtocolError("CBOR simple values are not part of the protocol")
    return value


def _why_malformed(data: bytes, exc: Exception) -> ProtocolError:
    """The error for a body that did not decode: decoded alone (on the error path only) to tell
    bytes after the item from a malformed item."""
    try:
        _, end = _decode_alone(data)
    except Exception as alone:
        return ProtocolError(f"malformed CBOR: {alone}")
    if end != len(data):
        return ProtocolError(f"{len(data) - end} bytes after the CBOR item")
    return ProtocolError(f"malformed CBOR: {exc}")


def decode_map(data: bytes) -> dict[str, Any]:
    """Decode a frame body, which must be one CBOR map."""
    value = decode_item(data)
    if not isinstance(value, dict):
        raise ProtocolError(f"a frame must hold a CBOR map, not {type(value).__name__}")
    return value
