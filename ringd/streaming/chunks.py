"""A stream chunk: rows of one token interval, CBOR-encoded, with a CRC32 over the bytes.

The source sends ``{"data": bytes, "crc": int, "rows": n, "next": [token, key] | None}``;
``data`` is the CBOR list ``[[token, key, row wire form], ...]``; ``next`` is where the next
chunk starts (None: the interval is done). The receiver checks the CRC before it decodes
anything, and every row before it applies any.
"""

from __future__ import annotations

import zlib
from typing import Any

import cbor2

from ringd.db.cells import Row
from ringd.dht.tokens import check_token
from ringd.protocol.errors import InvalidRequest

MAX_KEY_BYTES = 65536


class ChunkError(Exception):
    """A chunk that arrived damaged or malformed; the range is fetched again."""


def encode(rows: list[tuple[int, bytes, Row]]) -> tuple[bytes, int]:
    """The chunk's bytes and their CRC32."""
    data = cbor2.dumps([[t, k, r.to_wire()] for t, k, r in rows])
    return data, zlib.crc32(data)


def decode(data: Any, crc: Any) -> list[tuple[int, bytes, Row]]:
    """The rows of a chunk, after checking its CRC; ``ChunkError`` naming what is wrong."""
    if not isinstance(data, bytes) or type(crc) is not int:
        raise ChunkError("a chunk needs data bytes and an integer crc")
    if zlib.crc32(data) != crc:
        raise ChunkError(f"chunk CRC mismatch ({zlib.crc32(data):08x} != {crc:08x})")
    try:
        raw = cbor2.loads(data)
    except Exception as exc:  # cbor2 raises several kinds on garbage
        raise ChunkError(f"chunk is not CBOR: {exc}") from None
    if not isinstance(raw, list):
        raise ChunkError("chunk is not a list of rows")
    rows = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 3):
            raise ChunkError("each chunk row must be [token, key, row]")
        token, key, row = item
        if not isinstance(key, bytes) or not 0 < len(key) <= MAX_KEY_BYTES:
            raise ChunkError("chunk row key must be 1-65536 bytes")
        try:
            rows.append((check_token(token), key, Row.from_wire(row)))
        except ValueError as exc:
            raise ChunkError(f"bad chunk row {key!r}: {exc}") from None
    return rows


def cursor(raw: Any) -> tuple[int, bytes] | None:
    """A ``[token, key]`` cursor from the wire (None stays None); ``INVALID`` if malformed."""
    if raw is None:
        return None
    if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[1], bytes)):
        raise InvalidRequest("after must be [token, key] or null")
    try:
        return check_token(raw[0]), raw[1]
    except ValueError as exc:
        raise InvalidRequest(f"bad cursor: {exc}") from None
