"""A byte-rate limit shared by every stream session of a node (``stream_throughput_mb_per_s``)."""

from __future__ import annotations

import trio


class Throttle:
    """``consume(n)`` returns once ``n`` more bytes fit in ``mb_per_s`` since the first bytes
    (0: no limit); time not used is not saved up for a burst later."""

    def __init__(self, mb_per_s: float) -> None:
        self.rate = mb_per_s * 1024 * 1024
        self._next = 0.0

    async def consume(self, nbytes: int) -> None:
        if self.rate <= 0:
            await trio.lowlevel.checkpoint()
            return
        self._next = max(self._next, trio.current_time()) + nbytes / self.rate
        await trio.sleep_until(self._next)
