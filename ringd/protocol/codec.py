"""Strict CBOR for frame bodies: one data item, a map with text keys, no tags, bounded nesting.

A fresh decoder per frame; anything that is not exactly one well-formed item of the allowed types
raises ``ProtocolError`` (never another exception).

Decoding is ``cbor2.loads`` (the C decoder reading straight from the bytes, much cheaper than a
decoder over a file object) with tags rejected, duplicate keys refused and depth bounded, then
one pass over the decoded maps and lists to check that map keys are text. ``loads`` ignores
bytes after the item, so the body is decoded as the content of an indefinite-length array:
anything after the item becomes a second element or malformed input, except a break byte
(0xff), which would close the array early; a body containing 0xff is also decoded as the first
of a two-element array ``[body, null]``, where such a break is malformed.
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


def decode_item(data: bytes) -> Any:
    """Decode exactly one CBOR item of the protocol's types from ``data``."""
    try:
        items = _loads(b"".join((b"\x9f", data, b"\xff")))
        if len(items) == 1 and b"\xff" in data:
            # a break byte right after the item would have closed the array early
            _loads(b"".join((b"\x82", data, b"\xf6")))
    except ProtocolError:
        raise
    except Exception as exc:  # cbor2 raises several types for malformed input
        raise _why_malformed(data, exc) from None
    if not items:
        raise ProtocolError("malformed CBOR: no data item")
    value = items[0]
    if type(value) is dict:
        _check_map(value)
    elif type(value) is list:
        _check_list(value)
    if len(items) > 1:
        raise ProtocolError("bytes after the CBOR item")
    if isinstance(value, cbor2.CBORSimpleValue) or value is cbor2.undefined:
        raise ProtocolError("CBOR simple values are not part of the protocol")
    return value


def _why_malformed(data: bytes, exc: Exception) -> ProtocolError:
    """The error for a body the wrapped decoding refused: decoded alone (on the error path only)
    to tell bytes after the item from a malformed item."""
    stream = io.BytesIO(data)
    try:
        cbor2.CBORDecoder(
            stream,
            tag_hook=_reject_tag,
            semantic_decoders=_NO_SEMANTIC_TAGS,
            max_depth=MAX_DEPTH,
            allow_duplicate_keys=False,
        ).decode()
    except Exception as alone:
        return ProtocolError(f"malformed CBOR: {alone}")
    if stream.tell() != len(data):
        return ProtocolError(f"{len(data) - stream.tell()} bytes after the CBOR item")
    return ProtocolError(f"malformed CBOR: {exc}")


def decode_map(data: bytes) -> dict[str, Any]:
    """Decode a frame body, which must be one CBOR map."""
    value = decode_item(data)
    if not isinstance(value, dict):
        raise ProtocolError(f"a frame must hold a CBOR map, not {type(value).__name__}")
    return value
