"""One worker thread for a commit log's fsyncs.

``trio.to_thread.run_sync`` costs a thread-cache hand-off, an OS thread rename and an outcome
per call; the group commit makes one such call per batch, so at one write in flight it is a
large part of the node's CPU. :class:`SyncThread` keeps one thread that takes jobs from a queue
and reschedules the waiting task directly. The thread exits after ``IDLE_S`` without work and
is started again by the next job.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import outcome
import trio

T = TypeVar("T")

IDLE_S = 10.0


class SyncThread:
    def __init__(self, name: str = "ringd commit log sync") -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running = False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the worker thread; its result or exception. Not cancellable (the
        caller's cancellation waits for ``fn``, as with ``abandon_on_cancel=False``)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        token = trio.lowlevel.current_trio_token()
        task = trio.lowlevel.current_task()

        def job() -> None:
            result = outcome.capture(fn, *args)
            token.run_sync_soon(trio.lowlevel.reschedule, task, result)

        self._submit(job)
        result: T = await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)
        return result

    def _submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            self._jobs.put(job)
            if not self._running:
                self._running = True
                threading.Thread(target=self._loop, name=self.name, daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._running = False
                        return
                continue
            job()
