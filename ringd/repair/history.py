"""When each token range of each keyspace was last repaired, and with whom (kept on disk).

Every completed range is recorded as ``(start, end, when, participants)``. The last repair of
an arbitrary range ``R`` is found by walking the records newest first until they cover ``R``:
the time of the record that completes the cover. A range no records cover was never repaired.
This answers both ``ringctl repair status`` (the oldest last-repair among a node's ranges) and
the start-up check that refuses stale data past gc_grace.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cbor2

from ringd.dht.tokens import RING_SIZE, Range
from ringd.fsutil import atomic_write

log = logging.getLogger(__name__)

MAX_RECORDS = 20_000  # per keyspace; the oldest go first


def _offsets(r: Range, base: Range) -> list[tuple[int, int]]:
    """The part of ``r`` inside ``base`` as half-open offset intervals ``[a, b)`` from
    ``base.start`` (offset 0 is the token just after ``base.start``)."""
    width = base.width
    if r.is_full:
        return [(0, width)]
    a = (r.start - base.start) % RING_SIZE
    b = a + r.width
    out = []
    for lo, hi in ((a, b), (a - RING_SIZE, b - RING_SIZE), (a + RING_SIZE, b + RING_SIZE)):
        lo, hi = max(lo, 0), min(hi, width)
        if lo < hi:
            out.append((lo, hi))
    return out


def _covered(intervals: Iterable[tuple[int, int]], width: int) -> bool:
    reach = 0
    for lo, hi in sorted(intervals):
        if lo > reach:
            return False
        reach = max(reach, hi)
    return reach >= width


class RepairHistory:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, list[tuple[int, int, float, list[str]]]] = {}
        if path.exists():
            try:
                raw = cbor2.loads(path.read_bytes())
                self.records = {
                    str(ks): [
                        (int(s), int(e), float(t), [str(p) for p in ps]) for s, e, t, ps in rows
                    ]
                    for ks, rows in dict(raw).items()
                }
            except Exception as exc:  # losing history means repairing again, not losing data
                log.warning("ignoring damaged repair history %s: %s", path, exc)

    def record(self, keyspace: str, rng: Range, when: float, participants: list[str]) -> None:
        rows = self.records.setdefault(keyspace, [])
        rows.append((rng.start, rng.end, when, sorted(participants)))
        if len(rows) > MAX_RECORDS:
            rows.sort(key=lambda r: r[2])
            del rows[: len(rows) - MAX_RECORDS]

    def encoded(self) -> bytes:
        """The file's content now (take it in the event loop; write it anywhere)."""
        return cbor2.dumps({ks: [list(r) for r in rows] for ks, rows in self.records.items()})

    def save(self) -> None:
        atomic_write(self.path, self.encoded())

    def forget(self, keyspace: str) -> None:
        self.records.pop(keyspace, None)

    def last_repaired(self, keyspace: str, rng: Range) -> float | None:
        """When all of ``rng`` was last repaired (the oldest of the newest records that cover
        it); None if it never was."""
        intervals: list[tuple[int, int]] = []
        for start, end, when, _ in sorted(self.records.get(keyspace, ()), key=lambda r: -r[2]):
            intervals.extend(_offsets(Range(start, end), rng))
            if _covered(intervals, rng.width):
                return when
        return None

    def describe(self, keyspace: str) -> list[dict[str, Any]]:
        return [
            {"range": [str(s), str(e)], "completed_at": t, "participants": ps}
            for s, e, t, ps in sorted(self.records.get(keyspace, ()), key=lambda r: -r[2])
        ]
