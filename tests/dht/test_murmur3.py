"""Murmur3 tokens against values published by Cassandra drivers (computed by Cassandra)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringd.dht.murmur3 import MAX_TOKEN, MIN_TOKEN, murmur3_x64_128, token_for

# Source A: datastax/python-driver, tests/unit/test_metadata.py, ``_verify_hash``
#   (test_murmur3_python / test_murmur3_c). The same five values appear in the DataStax Ruby
#   driver's Murmur3 partitioner spec.
SOURCE_A: list[tuple[bytes, int]] = [
    (b"123", -7468325962851647638),
    (b"\x00\xff\x10\xfa\x99" * 10, 5837342703291459765),  # 50 bytes: 3 blocks + 2-byte tail
    (b"\xfe" * 8, -8927430733708461935),  # 8-byte tail, every byte >= 0x80
    (b"\x10" * 8, 1446172840243228796),
    (b"9223372036854775807", 7162290910810015547),  # str(Long.MAX_VALUE), 19 bytes
]

# Source B: datastax/csharp-driver, src/Cassandra.Tests/TokenTests.cs, ``Murmur_Hash_Test``
#   ("inputs and result values from Cassandra").
SOURCE_B: list[tuple[bytes, int]] = [
    (bytes(range(1, 17)), -5563837382979743776),
    (bytes(range(2, 18)), -1513403162740402161),
    (bytes(range(3, 19)), -495360443712684655),
    (bytes(range(4, 20)), 1734091135765407943),
    (bytes(range(5, 21)), -3199412112042527988),
    (bytes(range(6, 22)), -6316563938475080831),
    (bytes(range(7, 23)), 8228893370679682632),
    (bytes(16), 5457549051747178710),
    (b"\xff" * 16, -2824192546314762522),
    (b"\xfe" * 16, -833317529301936754),
    (bytes([0, 1, 2, 3]) + b"\xff" * 12, 6463632673159404390),
    (b"\xfe" * 17, -1672437813826982685),  # one block + a 1-byte tail >= 0x80
    (b"\xfe" * 4, 4566408979886474012),  # signed-byte quirk in the tail
    (bytes(4), -3485513579396041028),
    (bytes([0, 1, 127, 127]), 6573459401642635627),
    (bytes([0, 255, 255, 255]), 123573637386978882),  # signed-byte quirk in the tail
    (bytes([255, 1, 2, 3]), -2839127690952877842),  # 0xff low byte sign-extends over the rest
    (bytes([226, 231]), -8582699461035929883),
    (bytes([226, 231, 226, 231, 226, 231, 1]), 2222373981930033306),
]

# Source C: apache/cassandra-gocql-driver (gocql), internal/murmur/murmur_test.go,
#   ``TestMurmur3H1ForCassandra``: "prefix" followed by 1..17 counting bytes, then a second run
#   with tail bytes 0xc8.. (>= 0x80), covering every tail length 0..15 and both tail halves.
_P1 = b"prefix" + bytes(range(16)) + b"\xc8"
_P2 = b"prefix" + bytes(range(16)) + b"\xc8\xc9"
_P2_TAIL = bytes(range(0xCA, 0xD8))
SOURCE_C: list[tuple[bytes, int]] = [
    (_P1[:7], -5156414768376541762),
    (_P1[:8], 3700033067394128583),
    (_P1[:9], -3973852022020331202),
    (_P1[:10], 3038655072509758878),
    (_P1[:11], -5681686890369564299),
    (_P1[:12], 8960422816272944721),
    (_P1[:13], -1104872167714568090),
    (_P1[:14], -9199676315897541990),
    (_P1[:15], 4847624695450664884),
    (_P1[:16], -2737291859101550625),
    (_P1[:17], -1154133289533387924),
    (_P1[:18], 5781349077088505981),
    (_P1[:19], -681021187788781932),
    (_P1[:20], -3787130296809111096),
    (_P1[:21], -3115393326357146996),
    (_P1[:22], -2684252762052835206),
    (_P1[:23], -278181328349571586),
    (_P2, -5319761130493488577),
    (_P2 + _P2_TAIL[:1], -4593148434938707926),
    (_P2 + _P2_TAIL[:2], -575713103357290760),
    (_P2 + _P2_TAIL[:3], 4290743753678124926),
    (_P2 + _P2_TAIL[:4], 9164754117279683406),
    (_P2 + _P2_TAIL[:5], -107668053986278786),
    (_P2 + _P2_TAIL[:6], 64887291506465003),
    (_P2 + _P2_TAIL[:7], 6241282934480161521),
    (_P2 + _P2_TAIL[:8], 5150183507841894143),
    (_P2 + _P2_TAIL[:9], 5645797256444299552),
    (_P2 + _P2_TAIL[:10], -908235285856554578),
    (_P2 + _P2_TAIL[:11], -1785405279637408062),
    (_P2 + _P2_TAIL[:12], 5343233714768265848),
    (_P2 + _P2_TAIL[:13], 4936964276934412722),
    (_P2 + _P2_TAIL[:14], 2294903531026336836),
    (
        b"\x00\x10C'R\x9f\xb6E\xdd\x00\xb8\x83\xec9\xaeD\x8b\xb8\x00\x00\x04\x00\x06jk\x00",
        -9223371632693506265,
    ),
]

ALL_VECTORS = SOURCE_A + SOURCE_B + SOURCE_C


@pytest.mark.parametrize(("key", "token"), ALL_VECTORS)
def test_known_vectors(key: bytes, token: int) -> None:
    assert token_for(key) == token


def test_vectors_cover_tails_and_signed_bytes() -> None:
    keys = [k for k, _ in ALL_VECTORS]
    assert {len(k) % 16 for k in keys} == set(range(16))
    assert any(any(b >= 0x80 for b in k[len(k) - len(k) % 16 :]) for k in keys)


def test_empty_key_is_min_token() -> None:
    # Murmur3Partitioner.getToken returns MINIMUM for an empty key.
    assert token_for(b"") == MIN_TOKEN
    assert murmur3_x64_128(b"") == (0, 0)


@given(st.binary(min_size=1, max_size=80))
def test_token_range_and_determinism(key: bytes) -> None:
    t = token_for(key)
    assert MIN_TOKEN < t <= MAX_TOKEN
    assert token_for(bytes(key)) == t
    h1, h2 = murmur3_x64_128(key)
    assert 0 <= h1 < 2**64 and 0 <= h2 < 2**64


def _reference_tail_words(tail: bytes) -> tuple[int, int]:
    """The tail read byte by byte exactly as Cassandra's switch does: ``(long) key.get(i)``
    sign-extends each byte, then it is shifted into place (truncated to 64 bits)."""
    mask = 0xFFFFFFFFFFFFFFFF
    k1 = 0
    k2 = 0
    for j, b in enumerate(tail):
        signed = b - 256 if b >= 0x80 else b
        if j >= 8:
            k2 ^= (signed << (8 * (j - 8))) & mask
        else:
            k1 ^= (signed << (8 * j)) & mask
    return k1, k2


@given(st.binary(min_size=1, max_size=15))
def test_tail_sign_extension_matches_bytewise_reading(tail: bytes) -> None:
    from ringd.dht.murmur3 import _HIGH_BITS, _SIGN_EXTENSION

    expected = _reference_tail_words(tail)
    words = []
    for part in (tail[:8], tail[8:]):
        k = int.from_bytes(part, "little")
        if k & _HIGH_BITS:
            k ^= _SIGN_EXTENSION[k & _HIGH_BITS]
        words.append(k)
    assert tuple(words) == expected
