"""The frame-body codec: round trips, strictness, and nothing but ProtocolError on bad bytes."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringd.protocol import codec
from ringd.protocol.errors import ProtocolError

scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary()
values = st.recursive(
    scalars | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@given(st.dictionaries(st.text(), values, max_size=8))
def test_round_trip(message: dict) -> None:
    assert codec.decode_map(codec.encode(message)) == message


@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_protocol_error(data: bytes) -> None:
    try:
        codec.decode_map(data)
    except ProtocolError:
        pass


@given(st.dictionaries(st.text(), values, max_size=4), st.binary(min_size=1, max_size=64))
def test_mutated_valid_frames_raise_only_protocol_error(message: dict, noise: bytes) -> None:
    data = bytearray(codec.encode(message))
    for i, b in enumerate(noise):
        if data:
            data[(b * 7 + i) % len(data)] ^= b
    try:
        codec.decode_map(bytes(data))
    except ProtocolError:
        pass


@pytest.mark.parametrize(
    ("hex_body", "why"),
    [
        ("01", "frame must hold a CBOR map"),
        ("a1010203", "map keys must be text"),
        ("c11a514b67b0", "tags"),  # tag 1 (epoch datetime)
        ("d81c81d81d00", "tags"),  # shared references (tags 28/29)
        ("c249010000000000000000", "tags"),  # bignum
        ("a2616101616102", "Duplicate"),
        ("a1616101ff", "after the CBOR item"),
        ("a16161", "malformed"),
        ("f7", "not part of the protocol"),
        ("a1616181a10102", "map keys must be text"),  # {"a": [{1: 2}]}
        ("a16161a1416201", "map keys must be text"),  # {"a": {b"b": 1}} (bytes key)
        ("a1616101f6", "after the CBOR item"),  # a trailing null
        ("a161610182", "after the CBOR item"),  # a trailing unfinished array
        # lengths far beyond the body: refused without allocating them, with and without a
        # 0xff byte (the two ways decode_item decodes)
        ("a161619b0000000100000000", "malformed"),  # {"a": array of 2**32 items}
        ("a161619b0000000100000000ff", "malformed"),
        ("a16161bb0000000100000000ff", "malformed"),  # map of 2**32 pairs
        ("a161615b0000010000000000", "malformed"),  # bytes of 2**40
        ("a161617b0000010000000000ff", "malformed"),  # text of 2**40
    ],
)
def test_rejects(hex_body: str, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        codec.decode_map(bytes.fromhex(hex_body))


@given(st.dictionaries(st.text(), values, max_size=4), st.binary(min_size=1, max_size=16))
def test_anything_after_the_item_is_refused(message: dict, extra: bytes) -> None:
    with pytest.raises(ProtocolError):
        codec.decode_map(codec.encode(message) + extra)


@pytest.mark.parametrize("leaf", [1, b"\xff"], ids=["plain", "with-a-break-byte"])
def test_nesting_is_bounded(leaf: object) -> None:
    """The same depth is accepted whether or not the body holds a 0xff byte (the two ways
    decode_item decodes)."""

    def nested(levels: int) -> dict[str, object]:
        deep: object = leaf
        for _ in range(levels):
            deep = [deep]
        return {"a": deep}

    deepest = nested(codec.MAX_DEPTH - 1)  # the map and its lists: MAX_DEPTH containers
    assert codec.decode_map(cbor2.dumps(deepest)) == deepest
    for levels in (codec.MAX_DEPTH, codec.MAX_DEPTH + 5):
        with pytest.raises(ProtocolError, match="depth"):
            codec.decode_map(cbor2.dumps(nested(levels)))
