"""The hybrid logical clock that stamps writes, in integer microseconds.

``now()`` is the larger of the (possibly offset) wall clock and one past the last timestamp given
or observed, so it never goes backwards and always moves past any timestamp seen from a peer:
one skewed clock cannot order a newer write before an older one it has observed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

MAX_FORWARD_US = 60 * 1_000_000


class HybridClock:
    """Timestamps from the wall clock, never backwards, past every timestamp observed.

    An observed timestamp more than ``max_forward_us`` ahead of this node's wall clock is not
    adopted (and counted in ``ignored``): one peer with a wild clock cannot drag every node's
    timestamps into the future.
    """

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        offset_ms: int = 0,
        max_forward_us: int = MAX_FORWARD_US,
    ) -> None:
        self._wall = wall
        self.offset_ms = offset_ms
        self.max_forward_us = max_forward_us
        self.ignored = 0
        self._last = 0

    def wall_seconds(self) -> float:
        """This node's wall clock (with its test offset), in seconds."""
        return self._wall() + self.offset_ms / 1000.0

    def set_offset(self, offset_ms: int) -> None:
        """Test hook: shift the wall clock. Lowering the offset also takes back the timestamps
        the higher offset ran ahead (so a reset hook leaves no clock in the future): the one
        place where ``now()`` may go backwards."""
        self.offset_ms = offset_ms
        self._last = min(self._last, int(self.wall_seconds() * 1_000_000))

    def now(self) -> int:
        """A fresh timestamp in microseconds, greater than every earlier one."""
        wall = int(self.wall_seconds() * 1_000_000)
        last = self._last + 1
        self._last = wall if wall > last else last
        return self._last

    def observe(self, timestamp: int) -> None:
        """Note a timestamp seen from a peer: later ``now()`` values will exceed it."""
        if timestamp > self._last:
            if timestamp - self.wall_seconds() * 1_000_000 > self.max_forward_us:
                self.ignored += 1
                return
            self._last = timestamp

    def peek(self) -> int:
        return max(self._last, int(self.wall_seconds() * 1_000_000))
