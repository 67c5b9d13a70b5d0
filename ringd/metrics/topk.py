"""The hottest keys of a stream in bounded memory: Space-Saving (Metwally, Agrawal and El
Abbadi, 2005), the stream-summary nodetool's ``toppartitions`` uses.

``SpaceSaving(capacity)`` keeps at most ``capacity`` counters. A key already counted adds one; a
new key takes a free counter, or else replaces a key with the smallest count ``m`` and starts at
``m + 1`` with error ``m``. Every key seen more than ``total / capacity`` times is kept, and a
kept key's true count lies in ``[count - error, count]``. Counters are grouped by count, so an
offer is O(1).
"""

from __future__ import annotations

from typing import Any


class SpaceSaving:
    __slots__ = ("capacity", "total", "_counts", "_errors", "_by_count", "_min")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.total = 0  # keys offered
        self._counts: dict[bytes, int] = {}
        self._errors: dict[bytes, int] = {}
        self._by_count: dict[int, set[bytes]] = {}  # count -> keys with that count
        self._min = 0  # the smallest count held (0 while none)

    def __len__(self) -> int:
        return len(self._counts)

    def offer(self, key: bytes) -> None:
        self.total += 1
        counts = self._counts
        count = counts.get(key)
        if count is None:
            if len(counts) < self.capacity:
                count, error = 0, 0
                self._min = 1
            else:  # evict a key with the smallest count; the newcomer inherits it as error
                smallest = self._by_count[self._min]
                evicted = smallest.pop()
                count = error = counts.pop(evicted)
                del self._errors[evicted]
                if not smallest:  # every other key counts more; the newcomer m + 1
                    del self._by_count[count]
                    self._min = count + 1
            self._errors[key] = error
        else:
            keys = self._by_count[count]
            keys.discard(key)
            if not keys:
                del self._by_count[count]
                if self._min == count:
                    self._min = count + 1
        counts[key] = count + 1
        self._by_count.setdefault(count + 1, set()).add(key)

    def top(self, k: int) -> list[tuple[bytes, int, int]]:
        """The ``k`` keys with the highest counts: ``(key, count, error)``, highest first."""
        ranked = sorted(self._counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [(key, count, self._errors[key]) for key, count in ranked]


class Sampler:
    """One ``toppartitions`` sampling of a keyspace: the keys its local reads and writes touch."""

    __slots__ = ("reads", "writes")

    def __init__(self, capacity: int) -> None:
        self.reads = SpaceSaving(capacity)
        self.writes = SpaceSaving(capacity)

    def summary(self, k: int, show: Any) -> dict[str, Any]:
        """Per sampler: keys offered, keys tracked, and the top ``k`` as ``{"key": show(key),
        "count", "error"}``."""
        return {
            name: {
                "sampled": s.total,
                "tracked": len(s),
                "top": [
                    {"key": show(key), "count": count, "error": error}
                    for key, count, error in s.top(k)
                ],
            }
            for name, s in (("reads", self.reads), ("writes", self.writes))
        }
