"""Commit log: segment files of CRC-checked records, the write-ahead log of the storage engine.

Every write is appended here before it is merged into a memtable, so that a restart can rebuild
the memtables that were not yet flushed.

Segment file ``CommitLog-<id>.log`` (ids grow for the life of the data directory)::

    header  "RDCLOG01" | segment id (u64 BE) | crc32 of the previous 16 bytes (u32 BE)
    record  length N (u32 BE) | crc32 of the 4 length bytes | crc32 of the payload | payload

The payload is opaque here (the engine stores CBOR ``[keyspace, key, row]``). A *position*
``(segment id, offset)`` names the end of a record; positions order the whole log. A record
whose length has the top bit set is a *sync marker*: its 8-byte payload (u64 BE) says that the
segment was fsynced up to that offset. Each sync appends one for the previous fsync.

Writes: segment files are created at their full size with the space reserved
(``posix_fallocate``, not a sparse file, so a write into the mapping can never fault on a full
disk) and memory-mapped, as Cassandra does. A segment that cannot be created (ENOSPC, EMFILE...)
raises ``OSError`` from :meth:`CommitLog.append` and leaves the log as it was; a failed fsync
raises from :meth:`sync` and is retried by the next one. :meth:`CommitLog.append` copies the framed record straight into the mapping: no system
call, yet the record is in the OS page cache the moment ``append`` returns, so a killed process
loses nothing; only a machine crash can lose what was not yet fsynced. :meth:`sync` fsyncs in a
worker thread, oldest segment first; a full segment is trimmed to its length and closed once
synced. The zeros after the last record of a segment are simply its end.

Durability modes (chosen by the engine): ``periodic`` acknowledges at once and syncs on a timer;
``batch`` waits for an fsync that covers the write (writers that arrive together share one);
``group`` additionally waits a short window first so that more writers share each fsync.
:meth:`wait_synced` implements both.

Replay (:func:`replay`): a torn, short or checksum-failing record is a torn tail, dropped with
the rest of its segment with a warning (and the file truncated to its good length), unless a
valid sync marker says the damaged bytes had been fsynced: one later in the same segment whose
offset lies beyond the damage, or any marker in a later segment (a sync covers every older
segment in full before it covers a newer one). Then :class:`StorageCorruption` names the file
and byte offset. A zeroed or torn segment header follows the same rule: the header is fsynced
with the segment's first records, so a power loss before that can damage it, and then the
whole segment (which held nothing durable) is the torn tail. Without markers a power loss that persisted unsynced pages out of order would
look like corruption; with them only damage to data known to be durable does. In practice the
torn tail is the last record of the last segment.

Segments are deleted once no keyspace memtable holds unflushed data from them: each segment
remembers, per keyspace, the end of the last record it holds (:attr:`Segment.dirty`), and
:meth:`CommitLog.release` forgets a keyspace up to the position its flush covered.
"""

from __future__ import annotations

import errno
import logging
import mmap
import os
import re
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple
from zlib import crc32

import trio

from ringd.db.errors import StorageCorruption
from ringd.db.syncthread import SyncThread
from ringd.fsutil import fsync_dir

log = logging.getLogger(__name__)

SEGMENT_MAGIC = b"RDCLOG01"
_SEG_HEADER = struct.Struct(">8sQI")
HEADER_SIZE = _SEG_HEADER.size
_REC = struct.Struct(">III")
REC_HEADER = _REC.size
_LEN = struct.Struct(">I")
_MARKER = struct.Struct(">Q")
MARKER_FLAG = 0x80000000
_NAME = re.compile(r"^CommitLog-(\d{16})\.log$")
MARKER_SIZE = REC_HEADER + _MARKER.size
_ZEROS = bytes(REC_HEADER)
_LEN_CRC: dict[int, int] = {}
#: room kept free at the end of a segment: one sync marker and the final seal marker
_RESERVE = 2 * MARKER_SIZE
#: group-commit fsyncs run in the event loop's thread while they average less than this
INLINE_SYNC_S = 0.002

Position = tuple[int, int]


def segment_name(seg_id: int) -> str:
    return f"CommitLog-{seg_id:016d}.log"


def segment_header(seg_id: int) -> bytes:
    head = SEGMENT_MAGIC + seg_id.to_bytes(8, "big")
    return head + crc32(head).to_bytes(4, "big")


def frame(payload: bytes) -> bytes:
    """One record as it appears in a segment (used by tests and tools)."""
    n = len(payload)
    return _REC.pack(n, crc32(_LEN.pack(n)), crc32(payload)) + payload


class Segment:
    """One segment file: its mapping, how much of it is appended and fsynced, and which
    keyspaces still have unflushed records in it (keyspace -> end offset of its last record).
    Segments found at open (``on_disk``) are complete and closed."""

    __slots__ = (
        "id",
        "path",
        "capacity",
        "end",
        "data_end",
        "synced",
        "marked",
        "marker_at",
        "mm",
        "fd",
        "dirty",
        "sealed",
        "done",
    )

    def __init__(self, seg_id: int, path: Path, on_disk: int = 0) -> None:
        self.id = seg_id
        self.path = path
        self.capacity = on_disk
        self.end = on_disk
        self.data_end = on_disk
        self.synced = on_disk
        self.marked = on_disk
        self.marker_at = on_disk
        self.mm: mmap.mmap | None = None
        self.fd: int | None = None
        self.dirty: dict[str, int] = {}
        self.sealed = on_disk > 0
        self.done = on_disk > 0


class ReplayedRecord(NamedTuple):
    path: Path
    segment: int
    offset: int
    end: int
    payload: bytes


class SegmentScan(NamedTuple):
    seg_id: int
    path: Path
    good_end: int
    size: int


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    out = []
    for entry in directory.iterdir():
        m = _NAME.match(entry.name)
        if m:
            out.append((int(m.group(1)), entry))
    out.sort()
    return out


def _all_zero(data: bytes, start: int) -> bool:
    return data.count(0, start) == len(data) - start


def _valid_record_at(data: bytes, q: int) -> tuple[int, int | None] | None:
    """If a whole valid record starts at ``q``: (its end, the marker's value or ``None``)."""
    size = len(data)
    if size - q < REC_HEADER:
        return None
    n, lcrc, pcrc = _REC.unpack_from(data, q)
    if crc32(data[q : q + 4]) != lcrc:
        return None
    length = n & ~MARKER_FLAG
    end = q + REC_HEADER + length
    if end > size or crc32(data[q + REC_HEADER : end]) != pcrc:
        return None
    if n & MARKER_FLAG:
        if length != _MARKER.size:
            return None
        return end, _MARKER.unpack_from(data, q + REC_HEADER)[0]
    return end, None


def _synced_beyond(data: bytes, start: int) -> int:
    """The largest fsynced offset claimed by a valid sync marker at or after ``start``."""
    claim = 0
    q = start
    size = len(data)
    while q <= size - REC_HEADER:
        if data[q] == 0 and data[q : q + REC_HEADER] == bytes(REC_HEADER):
            nz = len(data) - len(data[q:].lstrip(b"\0"))
            q = max(q + 1, nz - REC_HEADER + 1) if nz > q else size
            continue
        found = _valid_record_at(data, q)
        if found is None:
            q += 1
            continue
        end, marker = found
        if marker is not None:
            claim = max(claim, marker)
        q = end
    return claim


def read_segment(
    path: Path,
    seg_id: int,
    sink: list[ReplayedRecord],
    later_synced: Callable[[], bool] = lambda: False,
) -> SegmentScan:
    """Append the good records of one segment to ``sink``. ``later_synced`` tells whether a
    later segment holds a valid sync marker (then damage here is corruption); see the module
    docstring."""
    data = path.read_bytes()
    size = len(data)

    def damaged(off: int, why: str) -> SegmentScan:
        claim = _synced_beyond(data, off + 1)
        if claim > off:
            raise StorageCorruption(path, off, f"{why} (in data fsynced up to offset {claim})")
        if later_synced():
            raise StorageCorruption(path, off, f"{why} (a later segment was fsynced after it)")
        log.warning("commit log %s: dropping a torn tail from byte offset %d (%s)", path, off, why)
        return SegmentScan(seg_id, path, off, size)

    if size == 0 or _all_zero(data, 0):
        return SegmentScan(seg_id, path, 0, size)
    if size < HEADER_SIZE:
        return damaged(0, "truncated segment header")
    magic, sid, hcrc = _SEG_HEADER.unpack_from(data, 0)
    if magic != SEGMENT_MAGIC or crc32(data[:16]) != hcrc:
        # the header is written with the segment's first records and fsynced with them: a
        # power loss before that fsync can leave it zeroed or torn. Without a sync marker
        # here or in a later segment, nothing in this segment was durable: a torn tail.
        return damaged(0, "bad commit log segment header")
    if sid != seg_id:
        raise StorageCorruption(path, 0, f"segment header names id {sid}, file name {seg_id}")
    off = HEADER_SIZE
    rec = _REC
    while off < size:
        if data[off : off + REC_HEADER] == _ZEROS and _all_zero(data, off):
            break  # the unwritten rest of a preallocated segment
        if size - off < REC_HEADER:
            return damaged(off, "truncated record header")
        n, lcrc, pcrc = rec.unpack_from(data, off)
        if crc32(data[off : off + 4]) != lcrc:
            return damaged(off, "commit log record header checksum mismatch")
        length = n & ~MARKER_FLAG
        end = off + REC_HEADER + length
        if end > size:
            return damaged(off, "record runs past the end of the file")
        payload = data[off + REC_HEADER : end]
        if crc32(payload) != pcrc:
            return damaged(off, "commit log record checksum mismatch")
        if not n & MARKER_FLAG:
            sink.append(ReplayedRecord(path, seg_id, off, end, payload))
        off = end
    return SegmentScan(seg_id, path, off, size)


def replay(directory: Path) -> tuple[list[ReplayedRecord], list[SegmentScan]]:
    """Read every segment in ``directory`` in order; returns the good records and, per segment,
    how much of it is good (the rest is zeros or a torn tail to cut off)."""
    segments = list_segments(directory)
    records: list[ReplayedRecord] = []
    scans: list[SegmentScan] = []

    def later_synced(i: int) -> Callable[[], bool]:
        def check() -> bool:
            return any(
                _synced_beyond(path.read_bytes(), HEADER_SIZE) > 0 for _, path in segments[i + 1 :]
            )

        return check

    for i, (seg_id, path) in enumerate(segments):
        scans.append(read_segment(path, seg_id, records, later_synced(i)))
    return records, scans


class CommitLog:
    """The live commit log of one engine: appends, fsyncs and segment release.

    :meth:`append` and the bookkeeping run on the event loop's thread; fsyncs run in one worker
    thread at a time. The two share only the mapping of the active segment, which the syncer
    reads (through the page cache) while the appender writes past it."""

    def __init__(
        self, directory: Path, segment_bytes: int, next_id: int, old: list[Segment]
    ) -> None:
        self.directory = directory
        self.segment_bytes = max(segment_bytes, HEADER_SIZE + _RESERVE + 64)
        self.segments: list[Segment] = list(old)
        self._next_id = next_id
        self._sync_lock = trio.Lock()
        #: recent fsync duration (seconds, moving average), see :meth:`sync`
        self.sync_seconds = 0.0
        #: inline fsyncs while ``sync_seconds`` is below this (in-process test clusters set
        #: ``math.inf``: where an fsync runs must not depend on the real disk's timing there)
        self.inline_sync_s = INLINE_SYNC_S
        self._sync_thread = SyncThread()
        self._sync_done: trio.Event | None = None
        self._dir_dirty = False
        self.failed: BaseException | None = None
        #: the segment appends go to; ``None`` until one could be created (see :meth:`ensure_active`)
        self.active: Segment | None = None
        #: everything up to this position is fsynced
        self.synced_pos: Position = self.position()

    def ensure_active(self) -> None:
        """Create the first segment if there is none yet (raises ``OSError`` if it cannot)."""
        if self.active is None:
            self.active = self._new_segment(0)

    # -- appending (event loop thread) -------------------------------------------------------

    def _new_segment(self, record_size: int) -> Segment:
        seg_id = self._next_id
        self._next_id += 1
        seg = Segment(seg_id, self.directory / segment_name(seg_id))
        seg.sealed = seg.done = False
        seg.capacity = max(self.segment_bytes, HEADER_SIZE + record_size + _RESERVE)
        fd = os.open(seg.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _reserve(fd, seg.capacity)
            seg.mm = mmap.mmap(fd, seg.capacity)
        except BaseException:
            os.close(fd)
            try:
                os.unlink(seg.path)
            except OSError:
                pass
            raise
        seg.fd = fd
        seg.mm[0:HEADER_SIZE] = segment_header(seg_id)
        seg.end = HEADER_SIZE
        self._dir_dirty = True
        self.segments.append(seg)
        return seg

    def append(self, keyspace: str, payload: bytes) -> Segment:
        """Copy one record into the active segment; returns the segment it went to (its
        ``end`` is the record's end position)."""
        if self.failed is not None:
            raise RuntimeError("commit log failed earlier") from self.failed
        seg = self.active
        n = len(payload)
        size = REC_HEADER + n
        if seg is None or seg.end + size + _RESERVE > seg.capacity:
            new = self._new_segment(size)  # may raise: then nothing has changed
            if seg is not None:
                seg.sealed = True
            seg = self.active = new
        off = seg.end
        mm: mmap.mmap = seg.mm  # type: ignore[assignment]
        lcrc = _LEN_CRC.get(n)
        if lcrc is None:
            lcrc = _LEN_CRC[n] = crc32(_LEN.pack(n))
        _REC.pack_into(mm, off, n, lcrc, crc32(payload))
        mm[off + REC_HEADER : off + size] = payload
        seg.end = seg.data_end = end = off + size
        seg.dirty[keyspace] = end
        return seg

    def _mark(self, seg: Segment) -> None:
        """Append a sync marker for what an earlier sync made durable in ``seg``."""
        if seg.synced > seg.marked and seg.data_end > seg.marker_at and not seg.sealed:
            payload = _MARKER.pack(seg.synced)
            n = len(payload) | MARKER_FLAG
            off = seg.end
            mm: mmap.mmap = seg.mm  # type: ignore[assignment]
            _REC.pack_into(mm, off, n, crc32(_LEN.pack(n)), crc32(payload))
            mm[off + REC_HEADER : off + MARKER_SIZE] = payload
            seg.end = seg.marker_at = off + MARKER_SIZE
            seg.marked = seg.synced

    def position(self) -> Position:
        """The end of the last appended record (before any segment exists: the start of the
        next one)."""
        if self.active is None:
            return (self._next_id, 0)
        return (self.active.id, self.active.end)

    # -- syncing ------------------------------------------------------------------------------

    def _timed_sync(self, jobs: list[tuple[Segment, int]]) -> float:
        """:meth:`_sync_segments`, and how long it took (seconds)."""
        started = time.perf_counter()
        self._sync_segments(jobs)
        return time.perf_counter() - started

    def _sync_segments(self, jobs: list[tuple[Segment, int]]) -> None:
        """Fsync ``jobs`` in order; an ``OSError`` leaves the rest for the next sync."""
        for seg, end in jobs:
            fd: int = seg.fd  # type: ignore[assignment]
            if seg.synced < end:
                # fdatasync writes back pages dirtied through the shared mapping too, and
                # (unlike mmap.flush) lets go of the GIL while it waits
                os.fdatasync(fd)
                seg.synced = end
            if seg.sealed and seg.synced == seg.end:
                self._finish(seg)
        if self._dir_dirty:
            fsync_dir(self.directory)
            self._dir_dirty = False

    @staticmethod
    def _finish(seg: Segment) -> None:
        """Seal a full, synced segment: append a marker saying it is synced to its end (so
        that damage anywhere in it reads as corruption, not as a torn tail), fsync, unmap,
        trim the unused tail and close."""
        mm, fd = seg.mm, seg.fd
        seg.mm = seg.fd = None
        seg.done = True
        try:
            if mm is not None and fd is not None and seg.synced == seg.end:
                payload = _MARKER.pack(seg.end)
                n = len(payload) | MARKER_FLAG
                off = seg.end
                _REC.pack_into(mm, off, n, crc32(_LEN.pack(n)), crc32(payload))
                mm[off + REC_HEADER : off + MARKER_SIZE] = payload
                seg.end = seg.synced = seg.marked = off + MARKER_SIZE
                os.fdatasync(fd)
        finally:
            if mm is not None:
                mm.close()
            if fd is not None:
                try:
                    os.ftruncate(fd, seg.end)
                finally:
                    os.close(fd)

    async def sync(self, *, inline: bool = False) -> None:
        """Make everything appended so far durable: fsync in a worker thread, or (``inline``,
        for the group commit) in the event loop's own thread while recent fsyncs have been
        fast (:data:`INLINE_SYNC_S`), which saves the thread hop and its wake-ups; a slow disk
        sends them back to the worker thread so that it cannot stall the loop."""
        async with self._sync_lock:
            if self.failed is not None:
                raise RuntimeError("commit log failed earlier") from self.failed
            if self.active is not None:
                self._mark(self.active)
            jobs = [(seg, seg.end) for seg in self.segments if not seg.done]
            target = self.position()
            if inline and self.sync_seconds < self.inline_sync_s:
                took = self._timed_sync(jobs)
            else:
                took = await self._sync_thread.run(self._timed_sync, jobs)
            # a moving average: one slow fsync moves the next ones to the thread for a while
            self.sync_seconds += (took - self.sync_seconds) * 0.25
            if target > self.synced_pos:
                self.synced_pos = target

    async def wait_synced(self, pos: Position, window: float = 0.0) -> None:
        """Return once ``pos`` is fsynced. One waiter leads each fsync (after ``window``
        seconds, to gather company); the others wait for it and lead the next if needed."""
        while self.synced_pos < pos:
            if self._sync_done is not None:
                await self._sync_done.wait()
                continue
            done = self._sync_done = trio.Event()
            try:
                if window > 0:
                    await trio.sleep(window)
                await self.sync()
            finally:
                self._sync_done = None
                done.set()

    # -- release ------------------------------------------------------------------------------

    def release(self, keyspace: str, upto: Position) -> None:
        """Forget ``keyspace``'s records that end at or before ``upto`` (they were flushed)."""
        seg_id, off = upto
        for seg in self.segments:
            last = seg.dirty.get(keyspace)
            if last is None:
                continue
            if seg.id < seg_id or (seg.id == seg_id and last <= off):
                del seg.dirty[keyspace]

    def forget(self, keyspace: str) -> None:
        """Forget every record of ``keyspace`` (it was dropped)."""
        for seg in self.segments:
            seg.dirty.pop(keyspace, None)

    def collect(self) -> list[Path]:
        """Delete segment files that are complete, synced and hold no unflushed data."""
        removed = []
        keep = []
        for seg in self.segments:
            if seg.done and not seg.dirty and seg is not self.active:
                try:
                    os.unlink(seg.path)
                except FileNotFoundError:
                    pass
                removed.append(seg.path)
            else:
                keep.append(seg)
        self.segments = keep
        return removed

    def is_clean(self) -> bool:
        return all(not seg.dirty for seg in self.segments)

    async def close(self) -> None:
        """Fsync everything and close the files; delete every segment if no keyspace has
        unflushed data in the log."""
        if self.failed is None:
            if self.active is not None:
                self.active.sealed = True
            await self.sync()
        for seg in self.segments:
            if not seg.done:
                self._finish(seg)
        if self.failed is None and self.is_clean():
            for seg in self.segments:
                try:
                    os.unlink(seg.path)
                except FileNotFoundError:
                    pass
            self.segments = []
            fsync_dir(self.directory)
        self.failed = self.failed or RuntimeError("commit log closed")

    def abandon(self) -> None:
        """Let go of the files without syncing (tests use this to simulate a killed process:
        what was appended is in the page cache, nothing more is written)."""
        for seg in self.segments:
            mm, fd = seg.mm, seg.fd
            seg.mm = seg.fd = None
            if mm is not None:
                mm.close()
            if fd is not None:
                os.close(fd)
        self.failed = RuntimeError("commit log abandoned")


def _reserve(fd: int, size: int) -> None:
    """Give the file ``size`` bytes of allocated space (raises ``OSError``, e.g. ENOSPC)."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        # a file system without fallocate: write the zeros
        chunk = bytes(1 << 20)
        off = 0
        while off < size:
            off += os.pwrite(fd, chunk[: size - off], off)
