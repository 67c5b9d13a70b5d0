"""Compaction: merging sorted row streams, purging, and the size-tiered strategy.

- :func:`merge_rows` merges any number of ``(token, key, row)`` streams, each in
  ``(token, key)`` order, into one, merging the rows of equal keys (last write wins per cell).
  Scans use it over memtables and sstables; compaction over sstables.
- :func:`purge_row` is :meth:`Row.purged` with Cassandra's overlap rule: a tombstone past
  gc_grace is only dropped if no data outside the compaction could be as old as it (otherwise
  dropping it would resurrect that data).
- :func:`size_tiered_buckets` groups sstables of similar size; a bucket with at least
  ``min_threshold`` members is compacted into one sstable (at most ``max_threshold`` at a time).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from ringd.db.cells import Cell, Row

T = TypeVar("T")

RowStream = Iterator[tuple[int, bytes, Row]]


def _token_key(item: tuple[int, bytes, Row]) -> tuple[int, bytes]:
    return item[0], item[1]


def merge_rows(sources: Sequence[Iterable[tuple[int, bytes, Row]]]) -> RowStream:
    """One ``(token, key, row)`` stream from many; rows of one key are merged. The rows handed
    in must be private to this merge (it merges into the first of each group in place)."""
    if not sources:
        return
    if len(sources) == 1:
        yield from sources[0]
        return
    cur_tok: int | None = None
    cur_key = b""
    cur_row: Row | None = None
    for tok, key, row in heapq.merge(*sources, key=_token_key):
        if cur_row is not None and tok == cur_tok and key == cur_key:
            cur_row.merge_in(row)
            continue
        if cur_row is not None:
            yield cur_tok, cur_key, cur_row  # type: ignore[misc]
        cur_tok, cur_key, cur_row = tok, key, row
    if cur_row is not None:
        yield cur_tok, cur_key, cur_row  # type: ignore[misc]


def row_min_timestamp(row: Row) -> int | None:
    """The oldest timestamp in ``row`` (safe to call while another thread merges into it)."""
    ts = [c[0] for c in list(row.cells.values())]
    tomb = row.tombstone
    if tomb is not None:
        ts.append(tomb.timestamp)
    return min(ts) if ts else None


def has_purgeable(row: Row, gc_before: int) -> bool:
    """Whether ``row`` holds a tombstone or TTL cell whose deletion time is before
    ``gc_before`` (only then does the overlap check matter)."""
    tomb = row.tombstone
    if tomb is not None and tomb.ldt < gc_before:
        return True
    for c in row.cells.values():
        ldt = c[2]
        if ldt is not None and ldt < gc_before:
            return True
    return False


def purge_row(row: Row, now: int, gc_before: int, max_purgeable: int | None) -> Row | None:
    """``row`` as compaction writes it: :meth:`Row.purged`, except that with
    ``max_purgeable`` set a tombstone is only dropped if its timestamp is below it (data that
    old or older may exist outside this compaction). ``None`` if nothing is left."""
    if max_purgeable is None:
        return row.purged(now, gc_before)
    row = row.normalized()
    cells: dict[str, Cell] = {}
    for name, cell in row.cells.items():
        if cell.value is not None and cell.ldt is not None and cell.ldt <= now:
            cell = Cell(cell.timestamp, None, cell.ldt)
        if (
            cell.value is None
            and cell.ldt is not None
            and cell.ldt < gc_before
            and cell.timestamp < max_purgeable
        ):
            continue
        cells[name] = cell
    tomb = row.tombstone
    if tomb is not None and tomb.ldt < gc_before and tomb.timestamp < max_purgeable:
        tomb = None
    if not cells and tomb is None:
        return None
    return Row(cells, tomb)


def purged_stream(
    rows: RowStream,
    now: int,
    gc_before: int,
    max_purgeable: Callable[[bytes], int | None],
) -> RowStream:
    """Purge every row of a merged stream; rows with nothing left are dropped."""
    for tok, key, row in rows:
        if row.tombstone is None:
            for c in row.cells.values():
                if c[2] is not None:
                    break
            else:  # plain live cells only: nothing to purge or convert
                yield tok, key, row
                continue
        bound = max_purgeable(key) if has_purgeable(row, gc_before) else None
        out = purge_row(row, now, gc_before, bound)
        if out is not None:
            yield tok, key, out


def size_tiered_buckets(
    items: Iterable[tuple[int, T]],
    bucket_low: float = 0.5,
    bucket_high: float = 1.5,
    min_sstable_size: int = 50 * 1024 * 1024,
) -> list[list[tuple[int, T]]]:
    """Group ``(size, item)`` pairs into buckets of similar size, as Cassandra's STCS does:
    a file joins a bucket if its size is within [low, high] x the bucket's average, and all
    files below ``min_sstable_size`` share one bucket."""
    buckets: list[tuple[float, list[tuple[int, T]]]] = []
    for size, item in sorted(items, key=lambda p: p[0]):
        for i, (avg, members) in enumerate(buckets):
            if (bucket_low * avg <= size <= bucket_high * avg) or (
                size < min_sstable_size and avg < min_sstable_size
            ):
                members.append((size, item))
                buckets[i] = ((avg * (len(members) - 1) + size) / len(members), members)
                break
        else:
            buckets.append((float(size), [(size, item)]))
    return [members for _avg, members in buckets]


def pick_compaction(
    items: Iterable[tuple[int, T]], min_threshold: int = 4, max_threshold: int = 32
) -> list[T]:
    """The next size-tiered compaction: the smallest files of the bucket with the smallest
    average size among those with at least ``min_threshold`` files; empty if none."""
    best: list[tuple[int, T]] | None = None
    best_avg = 0.0
    for members in size_tiered_buckets(items):
        if len(members) < min_threshold:
            continue
        chosen = members[:max_threshold]
        avg = sum(s for s, _ in chosen) / len(chosen)
        if best is None or avg < best_avg:
            best, best_avg = chosen, avg
    return [item for _s, item in best] if best else []


def estimate_pending(
    items: Iterable[tuple[int, T]], min_threshold: int = 4, max_threshold: int = 32
) -> int:
    """Roughly how many size-tiered compactions are waiting."""
    pending = 0
    for members in size_tiered_buckets(items):
        if len(members) >= min_threshold:
            pending += -(-len(members) // max_threshold)
    return pending
