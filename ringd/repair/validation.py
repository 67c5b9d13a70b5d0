"""Validation: a replica's Merkle tree of a token range, and the (key, digest) pairs of a leaf.

Both scan the local storage engine in token order; rows that are only tombstones are included
(a tombstone one replica lacks is exactly what repair must move). The scan of a range wrapping
past the last token is two scans, one per inclusive token interval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from ringd.db.cells import Row, row_digest
from ringd.dht.tokens import MIN_TOKEN, Range
from ringd.repair.merkle import MerkleTree

# sorts after every key of a token (keys are far shorter)
_AFTER_ALL_KEYS = b"\xff" * (1 << 17)


class Scannable(Protocol):
    def scan(
        self, keyspace: str, after: tuple[int, bytes] | None = None, end_token: int | None = None
    ) -> Iterator[tuple[int, bytes, Row]]: ...


def rows_in(engine: Scannable, keyspace: str, rng: Range) -> Iterator[tuple[int, bytes, Row]]:
    """Every stored ``(token, key, row)`` whose token is in ``rng``."""
    for lo, hi in rng.intervals():
        after = None if lo == MIN_TOKEN else (lo - 1, _AFTER_ALL_KEYS)
        yield from engine.scan(keyspace, after, hi)


def build_tree(engine: Scannable, keyspace: str, rng: Range, depth: int) -> MerkleTree:
    tree = MerkleTree(rng, depth)
    for token, key, row in rows_in(engine, keyspace, rng):
        tree.add(token, key, row_digest(row))
    return tree


def leaf_digests(engine: Scannable, keyspace: str, rng: Range) -> list[tuple[bytes, bytes]]:
    """The ``(key, row digest)`` pairs of the rows in ``rng`` (one leaf), in token order."""
    return [(key, row_digest(row)) for _, key, row in rows_in(engine, keyspace, rng)]


class Engine(Scannable, Protocol):
    def read(self, keyspace: str, key: bytes) -> Row | None: ...

    async def prepare_scan(self, keyspace: str) -> None: ...

    def stats(self) -> dict[str, dict[str, int]]: ...

    async def apply(
        self, keyspace: str, key: bytes, update: Row, token: int | None = None
    ) -> None: ...

    def apply_then(
        self,
        keyspace: str,
        key: bytes,
        update: Row,
        token: int | None,
        done: Callable[[BaseException | None], None],
    ) -> None: ...
