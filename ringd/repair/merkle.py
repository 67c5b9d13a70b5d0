"""Merkle trees over a token range, built from each row's key and digest (validation).

The range ``(start, end]`` is cut into ``2**depth`` leaves of equal token width. A row's element
hash is ``blake2b(len(key) | key | row digest)``: the key is inside the hash, so equal rows under
different keys (or one row's content moved to another key) can never cancel out, the trap of
XORing bare content hashes. A leaf is the sum of its element hashes modulo 2**128 (order-free,
so replicas may scan in any order) together with its row count; an inner node hashes its two
children. Two replicas' trees of the same range and depth are compared top down, and only the
leaves that differ are synced row by row (``diff_rows``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from ringd.dht.tokens import MIN_TOKEN, RING_SIZE, Range

MAX_DEPTH = 16  # at most 65,536 leaves per range
ROWS_PER_LEAF = 32
_MOD = 1 << 128
_EMPTY = bytes(16)


def depth_for(rows: int) -> int:
    """The tree depth for a range holding about ``rows`` rows: ~ROWS_PER_LEAF rows a leaf."""
    depth = 0
    while depth < MAX_DEPTH and (ROWS_PER_LEAF << depth) < rows:
        depth += 1
    return depth


def element_hash(key: bytes, digest: bytes) -> int:
    h = hashlib.blake2b(len(key).to_bytes(4, "big") + key + digest, digest_size=16)
    return int.from_bytes(h.digest(), "big")


def _node(left: bytes, right: bytes) -> bytes:
    if left == _EMPTY and right == _EMPTY:
        return _EMPTY
    return hashlib.blake2b(left + right, digest_size=16).digest()


@dataclass
class MerkleTree:
    """A tree over ``range`` with ``2**depth`` leaves; :meth:`add` every row, then compare."""

    range: Range
    depth: int
    sums: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    _levels: list[list[bytes]] | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.depth <= MAX_DEPTH:
            raise ValueError(f"depth must be between 0 and {MAX_DEPTH}")
        n = 1 << self.depth
        if not self.sums:
            self.sums = [0] * n
            self.counts = [0] * n
        elif len(self.sums) != n or len(self.counts) != n:
            raise ValueError("leaf lists do not match the depth")

    @property
    def leaves(self) -> int:
        return 1 << self.depth

    def leaf_of(self, token: int) -> int:
        """The leaf holding ``token`` (which must be in the range)."""
        offset = (token - self.range.start) % RING_SIZE or RING_SIZE
        return ((offset - 1) * self.leaves) // self.range.width

    def leaf_range(self, i: int) -> Range:
        """Leaf ``i``'s own token range ``(start, end]``: the offsets ``o`` from the range's
        start with ``(o - 1) * leaves // width == i``."""
        width, n, start = self.range.width, self.leaves, self.range.start
        lo = start - (-i * width // n)
        hi = start - (-(i + 1) * width // n)
        return Range(_wrap(lo), _wrap(hi))

    def add(self, token: int, key: bytes, digest: bytes) -> None:
        i = self.leaf_of(token)
        self.sums[i] = (self.sums[i] + element_hash(key, digest)) % _MOD
        self.counts[i] += 1
        self._levels = None

    def leaf_hash(self, i: int) -> bytes:
        if not self.counts[i]:
            return _EMPTY
        data = self.sums[i].to_bytes(16, "big") + self.counts[i].to_bytes(8, "big")
        return hashlib.blake2b(data, digest_size=16).digest()

    def levels(self) -> list[list[bytes]]:
        """Hashes level by level, leaves first, the root last."""
        if self._levels is None:
            level = [self.leaf_hash(i) for i in range(self.leaves)]
            levels = [level]
            while len(level) > 1:
                level = [_node(level[i], level[i + 1]) for i in range(0, len(level), 2)]
                levels.append(level)
            self._levels = levels
        return self._levels

    @property
    def root(self) -> bytes:
        return self.levels()[-1][0]

    @property
    def rows(self) -> int:
        return sum(self.counts)

    def differences(self, other: MerkleTree) -> list[int]:
        """The leaves whose content differs from ``other``'s (same range and depth)."""
        if other.range != self.range or other.depth != self.depth:
            raise ValueError("only trees of the same range and depth can be compared")
        mine, theirs = self.levels(), other.levels()
        out: list[int] = []
        pending = [(len(mine) - 1, 0)]
        while pending:
            level, i = pending.pop()
            if mine[level][i] == theirs[level][i]:
                continue
            if level == 0:
                out.append(i)
            else:
                pending.extend(((level - 1, 2 * i + 1), (level - 1, 2 * i)))
        return sorted(out)

    def to_wire(self) -> dict[str, object]:
        return {
            "range": [self.range.start, self.range.end],
            "depth": self.depth,
            "sums": [s.to_bytes(16, "big") for s in self.sums],
            "counts": self.counts,
        }

    @classmethod
    def from_wire(cls, data: object) -> MerkleTree:
        """Parse :meth:`to_wire` output from a peer; ``ValueError`` on anything malformed."""
        if not isinstance(data, dict):
            raise ValueError("a Merkle tree must be a map")
        rng, depth, sums, counts = (data.get(k) for k in ("range", "depth", "sums", "counts"))
        if not (isinstance(rng, list) and len(rng) == 2 and type(depth) is int):
            raise ValueError("a Merkle tree needs a [start, end] range and a depth")
        if not (0 <= depth <= MAX_DEPTH and isinstance(sums, list) and isinstance(counts, list)):
            raise ValueError("bad Merkle tree depth or leaves")
        if len(sums) != 1 << depth or len(counts) != 1 << depth:
            raise ValueError("Merkle tree leaves do not match its depth")
        if not all(isinstance(s, bytes) and len(s) == 16 for s in sums):
            raise ValueError("Merkle leaf sums must be 16 bytes")
        if not all(type(c) is int and c >= 0 for c in counts):
            raise ValueError("Merkle leaf counts must be non-negative integers")
        return cls(
            Range(rng[0], rng[1]),
            depth,
            [int.from_bytes(s, "big") for s in sums],
            list(counts),
        )


def _wrap(token: int) -> int:
    return (token - MIN_TOKEN) % RING_SIZE + MIN_TOKEN


def diff_rows(
    mine: Iterable[tuple[bytes, bytes]], theirs: Iterable[tuple[bytes, bytes]]
) -> tuple[list[bytes], list[bytes]]:
    """Given each side's ``(key, digest)`` pairs of one leaf: the keys the other side needs
    from me, and the keys I need from it (a key whose digests differ goes both ways, so that
    each side merges the other's version)."""
    a, b = dict(mine), dict(theirs)
    send = sorted(k for k, d in a.items() if b.get(k) != d)
    fetch = sorted(k for k, d in b.items() if a.get(k) != d)
    return send, fetch
