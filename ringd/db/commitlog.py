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

Writes: :meth:`CommitLog.append` frames a record into an in-memory buffer of the active segment
(no system call). Buffers reach the file either inline (:meth:`write_inline`, a plain ``write``
on the event loop's thread, no fsync) or from :meth:`sync`, which writes and fsyncs in a worker
thread. A new segment file is only created once every earlier segment is fully written and
fsynced, so after a crash only the last segment can end in a torn record.

Durability modes (chosen by the engine): ``periodic`` acknowledges at once and syncs on a timer;
``batch`` waits for an fsync that covers the write (writers that arrive together share one);
``group`` additionally waits a short window first so that more writers share each fsync.
:meth:`wait_synced` implements both.

Replay (:func:`replay`): a torn, short or checksum-failing record in the last segment is a torn
tail, dropped with everything after it with a warning (and the file truncated to its good
length), unless a later valid sync marker says the damaged bytes had been fsynced: then, as for
damage anywhere in an earlier segment, :class:`StorageCorruption` names the file and offset.
(Without markers a power loss that persisted unsynced pages out of order would look like
corruption; with them only damage to data known to be durable does.)

Segments are deleted once no keyspace memtable holds unflushed data from them: each segment
remembers, per keyspace, the end of the last record it holds (:attr:`Segment.dirty`), and
:meth:`CommitLog.release` forgets a keyspace up to the position its flush covered.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple
from zlib import crc32

import trio

from ringd.db.errors import StorageCorruption

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
#: buffered bytes beyond which :meth:`CommitLog.append` callers should call ``write_inline``
INLINE_WRITE_BYTES = 256 * 1024

Position = tuple[int, int]


def segment_name(seg_id: int) -> str:
    return f"CommitLog-{seg_id:016d}.log"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def segment_header(seg_id: int) -> bytes:
    head = SEGMENT_MAGIC + seg_id.to_bytes(8, "big")
    return head + crc32(head).to_bytes(4, "big")


def frame(payload: bytes) -> bytes:
    """One record as it appears in a segment (used by tests and tools)."""
    n = len(payload)
    return _REC.pack(n, crc32(_LEN.pack(n)), crc32(payload)) + payload


class Segment:
    """One segment file: how much of it is appended, written and fsynced, and which keyspaces
    still have unflushed records in it (keyspace -> end offset of its last record)."""

    __slots__ = (
        "id",
        "path",
        "end",
        "written",
        "synced",
        "marked",
        "buf",
        "fd",
        "dirty",
        "sealed",
        "done",
    )

    def __init__(self, seg_id: int, path: Path, on_disk: int = 0) -> None:
        self.id = seg_id
        self.path = path
        self.end = on_disk
        self.written = on_disk
        self.synced = on_disk
        self.marked = on_disk
        self.buf = bytearray()
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


def read_segment(path: Path, seg_id: int, is_last: bool, sink: list[ReplayedRecord]) -> SegmentScan:
    """Append the good records of one segment to ``sink``; see the module docstring for what
    counts as a torn tail (only in the last segment) versus corruption."""
    data = path.read_bytes()
    size = len(data)

    def damaged(off: int, why: str) -> SegmentScan:
        if not is_last:
            raise StorageCorruption(path, off, why)
        claim = _synced_beyond(data, off + 1)
        if claim > off:
            raise StorageCorruption(path, off, f"{why} (in data fsynced up to offset {claim})")
        log.warning("commit log %s: dropping a torn tail from byte offset %d (%s)", path, off, why)
        return SegmentScan(seg_id, path, off, size)

    if size == 0 or (is_last and _all_zero(data, 0)):
        return SegmentScan(seg_id, path, 0, size)
    if size < HEADER_SIZE:
        return damaged(0, "truncated segment header")
    magic, sid, hcrc = _SEG_HEADER.unpack_from(data, 0)
    if magic != SEGMENT_MAGIC or crc32(data[:16]) != hcrc:
        raise StorageCorruption(path, 0, "bad commit log segment header")
    if sid != seg_id:
        raise StorageCorruption(path, 0, f"segment header names id {sid}, file name {seg_id}")
    off = HEADER_SIZE
    rec = _REC
    while off < size:
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
    how much of it is good (the last one may have a torn tail to cut off)."""
    segments = list_segments(directory)
    records: list[ReplayedRecord] = []
    scans: list[SegmentScan] = []
    for i, (seg_id, path) in enumerate(segments):
        scans.append(read_segment(path, seg_id, i == len(segments) - 1, records))
    return records, scans


class CommitLog:
    """The live commit log of one engine: appends, inline writes, fsyncs and segment release.

    :meth:`append` and the bookkeeping run on the event loop's thread; file writes and fsyncs
    run either inline (no fsync) or in one worker thread at a time, serialised by ``_io``."""

    def __init__(
        self, directory: Path, segment_bytes: int, next_id: int, old: list[Segment]
    ) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.segments: list[Segment] = list(old)
        self._next_id = next_id
        self._io = threading.Lock()
        self._sync_lock = trio.Lock()
        self._sync_done: trio.Event | None = None
        self._dir_dirty = False
        self.failed: BaseException | None = None
        self.buffered = 0
        self.active = self._new_segment()
        #: everything up to this position is fsynced
        self.synced_pos: Position = (self.active.id, 0)

    # -- appending (event loop thread) -------------------------------------------------------

    def _new_segment(self) -> Segment:
        seg_id = self._next_id
        self._next_id += 1
        seg = Segment(seg_id, self.directory / segment_name(seg_id))
        seg.buf += segment_header(seg_id)
        seg.end = HEADER_SIZE
        self.buffered += HEADER_SIZE
        self.segments.append(seg)
        return seg

    def append(self, keyspace: str, payload: bytes) -> Segment:
        """Buffer one record; returns the segment it went to (its ``end`` is the record's end)."""
        if self.failed is not None:
            raise RuntimeError("commit log failed earlier") from self.failed
        seg = self.active
        n = len(payload)
        size = REC_HEADER + n
        if seg.end + size > self.segment_bytes and seg.end > HEADER_SIZE:
            seg.sealed = True
            seg = self.active = self._new_segment()
        buf = seg.buf
        buf += _REC.pack(n, crc32(_LEN.pack(n)), crc32(payload))
        buf += payload
        seg.end += size
        seg.dirty[keyspace] = seg.end
        self.buffered += size
        return seg

    def _mark(self, seg: Segment) -> None:
        """Append a sync marker for what an earlier sync made durable in ``seg``."""
        if seg.synced > seg.marked and not seg.sealed:
            payload = _MARKER.pack(seg.synced)
            n = len(payload)
            seg.buf += _REC.pack(n | MARKER_FLAG, crc32(_LEN.pack(n | MARKER_FLAG)), crc32(payload))
            seg.buf += payload
            seg.end += REC_HEADER + n
            self.buffered += REC_HEADER + n
            seg.marked = seg.synced

    def position(self) -> Position:
        """The end of the last appended record."""
        return (self.active.id, self.active.end)

    # -- writing ------------------------------------------------------------------------------

    def _create(self, seg: Segment) -> None:
        seg.fd = os.open(seg.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self._dir_dirty = True

    def write_inline(self) -> bool:
        """Write buffered records to their files (no fsync) on the calling thread. Returns
        ``False`` if something is left that needs :meth:`sync` (a sync is running, or a new
        segment file must wait for the previous one to be fsynced)."""
        if self.failed is not None or not self._io.acquire(blocking=False):
            return False
        try:
            blocked = False
            for seg in self.segments:
                if seg.done:
                    continue
                if seg.fd is None:
                    if blocked:
                        return False
                    self._create(seg)
                data = seg.buf
                if data:
                    seg.buf = bytearray()
                    self.buffered -= len(data)
                    _write_all(seg.fd, data)  # type: ignore[arg-type]
                    seg.written += len(data)
                if seg.synced < seg.end:
                    blocked = True
            return True
        except BaseException as exc:
            self.failed = exc
            raise
        finally:
            self._io.release()

    def _write_and_sync(self, jobs: list[tuple[Segment, bytearray]], fsync: bool) -> None:
        try:
            for seg, data in jobs:
                if seg.fd is None:
                    self._create(seg)
                fd: int = seg.fd  # type: ignore[assignment]
                if data:
                    _write_all(fd, data)
                    seg.written += len(data)
                if (fsync or seg.sealed) and seg.synced < seg.written:
                    os.fdatasync(fd)
                    seg.synced = seg.written
                if seg.sealed and seg.synced == seg.end:
                    os.close(fd)
                    seg.fd = None
                    seg.done = True
            if self._dir_dirty:
                self._dir_dirty = False
                fsync_dir(self.directory)
        except BaseException as exc:
            self.failed = exc
            raise

    async def wait_written(self, seg: Segment, end: int) -> None:
        """Return once the record ending at ``end`` in ``seg`` is handed to the OS (no fsync).

        Usually that is one inline write. While a sync holds the files, wait for it to finish
        and write inline then, rather than queueing a sync of one's own: concurrent writers
        share the next write instead of each paying a thread hop.
        """
        while seg.written < end:
            if self.write_inline():
                return
            if self._sync_lock.locked():
                async with self._sync_lock:
                    pass
            else:
                await self.sync(False)

    async def sync(self, fsync: bool = True) -> None:
        """Write everything buffered and (with ``fsync``) make it durable, in a worker thread."""
        async with self._sync_lock:
            if self.failed is not None:
                raise RuntimeError("commit log failed earlier") from self.failed
            acquired = self._io.acquire(blocking=False)
            assert acquired, "commit log I/O lock held outside a sync"
            try:
                self._mark(self.active)
                jobs: list[tuple[Segment, bytearray]] = []
                for seg in self.segments:
                    if seg.done:
                        continue
                    data = seg.buf
                    if data:
                        seg.buf = bytearray()
                        self.buffered -= len(data)
                    jobs.append((seg, data))
                target = self.position()
                await trio.to_thread.run_sync(self._write_and_sync, jobs, fsync)
            finally:
                self._io.release()
            if fsync and target > self.synced_pos:
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
                await self.sync(True)
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
        """Delete segment files that are complete and hold no unflushed data."""
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
        """Write and fsync everything, close the files, and delete every segment if no keyspace
        has unflushed data in the log."""
        if self.failed is None:
            self.active.sealed = True
            await self.sync(True)
        for seg in self.segments:
            if seg.fd is not None:
                os.close(seg.fd)
                seg.fd = None
            seg.done = True
        if self.failed is None and self.is_clean():
            for seg in self.segments:
                try:
                    os.unlink(seg.path)
                except FileNotFoundError:
                    pass
            self.segments = []
            fsync_dir(self.directory)

    def abandon(self) -> None:
        """Close the files without writing anything more (tests use this to simulate a crash)."""
        for seg in self.segments:
            if seg.fd is not None:
                os.close(seg.fd)
                seg.fd = None
        self.failed = RuntimeError("commit log abandoned")

    def segment_iter(self) -> Iterator[Segment]:
        return iter(list(self.segments))
