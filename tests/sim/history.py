"""What the client did and saw, and the checks over it (see the package docstring for what
each check claims and why the system guarantees it today)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cbor2

from ringd.db.cells import Row

#: replicas a level needs (RF 3): a write acknowledged by w and a read answered by r replicas
#: intersect when w + r > RF
LEVEL_COUNT = {"ONE": 1, "QUORUM": 2, "ALL": 3}
RF = 3


@dataclass
class Write:
    op: int
    key: bytes
    kind: str  # "put" or "delete"
    value: int | None  # the put's value (its op number: unique)
    level: str
    issued: float
    ts: int | None = None  # set when the coordinator stamped it
    outcome: str = "pending"  # ok, UNAVAILABLE, WRITE_TIMEOUT, closed, timeout, ...
    acked_at: float | None = None
    coordinator: int = 0  # the node's index


@dataclass
class Read:
    op: int
    key: bytes
    level: str
    issued: float
    outcome: str = "pending"
    row: Row | None = None


@dataclass
class History:
    writes: dict[int, Write] = field(default_factory=dict)
    reads: dict[int, Read] = field(default_factory=dict)
    #: (key, timestamp) -> the write that used that timestamp (unique per key)
    by_ts: dict[tuple[bytes, int], Write] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)  # the operation log (replays identically)
    failures: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def stamped(self, write: Write, ts: int) -> None:
        write.ts = ts
        self.by_ts[(write.key, ts)] = write

    def acked(self, key: bytes, before: float, min_count: int) -> list[Write]:
        """Writes of ``key`` acknowledged to the client before ``before`` by at least
        ``min_count`` replicas."""
        return [
            w
            for w in self.writes.values()
            if w.key == key
            and w.outcome == "ok"
            and w.acked_at is not None
            and w.acked_at < before
            and LEVEL_COUNT[w.level] >= min_count
        ]

    def explain(self, what: str, key: bytes, row: Row | None) -> None:
        """Every version in ``row`` must be a write of ``key`` that the client issued with the
        same content, and never one that failed UNAVAILABLE (or never reached a node)."""
        if row is None:
            return
        versions: list[tuple[int, int | None]] = [
            (c.timestamp, None if c.value is None else cbor2.loads(c.value))
            for c in row.cells.values()
        ]
        if row.tombstone is not None:
            versions.append((row.tombstone.timestamp, None))
        for ts, value in versions:
            write = self.by_ts.get((key, ts))
            if write is None:
                self.fail(f"{what}: key {key!r} holds a version at {ts} that nobody wrote")
                continue
            if write.outcome in ("UNAVAILABLE", "refused"):
                self.fail(f"{what}: key {key!r} holds op {write.op}, which was {write.outcome}")
            if write.kind == "put" and value != write.value:
                self.fail(
                    f"{what}: key {key!r} at {ts} holds {value!r}, op {write.op} wrote {write.value}"
                )
            if write.kind == "delete" and (row.tombstone is None or row.tombstone.timestamp != ts):
                self.fail(f"{what}: key {key!r} at {ts} is a cell, op {write.op} was a delete")

    def check_read(self, what: str, key: bytes, level: str, issued: float, row: Row | None) -> None:
        """A read answered by r replicas sees every write acknowledged (before it was issued)
        by w replicas with w + r > RF: its newest version is at least as new."""
        self.explain(what, key, row)
        need = RF + 1 - LEVEL_COUNT[level]
        acked = self.acked(key, issued, need)
        if not acked:
            return
        newest = max(acked, key=lambda w: w.ts or 0)
        seen = row.max_timestamp() if row is not None else 0
        if seen < (newest.ts or 0):
            self.fail(
                f"{what}: read of {key!r} at {level} saw timestamp {seen}, but op {newest.op} "
                f"({newest.kind} at {newest.level}, ts {newest.ts}) was acknowledged before it"
            )


def describe_row(row: Row | None) -> Any:
    if row is None:
        return None
    cells = {
        n: (c.timestamp, None if c.value is None else cbor2.loads(c.value))
        for n, c in row.cells.items()
    }
    return [cells, None if row.tombstone is None else row.tombstone.timestamp]
