"""Strict CBOR for frame bodies: one data item, a map with text keys, no tags, bounded nesting.

A fresh decoder per frame; anything that is not exactly one well-formed item of the allowed types
raises ``ProtocolError`` (never another exception).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import cbor2

from ringd.protocol.errors import ErrorCode, ProtocolError

MAX_DEPTH = 32


def _reject_tag(*_: Any) -> Any:
    raise cbor2.CBORDecodeError("CBOR tags are not part of the protocol")


def _check_keys(value: Mapping[Any, Any], immutable: bool) -> Mapping[Any, Any]:
    for key in value:
        if type(key) is not str:
            raise cbor2.CBORDecodeError("map keys must be text strings")
    return value


# Every semantic tag cbor2 knows of is routed to a rejecting decoder; others reach the tag hook.
_NO_SEMANTIC_TAGS = {tag: _reject_tag for tag in range(0, 1 << 16)}


def encode(value: Any) -> bytes:
    """The CBOR encoding of ``value`` (maps, lists, text, bytes, ints, floats, bools, null)."""
    try:
        return cbor2.dumps(value)
    except (cbor2.CBOREncodeError, TypeError, ValueError) as exc:
        raise ProtocolError(f"cannot encode: {exc}", ErrorCode.SERVER_ERROR) from None


def decode_item(data: bytes) -> Any:
    """Decode exactly one CBOR item of the protocol's types from ``data``."""
    stream = io.BytesIO(data)
    try:
        decoder = cbor2.CBORDecoder(
            stream,
            tag_hook=_reject_tag,
            object_hook=_check_keys,
            semantic_decoders=_NO_SEMANTIC_TAGS,
            max_depth=MAX_DEPTH,
            allow_duplicate_keys=False,
        )
        value = decoder.decode()
    except ProtocolError:
        raise
    except Exception as exc:  # cbor2 raises several types for malformed input
        raise ProtocolError(f"malformed CBOR: {exc}") from None
    if stream.tell() != len(data):
        raise ProtocolError(f"{len(data) - stream.tell()} bytes after the CBOR item")
    if isinstance(value, cbor2.CBORSimpleValue) or value is cbor2.undefined:
        raise ProtocolError("CBOR simple values are not part of the protocol")
    return value


def decode_map(data: bytes) -> dict[str, Any]:
    """Decode a frame body, which must be one CBOR map."""
    value = decode_item(data)
    if not isinstance(value, dict):
        raise ProtocolError(f"a frame must hold a CBOR map, not {type(value).__name__}")
    return value
