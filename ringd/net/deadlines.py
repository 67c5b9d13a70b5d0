"""One timer for many timeouts: a heap of deadlines and one task that fires them.

Used where many requests each need a timeout (the calls of a channel, the coordinator's reads
and writes) instead of a cancel scope and an event per request. Adding a deadline is a heap
push; cancelling marks it and drops cancelled entries from the top of the heap.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import Callable

import trio

log = logging.getLogger(__name__)


class Deadline:
    """A scheduled call; :meth:`Deadlines.cancel` it when the work finished in time."""

    __slots__ = ("when", "seq", "fn")

    def __init__(self, when: float, seq: int, fn: Callable[[], None] | None) -> None:
        self.when = when
        self.seq = seq
        self.fn = fn


class Deadlines:
    """Calls ``fn`` at its deadline unless cancelled first. Start :meth:`run` in a nursery."""

    def __init__(self) -> None:
        #: (when, seq, deadline): tuples compare in C, which keeps a push cheap
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._wake: trio.Event | None = None
        self._next = math.inf  # the deadline the runner sleeps until

    def __len__(self) -> int:
        return len(self._heap)

    def after(self, seconds: float, fn: Callable[[], None]) -> Deadline:
        """Call ``fn`` in ``seconds`` (no deadline at all if ``seconds`` is not positive)."""
        if seconds <= 0 or seconds == math.inf:
            return Deadline(math.inf, 0, None)
        when = trio.current_time() + seconds
        seq = next(self._seq)
        entry = Deadline(when, seq, fn)
        heapq.heappush(self._heap, (when, seq, entry))
        if when < self._next and self._wake is not None:
            self._wake.set()
        return entry

    def cancel(self, entry: Deadline) -> None:
        entry.fn = None
        heap = self._heap
        while heap and heap[0][2].fn is None:
            heapq.heappop(heap)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        heap = self._heap
        while True:
            self._wake = trio.Event()
            self._next = heap[0][0] if heap else math.inf
            with trio.move_on_at(self._next):
                await self._wake.wait()
            now = trio.current_time()
            while heap and (heap[0][2].fn is None or heap[0][0] <= now):
                entry = heapq.heappop(heap)[2]
                fn, entry.fn = entry.fn, None
                if fn is not None:
                    try:
                        fn()
                    except Exception:
                        log.exception("a timeout callback failed")
