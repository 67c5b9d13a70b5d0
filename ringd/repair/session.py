"""Repairing one token range among its replicas: compare trees, then sync only differing rows.

1. *Validation*: every participant builds its Merkle tree of the range (same depth).
2. *Comparison*: every pair of trees is compared; the pair is in sync or names its differing
   leaves (this is what ``--preview`` reports, per pair).
3. *Row-level sync* (Scylla's way, not Cassandra's whole-leaf streaming): for the union of
   differing leaves, every participant lists the ``(key, digest)`` pairs of its rows there; for
   each key whose digests disagree, the coordinator fetches one copy of each distinct version,
   merges them by the cell rules, and sends the merged row to each participant whose digest
   differs from the merge. A leaf of 1,000 rows with one stale row moves one row. Rows keep
   their timestamps and tombstones.

A ``Participant`` is one replica as the coordinator reaches it: the local engine in-process, or
a peer over the wire (``ringd.repair.verbs``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from typing import Protocol

from ringd.db.cells import Row, row_digest
from ringd.dht.tokens import Range
from ringd.repair.merkle import MerkleTree


class Participant(Protocol):
    async def tree(self, keyspace: str, rng: Range, depth: int) -> MerkleTree: ...

    async def leaf_digests(
        self, keyspace: str, ranges: list[Range]
    ) -> list[list[tuple[bytes, bytes]]]: ...

    async def rows(self, keyspace: str, keys: list[bytes]) -> dict[bytes, Row]: ...

    async def apply(self, keyspace: str, rows: list[tuple[bytes, Row]]) -> None: ...


@dataclass
class RangeResult:
    range: Range
    rows: int = 0  # rows validated, summed over participants
    out_of_sync: dict[tuple[str, str], int] = field(default_factory=dict)  # pair -> leaves
    in_sync: list[tuple[str, str]] = field(default_factory=list)
    rows_compared: int = 0
    rows_streamed: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # to host
    bytes_streamed: int = 0  # (with preview: what would be streamed)

    @property
    def consistent(self) -> bool:
        return not self.out_of_sync


async def repair_range(
    keyspace: str,
    rng: Range,
    participants: dict[str, Participant],
    depth: int,
    *,
    preview: bool = False,
) -> RangeResult:
    """Validate ``rng`` on every participant, compare, and sync (with ``preview``, only count
    what would be streamed: rows are read, nothing is written)."""
    result = RangeResult(rng)
    trees = {h: await p.tree(keyspace, rng, depth) for h, p in participants.items()}
    result.rows = sum(t.rows for t in trees.values())
    leaves: set[int] = set()
    for a, b in combinations(sorted(trees), 2):
        diff = trees[a].differences(trees[b])
        if diff:
            result.out_of_sync[(a, b)] = len(diff)
            leaves.update(diff)
        else:
            result.in_sync.append((a, b))
    if not leaves:
        return result
    any_tree = next(iter(trees.values()))
    leaf_ranges = [any_tree.leaf_range(i) for i in sorted(leaves)]
    digests: dict[str, dict[bytes, bytes]] = {}
    for host, p in participants.items():
        pairs = await p.leaf_digests(keyspace, leaf_ranges)
        digests[host] = {k: d for leaf in pairs for k, d in leaf}
    keys = sorted({k for per_host in digests.values() for k in per_host})
    result.rows_compared = len(keys)
    differing = [k for k in keys if len({per_host.get(k) for per_host in digests.values()}) > 1]
    await _sync(keyspace, differing, participants, digests, result, apply=not preview)
    return result


async def _sync(
    keyspace: str,
    keys: list[bytes],
    participants: dict[str, Participant],
    digests: dict[str, dict[bytes, bytes]],
    result: RangeResult,
    *,
    apply: bool,
) -> None:
    # fetch one copy of each distinct version of each key, from a host that holds it
    wanted: dict[str, list[bytes]] = defaultdict(list)
    for key in keys:
        seen: set[bytes] = set()
        for host in sorted(digests):
            d = digests[host].get(key)
            if d is not None and d not in seen:
                seen.add(d)
                wanted[host].append(key)
    merged: dict[bytes, Row] = {}
    for host, host_keys in wanted.items():
        for key, row in (await participants[host].rows(keyspace, host_keys)).items():
            merged[key] = row if key not in merged else merged[key].merge(row)
    # send the merge to every participant whose version differs from it
    outgoing: dict[str, list[tuple[bytes, Row]]] = defaultdict(list)
    for key, row in merged.items():
        target = row_digest(row)
        for host in digests:
            if digests[host].get(key) != target:
                outgoing[host].append((key, row))
    for host, rows in outgoing.items():
        if apply:
            await participants[host].apply(keyspace, rows)
        result.rows_streamed[host] += len(rows)
        result.bytes_streamed += sum(len(k) + row_size(r) for k, r in rows)


def row_size(row: Row) -> int:
    """Bytes a repaired row counts for in the streaming counters (coordinator and participant)."""
    return sum(len(name) + len(c.value or b"") + 24 for name, c in row.cells.items()) + 16
