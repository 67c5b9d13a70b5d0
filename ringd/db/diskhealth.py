"""What the storage engine does when the disk fails it: the ``disk_failure_policy``.

A *disk failure* is an ``OSError`` from the engine's own file work: allocating a commit-log
segment, syncing the log, writing an sstable in a flush (ENOSPC, EIO, EMFILE, ENFILE, ...).

- ``stop_writes`` (default): writes fail with :class:`WritesStopped` (``OVERLOADED``: retry on
  another node) naming the data directory and its free space; reads, gossip and everything else go
  on. The error is logged when it starts and then at most once a minute. The engine retries what
  failed every second (:meth:`StorageEngine.run`) and resumes writes by itself once it succeeds.
- ``die``: log the failure and stop the node (exit 1 with the one-line reason), as a node that
  should rather be replaced than limp along.

Compaction failures never stop writes (a compaction needs room for a second copy of its inputs;
it is only an optimisation): they are logged and retried later.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from ringd.protocol.errors import Overloaded

log = logging.getLogger(__name__)

POLICIES = ("stop_writes", "die")
LOG_EVERY = 60.0  # seconds between repeated log lines of one ongoing failure


class WritesStopped(Overloaded):
    """Writes are refused because the disk failed; retry on another node."""


class DiskFailure(Exception):
    """The ``die`` policy: the node stops; the message is the one-line reason."""


def free_space(path: Path) -> str:
    """Free space of the file system holding ``path``, for people (``"12.5 MiB"``)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return "unknown"
    free = float(st.f_bavail * st.f_frsize)
    if free < 1024:
        return f"{int(free)} bytes"
    for unit in ("KiB", "MiB", "GiB"):
        free /= 1024
        if free < 1024 or unit == "GiB":
            break
    return f"{free:.1f} {unit}"


class DiskHealth:
    """The engine's disk state: ``reason`` is ``None`` while writes are accepted."""

    def __init__(
        self, data_dir: Path, policy: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"disk_failure_policy must be one of {', '.join(POLICIES)}")
        self.data_dir = data_dir
        self.policy = policy
        self.reason: str | None = None
        self.fatal: str | None = None
        self._clock = clock
        self._logged_at = -LOG_EVERY

    def failed(self, what: str, exc: OSError) -> None:
        """Record that ``what`` (e.g. "flush of keyspace demo") failed with ``exc``."""
        reason = f"{what} failed: {exc.strerror or exc}"
        now = self._clock()
        if self.policy == "die":
            if self.fatal is None:
                self.fatal = f"{reason}; data directory {self.data_dir} has {self.free()} free"
                log.error("disk failure (disk_failure_policy = die): %s", self.fatal)
            self.reason = reason
            return
        if self.reason is None or now - self._logged_at >= LOG_EVERY:
            self._logged_at = now
            log.error(
                "writes stopped: %s; data directory %s has %s free; retrying every second",
                reason,
                self.data_dir,
                self.free(),
            )
        self.reason = reason

    def recovered(self) -> None:
        if self.reason is not None and self.fatal is None:
            log.warning("writes resumed: the data directory %s is writable again", self.data_dir)
            self.reason = None

    def free(self) -> str:
        return free_space(self.data_dir)

    def error(self) -> WritesStopped:
        """The error a write gets while writes are stopped."""
        return WritesStopped(
            f"writes stopped on this node: {self.reason}; data directory {self.data_dir} has "
            f"{self.free()} free; retry on another node"
        )

    def check_writable(self) -> None:
        if self.reason is not None:
            raise self.error()
