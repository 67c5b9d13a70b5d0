"""Murmur3 partitioner: key bytes -> signed 64-bit token, exactly as Cassandra computes it.

This is a pure-Python port of Cassandra's ``org.apache.cassandra.utils.MurmurHash.hash3_x64_128``
(MurmurHash3 x64_128, seed 0) followed by ``Murmur3Partitioner.getToken``:

* blocks of 16 bytes are read as two little-endian 64-bit words;
* the tail bytes are read as *signed* Java bytes (sign-extended to long) before being shifted and
  xor-ed in.  This differs from the reference C implementation for tail bytes >= 0x80 and is what
  makes Cassandra's tokens "Cassandra's";
* the token is the first 64-bit half as a signed long, with ``Long.MIN_VALUE`` mapped to
  ``Long.MAX_VALUE`` (so no non-empty key ever hashes to the minimum token);
* the empty key maps to the minimum token, as ``Murmur3Partitioner.getToken`` does.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["MAX_TOKEN", "MIN_TOKEN", "murmur3_x64_128", "token_for"]

MIN_TOKEN: int = -(2**63)
MAX_TOKEN: int = 2**63 - 1

_MASK = 0xFFFFFFFFFFFFFFFF
_C1 = 0x87C37B91114253D5
_C2 = 0x4CF5AD432745937F
_SIGN = 0x8000000000000000
_TWO64 = 1 << 64
_HIGH_BITS = 0x8080808080808080


def _sign_extension_table() -> dict[int, int]:
    """Map the high bits set in a little-endian word of tail bytes to the ones that Java's
    sign extension of those bytes xors into the bits above each of them."""
    table: dict[int, int] = {}
    for pattern in range(1, 256):
        high = 0
        ext = 0
        for j in range(8):
            if pattern >> j & 1:
                high |= 0x80 << (8 * j)
                ext ^= (_MASK << (8 * (j + 1))) & _MASK
        table[high] = ext
    return table


_SIGN_EXTENSION: dict[int, int] = _sign_extension_table()


def _fmix(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _MASK
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _MASK
    k ^= k >> 33
    return k


def murmur3_x64_128(data: bytes, seed: int = 0) -> tuple[int, int]:
    """Return Cassandra's ``hash3_x64_128(data, seed)`` as two *unsigned* 64-bit ints."""
    length = len(data)
    nblocks = length >> 4
    h1 = seed & _MASK
    h2 = seed & _MASK
    mask = _MASK
    c1 = _C1
    c2 = _C2
    from_bytes = int.from_bytes

    for i in range(0, nblocks << 4, 16):
        k1 = from_bytes(data[i : i + 8], "little")
        k2 = from_bytes(data[i + 8 : i + 16], "little")

        k1 = (k1 * c1) & mask
        k1 = ((k1 << 31) | (k1 >> 33)) & mask
        k1 = (k1 * c2) & mask
        h1 ^= k1
        h1 = ((h1 << 27) | (h1 >> 37)) & mask
        h1 = (h1 + h2) & mask
        h1 = (h1 * 5 + 0x52DCE729) & mask

        k2 = (k2 * c2) & mask
        k2 = ((k2 << 33) | (k2 >> 31)) & mask
        k2 = (k2 * c1) & mask
        h2 ^= k2
        h2 = ((h2 << 31) | (h2 >> 33)) & mask
        h2 = (h2 + h1) & mask
        h2 = (h2 * 5 + 0x38495AB5) & mask

    rem = length & 15
    if rem:
        tail = nblocks << 4
        # Java's ``(long) key.get(i)`` sign-extends each tail byte: a byte >= 0x80 at position j
        # also xors ones into every bit above its own byte.  Read the tail unsigned, then apply
        # the extension for the set of high bits present (looked up, not looped).
        if rem > 8:
            k2 = from_bytes(data[tail + 8 : length], "little")
            high = k2 & _HIGH_BITS
            if high:
                k2 ^= _SIGN_EXTENSION[high]
            k2 = (k2 * c2) & mask
            k2 = ((k2 << 33) | (k2 >> 31)) & mask
            k2 = (k2 * c1) & mask
            h2 ^= k2
            k1 = from_bytes(data[tail : tail + 8], "little")
        else:
            k1 = from_bytes(data[tail:length], "little")
        high = k1 & _HIGH_BITS
        if high:
            k1 ^= _SIGN_EXTENSION[high]
        k1 = (k1 * c1) & mask
        k1 = ((k1 << 31) | (k1 >> 33)) & mask
        k1 = (k1 * c2) & mask
        h1 ^= k1

    h1 ^= length
    h2 ^= length
    h1 = (h1 + h2) & mask
    h2 = (h2 + h1) & mask
    h1 = _fmix(h1)
    h2 = _fmix(h2)
    h1 = (h1 + h2) & mask
    h2 = (h2 + h1) & mask
    return h1, h2


@lru_cache(maxsize=65536)
def token_for(key: bytes) -> int:
    """Return the Murmur3Partitioner token of ``key``: a signed 64-bit int.

    Equal to Cassandra's ``Murmur3Partitioner.getToken(key)``; the result is in
    ``[MIN_TOKEN, MAX_TOKEN]`` and only the empty key maps to ``MIN_TOKEN``.
    """
    if not key:
        return MIN_TOKEN
    h1 = murmur3_x64_128(key)[0]
    if h1 & _SIGN:
        h1 -= _TWO64
    if h1 == MIN_TOKEN:
        return MAX_TOKEN
    return h1
