"""The storage engine: commit log + memtables + sstables + compaction, per keyspace.

``StorageEngine.open(data_dir, options)`` lays out::

    data_dir/commitlog/CommitLog-<id>.log     the shared commit log (see ``commitlog``)
    data_dir/sstables/<keyspace>/<gen>.sst    sstables of one keyspace (see ``sstable``)
    data_dir/drops.cbor                       commit-log positions of dropped keyspaces

Writes (:meth:`StorageEngine.apply`) encode the update once (CBOR ``[keyspace, key, row]``),
copy it into the memory-mapped commit log, and merge it into the keyspace's memtable (which
keeps the encoded row itself for a key written once). How long ``apply`` waits depends on the
sync mode: ``periodic`` not at all (the record is in the page cache, so a killed process loses
nothing; a machine crash loses at most one sync period); ``batch`` for an fsync covering the
write (writers arriving together share it); ``group`` for a shared fsync after a short window.
In ``batch`` and ``group`` modes the memtable sees the write only once it is durable, so no read
returns a write a crash could lose.

Reads merge the memtables and every sstable that may hold the key (bloom filter, hash index,
one checksummed block each). Scans merge sorted iterators, so memory stays bounded.

A flush switches the memtable out and records the commit-log position at the switch; the
sstable written from it stores that position, so replay skips what sstables already hold, and
commit-log segments are deleted once no keyspace has unflushed data in them. Flushes of one
keyspace run one at a time, in order. A memtable is flushed when it reaches
``memtable_flush_bytes``, and the keyspaces pinning the oldest segment are flushed when the log
outgrows ``commitlog_total_bytes``.

Compaction (size-tiered in the background, or major on request) merges sstables in a worker
thread, drops shadowed cells, turns expired TTL cells into tombstones and drops tombstones older
than gc_grace when nothing outside the compaction could hold older data. The new sstable names
the generations it replaces; it is renamed into place before they are deleted, and ``open``
deletes any sstable a present one replaces, so a crash in between neither loses nor resurrects
data. ``drop_keyspace`` records the commit-log position of the drop in ``drops.cbor`` so that
neither replay nor a leftover sstable brings the keyspace's old data back.

Disk failures (``OSError`` from segment allocation, log sync or a flush: ENOSPC, EIO, EMFILE...)
never end the engine: they follow ``disk_failure_policy`` (see ``diskhealth``). Under the default,
writes fail with ``WritesStopped`` while reads go on, what failed is retried every second, and
writes resume once it succeeds. A memtable whose flush failed stays readable and is flushed
later; its writes are in the commit log meanwhile, so a restart replays them. Compaction
failures are logged and retried a minute later.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zlib import crc32

import cbor2
import trio

from ringd.db.cells import Row
from ringd.db.commitlog import (
    HEADER_SIZE,
    REC_HEADER,
    CommitLog,
    Position,
    Segment,
    replay,
)
from ringd.db.compaction import (
    estimate_pending,
    merge_rows,
    pick_compaction,
    purged_stream,
    row_min_timestamp,
)
from ringd.db.diskhealth import DiskFailure, DiskHealth
from ringd.db.errors import StorageCorruption
from ringd.db.memtable import Memtable, decode_wire, encode_wire
from ringd.db.sstable import (
    SSTableReader,
    key_hash,
    parse_generation,
    write_sstable,
)
from ringd.fsutil import fsync_dir
from ringd.metrics import TableMetrics
from ringd.metrics.topk import Sampler
from ringd.protocol.errors import Overloaded

__all__ = ["DiskFailure", "EngineOptions", "StorageCorruption", "StorageEngine"]

log = logging.getLogger(__name__)

DISK_RETRY_S = 1.0  # while writes are stopped, retry what failed this often
COMPACTION_RETRY_S = 60.0  # after a failed compaction, try again this much later
PREPARE_SCAN_MIN_KEYS = 500  # fewer new keys than this: their tokens cost a scan < ~1 ms

_dumps = cbor2.dumps
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")
SYNC_MODES = ("periodic", "batch", "group")
#: bytes merging one row's encoding into another's can add (map and array headers)
MERGE_SLACK = 16


def _default_gc_grace(keyspace: str) -> int:
    return 864000


@dataclass
class EngineOptions:
    commitlog_sync: str = "periodic"  # "periodic" | "batch" | "group"
    commitlog_sync_period_ms: int = 1000  # periodic: fsync at least this often
    commitlog_group_window_ms: float = 2.0  # group: one shared fsync within this window
    commitlog_segment_bytes: int = 32 * 1024 * 1024
    #: beyond this much commit log, flush the keyspaces pinning the oldest segment
    commitlog_total_bytes: int = 256 * 1024 * 1024
    memtable_flush_bytes: int = 64 * 1024 * 1024  # per-keyspace memtable size that flushes
    gc_grace_for: Callable[[str], int] = _default_gc_grace  # keyspace -> gc_grace_seconds
    clock: Callable[[], float] = time.time  # wall clock in seconds (TTL expiry, gc_grace)
    compaction_min_threshold: int = 4
    compaction_max_threshold: int = 32
    background_compaction: bool = True
    disk_failure_policy: str = "stop_writes"  # see ringd.db.diskhealth

    def __post_init__(self) -> None:
        if self.commitlog_sync not in SYNC_MODES:
            raise ValueError(f"commitlog_sync must be one of {', '.join(SYNC_MODES)}")


def _dir_name(keyspace: str) -> str:
    if _SAFE_NAME.match(keyspace):
        return keyspace
    return "%" + keyspace.encode().hex()


def _name_from_dir(name: str) -> str:
    if name.startswith("%"):
        return bytes.fromhex(name[1:]).decode()
    return name


class _Store:
    """One keyspace's state: active memtable, memtables being flushed, live sstables."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory
        self.memtable = Memtable()
        self.flushing: list[tuple[Memtable, Position]] = []
        self.sstables: list[SSTableReader] = []
        self.flush_lock = trio.Lock()
        self.compaction_lock = trio.Lock()
        self.compacting: set[int] = set()
        self.inflight: dict[int, Position] = {}
        self.dropped = False
        self.flush_requested = False
        self.metrics = TableMetrics()  # local reads and writes (``tablehistograms``)
        self.samplers: tuple[Sampler, ...] = ()  # ``toppartitions`` samplings running
        #: CBOR head of a commit-log record of this keyspace: array(3), keyspace name
        self.head = b"\x83" + cbor2.dumps(name)

    def memtables(self) -> list[Memtable]:
        return [self.memtable] + [mt for mt, _ in self.flushing]


class _Compaction:
    """One compaction running in a worker thread; ``stop`` asks it to give up."""

    _ids = itertools.count(1)

    def __init__(
        self,
        store: _Store,
        inputs: list[SSTableReader],
        major: bool,
        keep: Callable[[int], bool] | None = None,
    ) -> None:
        self.id = next(self._ids)
        self.store = store
        self.inputs = inputs
        self.major = major
        self.keep = keep  # cleanup: only rows whose token this says to keep
        self.removed = 0  # rows cleanup left out
        self.bytes_total = sum(r.file_size for r in inputs)
        self.bytes_done = 0
        self.stop = threading.Event()
        self.finished = threading.Event()
        self.result: SSTableReader | None = None
        self.generation = 0

    def progress(self, n: int) -> None:
        self.bytes_done += n


_SMALL_BYTES_HEADS = [bytes((0x40 | n,)) for n in range(24)]


def _bytes_head(n: int) -> bytes:
    """The CBOR head of a byte string of length ``n`` (``n >= 24``)."""
    if n < 0x100:
        return b"\x58" + n.to_bytes(1, "big")
    if n < 0x10000:
        return b"\x59" + n.to_bytes(2, "big")
    if n < 0x100000000:
        return b"\x5a" + n.to_bytes(4, "big")
    return b"\x5b" + n.to_bytes(8, "big")


#: a write waiting for the group commit: store, key, update, its encoding, token, inflight
#: ticket, when it started (perf_counter), record size, and its done callback
_Waiter = tuple[
    "_Store",
    bytes,
    Row,
    bytes,
    "int | None",
    int,
    float,
    int,
    Callable[[BaseException | None], None],
]


class StorageEngine:
    """One node's local storage. ``open`` it (synchronously), start :meth:`run` in a nursery
    for the background work, and :meth:`close` it at the end.

    Data: :meth:`apply`, :meth:`read`, :meth:`scan`. Maintenance: :meth:`flush`,
    :meth:`compact`, :meth:`drop_keyspace`, :meth:`sync`. Introspection: :meth:`keyspaces`,
    :meth:`stats`, :meth:`compaction_stats`, :meth:`verify`. See the module docstring for how
    the parts fit together."""

    def __init__(
        self,
        data_dir: Path,
        options: EngineOptions,
        commitlog: CommitLog,
        stores: dict[str, _Store],
        generations: dict[str, int],
        drops: dict[str, Position],
    ) -> None:
        self.data_dir = data_dir
        self.options = options
        self._log = commitlog
        self._stores = stores
        self._generations = generations
        self._drops = drops
        self._sstable_root = data_dir / "sstables"
        self._periodic = options.commitlog_sync == "periodic"
        self._window = (
            options.commitlog_group_window_ms / 1000.0 if options.commitlog_sync == "group" else 0.0
        )
        self._flush_bytes = options.memtable_flush_bytes
        self._tickets = itertools.count()
        self._flush_wake = trio.Event()
        self._compaction_wake = trio.Event()
        self._active: dict[int, _Compaction] = {}
        self.flushes_completed = 0
        self.compactions_completed = 0
        self._closed = False
        self._health = DiskHealth(data_dir, options.disk_failure_policy)
        self._compaction_logged = -COMPACTION_RETRY_S
        #: batch/group: writes waiting for the next fsync (see apply_then)
        self._sync_waiters: list[_Waiter] = []
        self._sync_wake = trio.Event()

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, data_dir: Path, options: EngineOptions) -> StorageEngine:
        """Load sstables (verifying index, bloom and metadata checksums), clean up what an
        interrupted flush or compaction left behind, and replay the commit log."""
        data_dir = Path(data_dir)
        cl_dir = data_dir / "commitlog"
        sst_root = data_dir / "sstables"
        for d in (data_dir, cl_dir, sst_root):
            d.mkdir(parents=True, exist_ok=True)
        drops = _load_drops(data_dir / "drops.cbor")
        stores: dict[str, _Store] = {}
        generations: dict[str, int] = {}
        floors: dict[str, Position] = dict(drops)
        for entry in sorted(sst_root.iterdir()):
            if not entry.is_dir():
                continue
            name = _name_from_dir(entry.name)
            st, generations[name] = _load_store(name, entry, drops.get(name))
            if st.sstables or st.name not in drops:
                stores[name] = st
            for r in st.sstables:
                if r.commitlog_position > floors.get(name, (-1, -1)):
                    floors[name] = r.commitlog_position

        records, scans = replay(cl_dir)
        old: dict[int, Segment] = {}
        for scan in scans:
            if scan.good_end < scan.size:
                if scan.good_end < HEADER_SIZE:
                    os.unlink(scan.path)
                    fsync_dir(cl_dir)
                    continue
                with open(scan.path, "r+b") as f:
                    f.truncate(scan.good_end)
                    f.flush()
                    os.fsync(f.fileno())
            elif scan.good_end < HEADER_SIZE:
                os.unlink(scan.path)
                continue
            else:
                fd = os.open(scan.path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            old[scan.seg_id] = Segment(scan.seg_id, scan.path, on_disk=scan.good_end)

        for rec in records:
            try:
                ks, key, wire = cbor2.loads(rec.payload)
                row = Row.from_wire(wire)
                if not isinstance(ks, str) or not isinstance(key, bytes):
                    raise ValueError("keyspace must be text and key bytes")
            except Exception as exc:
                raise StorageCorruption(
                    rec.path, rec.offset, f"undecodable commit log record: {exc}"
                ) from None
            floor = floors.get(ks)
            if floor is not None and (rec.segment, rec.end) <= floor:
                continue
            target = stores.get(ks)
            if target is None:
                target = stores[ks] = _Store(ks, sst_root / _dir_name(ks))
            target.memtable.put(key, row, None)
            old[rec.segment].dirty[ks] = rec.end

        next_id = max(
            [0]
            + [seg_id for seg_id in old]
            + [seg_id for seg_id, _ in floors.values()]
            + [seg_id for seg_id, _ in drops.values()]
        )
        commitlog = CommitLog(
            cl_dir, options.commitlog_segment_bytes, next_id + 1, [old[i] for i in sorted(old)]
        )
        engine = cls(data_dir, options, commitlog, stores, generations, drops)
        engine._log.collect()
        try:
            commitlog.ensure_active()
        except OSError as exc:
            engine._health.failed("commit log segment allocation", exc)
        return engine

    # -- background work ----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Periodic commit-log sync and writes, flushing full memtables, size-tiered compaction.
        Runs until cancelled."""
        async with trio.open_nursery() as nursery:
            if self._periodic:
                nursery.start_soon(self._periodic_sync)
            else:
                nursery.start_soon(self._group_sync)
            nursery.start_soon(self._flusher)
            nursery.start_soon(self._log_space_watch)
            nursery.start_soon(self._disk_watch)
            if self.options.background_compaction:
                nursery.start_soon(self._compactor)
            task_status.started()

    async def _periodic_sync(self) -> None:
        period = self.options.commitlog_sync_period_ms / 1000.0
        while True:
            await trio.sleep(period)
            try:
                await self._log.sync()
                self._log.collect()
            except OSError as exc:
                self._health.failed("commit log sync", exc)

    async def _disk_watch(self) -> None:
        """While writes are stopped by a disk failure, retry what failed (segment allocation,
        log sync, pending flushes) every second and resume writes once all of it succeeds.
        Under ``disk_failure_policy = die``, raise :class:`DiskFailure` instead."""
        health = self._health
        while True:
            await trio.sleep(DISK_RETRY_S)
            if health.fatal is not None:
                raise DiskFailure(health.fatal)
            if health.reason is None:
                continue
            try:
                self._log.ensure_active()
                await self._log.sync()
                for store in list(self._stores.values()):
                    if store.flushing or store.flush_requested:
                        store.flush_requested = False
                        await self._flush_store(store)
            except OSError as exc:
                if health.reason is None:  # a flush failed with a new error: say so
                    health.failed("retry", exc)
                continue
            health.recovered()

    async def _group_sync(self) -> None:
        """batch/group: one fsync for every write that arrived since the last (in the loop's
        thread while fsyncs are fast, see ``CommitLog.sync``), then one pass over their
        callbacks."""
        while True:
            await self._sync_wake.wait()
            self._sync_wake = trio.Event()
            if self._window > 0:
                await trio.sleep(self._window)
            waiters, self._sync_waiters = self._sync_waiters, []
            error: BaseException | None = None
            try:
                await self._log.sync(inline=True)
            except OSError as exc:
                self._health.failed("commit log sync", exc)
                error = self._health.error()
            except Exception as exc:
                log.error("commit log sync failed: %s", exc)
                error = exc
            now = time.perf_counter()
            for store, key, update, encoded, token, ticket, started, size, done in waiters:
                try:
                    del store.inflight[ticket]
                    self._to_memtable(store, key, update, encoded, token)
                    store.metrics.write(now - started, size)
                    done(error)
                except Exception:
                    log.exception("a commit log sync callback failed")

    async def _log_space_watch(self) -> None:
        """Once a second: if the commit log has grown past ``commitlog_total_bytes``, ask for
        flushes of the keyspaces with unflushed data in its oldest segment, so that a rarely
        written keyspace cannot pin segments forever."""
        while True:
            await trio.sleep(1.0)
            self._check_log_space()

    def _check_log_space(self) -> None:
        segments = self._log.segments
        total = sum(max(seg.capacity, seg.end) for seg in segments)
        if total <= self.options.commitlog_total_bytes:
            return
        for seg in segments:
            if seg.dirty:
                for name in seg.dirty:
                    store = self._stores.get(name)
                    if store is not None and not store.flush_requested:
                        store.flush_requested = True
                        self._flush_wake.set()
                return

    async def _flusher(self) -> None:
        while True:
            await self._flush_wake.wait()
            self._flush_wake = trio.Event()
            for store in list(self._stores.values()):
                if store.flush_requested:
                    store.flush_requested = False
                    try:
                        await self._flush_store(store)
                    except OSError:
                        pass  # recorded by _flush_store; retried by _disk_watch

    async def _compactor(self) -> None:
        while True:
            await self._compaction_wake.wait()
            self._compaction_wake = trio.Event()
            failed = False
            while not failed:
                job = self._next_compaction()
                if job is None:
                    break
                store, inputs = job
                async with store.compaction_lock:
                    if store.dropped or any(r not in store.sstables for r in inputs):
                        continue
                    try:
                        await self._compact(store, inputs, major=False)
                    except OSError as exc:
                        self._compaction_failed(store, exc)
                        failed = True
            if failed:
                await trio.sleep(COMPACTION_RETRY_S)
                self._compaction_wake.set()

    def _compaction_failed(self, store: _Store, exc: OSError) -> None:
        now = time.monotonic()
        if now - self._compaction_logged >= COMPACTION_RETRY_S:
            self._compaction_logged = now
            log.warning(
                "compaction of keyspace %s failed: %s; data directory %s has %s free; "
                "retrying later",
                store.name,
                exc.strerror or exc,
                self.data_dir,
                self._health.free(),
            )

    def _next_compaction(self) -> tuple[_Store, list[SSTableReader]] | None:
        o = self.options
        for store in self._stores.values():
            if store.dropped:
                continue
            chosen = pick_compaction(
                _idle(store), o.compaction_min_threshold, o.compaction_max_threshold
            )
            if chosen:
                return store, chosen
        return None

    # -- writes -------------------------------------------------------------------------------

    def _store(self, keyspace: str) -> _Store:
        store = self._stores.get(keyspace)
        if store is None:
            store = self._stores[keyspace] = _Store(
                keyspace, self._sstable_root / _dir_name(keyspace)
            )
        return store

    async def apply(self, keyspace: str, key: bytes, update: Row, token: int | None = None) -> None:
        """Log ``update`` to ``key`` and merge it into the memtable; returns once it is durable
        as the sync mode promises (in batch and group mode the caller leads or joins an fsync
        itself, so this works without :meth:`run`). ``token`` (if the caller already has it)
        saves recomputing it at flush time."""
        started = time.perf_counter()
        store, seg, encoded, size = self._append(keyspace, key, update)
        if self._periodic:
            self._to_memtable(store, key, update, encoded, token)
            store.metrics.write(time.perf_counter() - started, size)
            return
        ticket = next(self._tickets)
        store.inflight[ticket] = (seg.id, seg.end - REC_HEADER - size)
        try:
            await self._log.wait_synced((seg.id, seg.end), self._window)
        except OSError as exc:
            self._health.failed("commit log sync", exc)
            raise self._health.error() from None
        finally:
            del store.inflight[ticket]
            self._to_memtable(store, key, update, encoded, token)
            store.metrics.write(time.perf_counter() - started, size)

    def apply_then(
        self,
        keyspace: str,
        key: bytes,
        update: Row,
        token: int | None,
        done: Callable[[BaseException | None], None],
        encoded: bytes = b"",
    ) -> None:
        """:meth:`apply` without waiting (the request path's way): ``done(None)`` once the write
        is durable as the sync mode promises (at once in periodic mode; in batch and group mode
        after the covering fsync of :meth:`run`'s sync task, in one pass with every other write
        that fsync covered), ``done(error)`` if that fsync failed. Raises at once (nothing
        logged) while writes are stopped by a disk failure or if the record cannot be
        appended. ``encoded``: ``encode_wire(update)`` if the caller has it already."""
        started = time.perf_counter()
        store, seg, encoded, size = self._append(keyspace, key, update, encoded)
        if self._periodic:
            self._to_memtable(store, key, update, encoded, token)
            store.metrics.write(time.perf_counter() - started, size)
            done(None)
            return
        ticket = next(self._tickets)
        store.inflight[ticket] = (seg.id, seg.end - REC_HEADER - size)
        # after the fsync, _group_sync moves it into the memtable and calls done (a tuple, not
        # a closure per write: this is the hot path)
        self._sync_waiters.append((store, key, update, encoded, token, ticket, started, size, done))
        self._sync_wake.set()

    def _append(
        self, keyspace: str, key: bytes, update: Row, encoded: bytes = b""
    ) -> tuple[_Store, Segment, bytes, int]:
        """Append the commit-log record of a write: the store, the segment it went to, the
        encoded row and the record's size. The record is in the page cache of the
        memory-mapped segment when this returns, so a killed process loses nothing."""
        health = self._health
        if health.reason is not None:
            raise health.error()
        store = self._stores.get(keyspace)
        if store is None:
            store = self._store(keyspace)
        if store.samplers:
            for sampler in store.samplers:
                sampler.writes.offer(key)
        # the record is CBOR [keyspace, key, row.to_wire()], put together from parts so that
        # the encoded row can double as the memtable's copy of a newly written key
        if not encoded:
            encoded = encode_wire(update)
        n = len(key)
        head = _SMALL_BYTES_HEADS[n] if n < 24 else _bytes_head(n)
        payload = b"".join((store.head, head, key, encoded))
        try:
            seg = self._log.append(keyspace, payload)
        except OSError as exc:
            health.failed("commit log segment allocation", exc)
            raise health.error() from None
        return store, seg, encoded, len(payload)

    def _to_memtable(
        self, store: _Store, key: bytes, update: Row, encoded: bytes, token: int | None
    ) -> None:
        mt = store.memtable
        mt.put(key, update, encoded)
        if token is not None:
            mt.tokens[key] = token
        if mt.bytes >= self._flush_bytes and not store.flush_requested:
            store.flush_requested = True
            self._flush_wake.set()

    async def sync(self) -> None:
        """Write and fsync everything in the commit log now."""
        try:
            await self._log.sync()
            self._log.collect()
        except OSError as exc:
            self._health.failed("commit log sync", exc)
            raise self._health.error() from None

    # -- reads --------------------------------------------------------------------------------

    def read(self, keyspace: str, key: bytes) -> Row | None:
        """Everything stored for ``key``, merged but not purged (resolve it with
        :meth:`Row.live_columns`). Raises :class:`StorageCorruption` if a block is damaged."""
        store = self._stores.get(keyspace)
        if store is None:
            return None
        started = time.perf_counter()
        hits = 0
        result = store.memtable.get(key)
        for mt, _ in store.flushing:
            value = mt.rows.get(key)
            if value is not None:
                if result is None:
                    result = decode_wire(value)
                else:
                    result.merge_in(decode_wire(value))
        if store.sstables:
            h = key_hash(key)
            for sst in store.sstables:
                row = sst.get(key, h)
                if row is not None:
                    hits += 1
                    if result is None:
                        result = row
                    else:
                        result.merge_in(row)
        store.metrics.read(
            time.perf_counter() - started, hits, 0 if result is None else len(result.cells)
        )
        if store.samplers:
            for sampler in store.samplers:
                sampler.reads.offer(key)
        return result

    def read_shape(self, keyspace: str, key: bytes) -> tuple[int, int, int]:
        """Where :meth:`read` finds ``key`` (for request tracing; it reads again): the memtables
        holding it, the sstables holding it, and the sstables there are."""
        store = self._stores.get(keyspace)
        if store is None:
            return 0, 0, 0
        memtables = sum(key in mt.rows for mt in (store.memtable, *(m for m, _ in store.flushing)))
        h = key_hash(key)
        hits = sum(sst.get(key, h) is not None for sst in store.sstables)
        return memtables, hits, len(store.sstables)

    def row_bytes_bound(self, keyspace: str, key: bytes) -> int:
        """An upper bound on the encoded size of what :meth:`read` returns for ``key`` (and of
        that merged with a row, less that row's own size), without reading any sstable: the
        encoded row of each memtable holding it, and each sstable's largest possible row."""
        store = self._stores.get(keyspace)
        if store is None:
            return 0
        bound = MERGE_SLACK
        value = store.memtable.rows.get(key)
        if value is not None:
            bound += len(value) + MERGE_SLACK
        for mt, _ in store.flushing:
            value = mt.rows.get(key)
            if value is not None:
                bound += len(value) + MERGE_SLACK
        for sst in store.sstables:
            bound += sst.max_row_bytes + MERGE_SLACK
        return bound

    async def prepare_scan(self, keyspace: str) -> None:
        """Compute in a worker thread the tokens of the keys that arrived in ``keyspace``'s
        memtables since their last scan, so that the next :meth:`scan` only sorts them in the
        event loop (Murmur3 in Python costs ~2.4 µs a key: 10,000 new keys held every request
        on the node for ~25 ms). For background scans (repair validation); a few keys are done
        inline by the scan itself."""
        store = self._stores.get(keyspace)
        if store is None:
            return
        for mt in store.memtables():
            keys = mt.untokenized()
            if len(keys) >= PREPARE_SCAN_MIN_KEYS:
                await trio.to_thread.run_sync(mt.tokenize, keys)

    def scan(
        self,
        keyspace: str,
        after: tuple[int, bytes] | None = None,
        end_token: int | None = None,
    ) -> Iterator[tuple[int, bytes, Row]]:
        """``(token, key, row)`` in ``(token, key)`` order, strictly after ``after`` and up to
        and including ``end_token``. Rows that are only tombstones are included."""
        store = self._stores.get(keyspace)
        if store is None:
            return iter(())
        sources: list[Iterator[tuple[int, bytes, Row]]] = [
            mt.iter_sorted(after, end_token) for mt in store.memtables()
        ]
        sources += [r.iter_rows(after, end_token) for r in store.sstables]
        return merge_rows(sources)

    # -- flush --------------------------------------------------------------------------------

    async def flush(self, keyspace: str | None = None) -> None:
        """Write the memtable(s) of ``keyspace`` (or of every keyspace) to sstables."""
        if keyspace is not None:
            store = self._stores.get(keyspace)
            stores = [store] if store is not None else []
        else:
            stores = list(self._stores.values())
        for store in stores:
            try:
                await self._flush_store(store)
            except OSError:
                raise self._health.error() from None

    def _next_generation(self, store: _Store) -> int:
        gen = self._generations.get(store.name, 1)
        self._generations[store.name] = gen + 1
        return gen

    async def _flush_store(self, store: _Store) -> None:
        """Flush ``store``'s memtable; an ``OSError`` is recorded as a disk failure and raised
        (the memtable stays queued in ``store.flushing`` for the next attempt)."""
        try:
            await self._flush_queued(store)
        except OSError as exc:
            self._health.failed(f"flush of keyspace {store.name}", exc)
            raise

    async def _flush_queued(self, store: _Store) -> None:
        async with store.flush_lock:
            if store.dropped:
                return
            if len(store.memtable):
                floor = self._log.position()
                if store.inflight:
                    floor = min(floor, min(store.inflight.values()))
                store.flushing.append((store.memtable, floor))
                store.memtable = Memtable()
            flushed = False
            while store.flushing and not store.dropped:
                mt, floor = store.flushing[0]
                gen = self._next_generation(store)
                started = time.monotonic()
                reader = await trio.to_thread.run_sync(self._write_memtable, store, mt, gen, floor)
                if store.dropped:
                    _discard(reader)
                    return
                log.info(
                    "flushed keyspace %s: %d rows, %d bytes in memory, %d bytes on disk, %d ms",
                    store.name,
                    len(mt),
                    mt.bytes,
                    reader.file_size,
                    (time.monotonic() - started) * 1000,
                )
                store.sstables.append(reader)
                store.flushing.pop(0)
                self.flushes_completed += 1
                self._log.release(store.name, floor)
                flushed = True
            if flushed:
                self._log.collect()
                self._compaction_wake.set()

    def _write_memtable(
        self, store: _Store, mt: Memtable, generation: int, floor: Position
    ) -> SSTableReader:
        _ensure_dir(store.directory)
        rows = mt.rows
        stream = ((tok, key, decode_wire(rows[key])) for tok, key in mt.flush_order())
        path = write_sstable(
            store.directory, store.name, generation, stream, floor, now=self.options.clock()
        )
        assert path is not None
        return SSTableReader(path)

    # -- compaction ---------------------------------------------------------------------------

    async def compact(self, keyspace: str | None = None) -> None:
        """Major compaction: flush, then merge all sstables of the keyspace(s) into one."""
        names = [keyspace] if keyspace is not None else list(self._stores)
        for name in names:
            store = self._stores.get(name)
            if store is None:
                continue
            try:
                await self._flush_store(store)
                async with store.compaction_lock:
                    if store.dropped:
                        continue
                    inputs = list(store.sstables)
                    if inputs:
                        await self._compact(store, inputs, major=True)
            except OSError as exc:
                raise Overloaded(
                    f"compaction of keyspace {name} failed: {exc.strerror or exc}; data "
                    f"directory {self.data_dir} has {self._health.free()} free"
                ) from None

    async def cleanup(self, keyspace: str, keep: Callable[[int], bool]) -> int:
        """Remove the rows of ``keyspace`` whose token ``keep`` rejects (data this node no
        longer replicates): flush, then rewrite every sstable without them (a compaction of
        kind ``cleanup``). Returns how many rows were removed. ``keep`` runs in a worker
        thread; it must only read immutable data."""
        store = self._stores.get(keyspace)
        if store is None:
            return 0
        try:
            await self._flush_store(store)
            async with store.compaction_lock:
                inputs = list(store.sstables)
                if store.dropped or not inputs:
                    return 0
                return await self._compact(store, inputs, major=True, keep=keep)
        except OSError as exc:
            raise Overloaded(
                f"cleanup of keyspace {keyspace} failed: {exc.strerror or exc}; data "
                f"directory {self.data_dir} has {self._health.free()} free"
            ) from None

    async def _compact(
        self,
        store: _Store,
        inputs: list[SSTableReader],
        major: bool,
        keep: Callable[[int], bool] | None = None,
    ) -> int:
        job = _Compaction(store, inputs, major, keep)
        job.generation = self._next_generation(store)
        gens = {r.generation for r in inputs}
        store.compacting |= gens
        self._active[job.id] = job
        started = time.monotonic()
        try:
            try:
                await trio.to_thread.run_sync(self._run_compaction, job, abandon_on_cancel=True)
            except trio.Cancelled:
                job.stop.set()
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(job.finished.wait)
                    self._install(job)
                raise
            out = job.result
            self._install(job)
            self.compactions_completed += 1
            log.info(
                "compacted keyspace %s (%s): %d sstables, %d bytes into %d bytes, %d ms",
                store.name,
                "major" if major else "size-tiered",
                len(inputs),
                sum(r.file_size for r in inputs),
                0 if out is None else out.file_size,
                (time.monotonic() - started) * 1000,
            )
        finally:
            store.compacting -= gens
            self._active.pop(job.id, None)
        return job.removed

    def _run_compaction(self, job: _Compaction) -> None:
        try:
            store = job.store
            gens = {r.generation for r in job.inputs}
            now_f = self.options.clock()
            now = int(now_f)
            gc_before = now - int(self.options.gc_grace_for(store.name))
            merged = merge_rows([r.iter_rows(progress=job.progress) for r in job.inputs])
            if job.keep is not None:
                merged = _kept(merged, job)

            def max_purgeable(key: bytes) -> int | None:
                h = key_hash(key)
                bound: int | None = None
                for other in list(store.sstables):
                    lo = other.min_timestamp
                    if (
                        other.generation not in gens
                        and lo is not None
                        and (bound is None or lo < bound)
                        and other.may_contain(h)
                    ):
                        bound = lo
                for mt in store.memtables():
                    value = mt.rows.get(key)
                    if value is not None:
                        lo = row_min_timestamp(decode_wire(value))
                        if lo is not None and (bound is None or lo < bound):
                            bound = lo
                return bound

            stream = purged_stream(merged, now, gc_before, max_purgeable)
            position = max(r.commitlog_position for r in job.inputs)
            _ensure_dir(store.directory)
            path = write_sstable(
                store.directory,
                store.name,
                job.generation,
                stream,
                position,
                replaces=gens,
                now=now_f,
                should_stop=job.stop.is_set,
            )
            if path is not None:
                job.result = SSTableReader(path)
        finally:
            job.finished.set()

    def _install(self, job: _Compaction) -> None:
        """Swap a finished compaction's output in for its inputs (event loop thread)."""
        reader, job.result = job.result, None
        if reader is None:
            return
        store = job.store
        if store.dropped or self._closed:
            if store.dropped:
                _discard(reader)
            return
        gens = {r.generation for r in job.inputs}
        store.sstables = [r for r in store.sstables if r.generation not in gens] + [reader]
        try:
            for r in job.inputs:
                try:
                    os.unlink(r.path)
                except FileNotFoundError:
                    pass
            fsync_dir(store.directory)
        except OSError as exc:  # the files go at the next start (the new sstable replaces them)
            log.warning("compaction of keyspace %s: cleanup failed: %s", store.name, exc)

    # -- keyspaces ----------------------------------------------------------------------------

    def drop_keyspace(self, keyspace: str) -> None:
        """Forget the keyspace's memtable and delete its sstables, durably."""
        store = self._stores.pop(keyspace, None)
        if store is None:
            return
        store.dropped = True
        for job in self._active.values():
            if job.store is store:
                job.stop.set()
        self._drops[keyspace] = self._log.position()
        _save_drops(self.data_dir / "drops.cbor", self._drops)
        self._log.forget(keyspace)
        for r in store.sstables:
            try:
                os.unlink(r.path)
            except FileNotFoundError:
                pass
        if store.directory.exists():
            fsync_dir(store.directory)
        store.sstables = []
        store.flushing = []
        store.memtable = Memtable()
        self._log.collect()

    def keyspaces(self) -> list[str]:
        return sorted(self._stores)

    # -- introspection ------------------------------------------------------------------------

    def stats(self) -> dict[str, dict[str, int]]:
        """Per keyspace: sstable count, cell counts (as written to sstables), bytes on disk, and
        memtable size (estimated memory) and rows."""
        out: dict[str, dict[str, int]] = {}
        for name in sorted(self._stores):
            store = self._stores[name]
            tables = list(store.sstables)
            mts = store.memtables()
            out[name] = {
                "sstable_count": len(tables),
                "live_cells": sum(r.live_cells for r in tables),
                "tombstone_cells": sum(r.tombstone_cells for r in tables),
                "rows_on_disk": sum(r.rows for r in tables),
                "bytes_on_disk": sum(r.file_size for r in tables),
                "memtable_bytes": sum(mt.bytes for mt in mts),
                "memtable_rows": sum(len(mt) for mt in mts),
            }
        return out

    def memtable_cells(self) -> dict[str, tuple[int, int]]:
        """Per keyspace: live and tombstone cells in its memtables (costs a pass over them)."""
        out: dict[str, tuple[int, int]] = {}
        for name, store in self._stores.items():
            counts = [mt.cell_counts() for mt in store.memtables()]
            out[name] = (sum(c[0] for c in counts), sum(c[1] for c in counts))
        return out

    def compaction_stats(self) -> dict[str, Any]:
        o = self.options
        pending = 0
        for store in self._stores.values():
            pending += estimate_pending(
                _idle(store), o.compaction_min_threshold, o.compaction_max_threshold
            )
        active = []
        for job in list(self._active.values()):
            total = job.bytes_total
            done = min(job.bytes_done, total)
            active.append(
                {
                    "id": job.id,
                    "keyspace": job.store.name,
                    "kind": "cleanup"
                    if job.keep is not None
                    else ("major" if job.major else "size-tiered"),
                    "sstables": len(job.inputs),
                    "bytes_done": done,
                    "bytes_total": total,
                    "progress": done / total if total else 1.0,
                }
            )
        return {"pending": pending + len(active), "active": active}

    def sample(self, keyspace: str, sampler: Sampler) -> None:
        """Offer every key the keyspace's local reads and writes touch to ``sampler`` until
        :meth:`unsample` (``toppartitions``)."""
        store = self._store(keyspace)
        store.samplers = (*store.samplers, sampler)

    def unsample(self, keyspace: str, sampler: Sampler) -> None:
        store = self._stores.get(keyspace)
        if store is not None:
            store.samplers = tuple(s for s in store.samplers if s is not sampler)

    def table_metrics(self) -> dict[str, TableMetrics]:
        """Per keyspace with a store: its local read and write metrics."""
        return {name: store.metrics for name, store in self._stores.items()}

    def stages(self) -> dict[str, dict[str, int]]:
        """The flush and compaction stages as ``tpstats`` shows them."""
        flushing = sum(len(s.flushing) for s in self._stores.values())
        requested = sum(1 for s in self._stores.values() if s.flush_requested)
        active = len(self._active)
        pending = self.compaction_stats()["pending"] - active
        return {
            "MemtableFlushWriter": {
                "active": flushing,
                "pending": requested,
                "completed": self.flushes_completed,
            },
            "CompactionExecutor": {
                "active": active,
                "pending": max(0, pending),
                "completed": self.compactions_completed,
            },
        }

    def verify(self) -> list[dict[str, Any]]:
        """Check every sstable's checksums; one dict (file, offset, message) per problem."""
        problems: list[dict[str, Any]] = []
        for store in list(self._stores.values()):
            for r in list(store.sstables):
                problems.extend(r.verify())
        return problems

    # -- shutdown -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop compactions, flush every memtable, fsync and close the commit log (deleting its
        segments: a restart replays nothing) and close the sstables."""
        if self._closed:
            return
        jobs = list(self._active.values())
        for job in jobs:
            job.stop.set()
        for job in jobs:
            await trio.to_thread.run_sync(job.finished.wait)
        for store in list(self._stores.values()):
            try:
                await self._flush_store(store)
            except OSError as exc:
                log.warning(
                    "keyspace %s not flushed at shutdown (%s): its writes stay in the commit "
                    "log and are replayed at the next start",
                    store.name,
                    exc.strerror or exc,
                )
        self._closed = True
        try:
            await self._log.close()
        except OSError as exc:
            log.error("commit log not closed cleanly (%s); it is replayed at the next start", exc)
            self._log.abandon()
        for store in self._stores.values():
            for r in store.sstables:
                r.close()

    def crash(self) -> None:
        """Let go of every file without flushing or syncing: what a killed process leaves
        behind (tests use it; the engine is unusable afterwards)."""
        self._closed = True
        self._log.abandon()
        for store in self._stores.values():
            for r in store.sstables:
                r.close()

    @property
    def writes_stopped(self) -> str | None:
        """Why writes are refused (a disk failure), or ``None``."""
        return self._health.reason

    @property
    def commitlog(self) -> CommitLog:
        return self._log


def _kept(
    rows: Iterator[tuple[int, bytes, Row]], job: _Compaction
) -> Iterator[tuple[int, bytes, Row]]:
    """``rows`` without those ``job.keep`` rejects, counted in ``job.removed``."""
    keep = job.keep
    assert keep is not None
    for item in rows:
        if keep(item[0]):
            yield item
        else:
            job.removed += 1


def _idle(store: _Store) -> list[tuple[int, SSTableReader]]:
    """``(size, sstable)`` for the sstables of ``store`` that no compaction is using."""
    return [(r.file_size, r) for r in store.sstables if r.generation not in store.compacting]


def _ensure_dir(directory: Path) -> None:
    if not directory.exists():
        directory.mkdir(parents=True, exist_ok=True)
        fsync_dir(directory.parent)


def _discard(reader: SSTableReader) -> None:
    reader.close()
    try:
        os.unlink(reader.path)
    except FileNotFoundError:
        pass


def _load_store(name: str, directory: Path, drop: Position | None) -> tuple[_Store, int]:
    """Open one keyspace directory: delete temporaries, sstables replaced by a present one
    (an interrupted compaction) and sstables older than a drop. Returns the store and the next
    free generation."""
    store = _Store(name, directory)
    max_gen = 0
    paths = []
    changed = False
    for entry in directory.iterdir():
        if entry.name.endswith(".tmp"):
            entry.unlink()
            changed = True
            continue
        gen = parse_generation(entry.name)
        if gen is not None:
            max_gen = max(max_gen, gen)
            paths.append(entry)
    readers = [SSTableReader(p) for p in sorted(paths)]
    replaced: set[int] = set()
    for r in readers:
        replaced.update(r.replaces)
    keep = []
    for r in readers:
        if r.generation in replaced or (drop is not None and r.commitlog_position <= drop):
            _discard(r)
            changed = True
        else:
            if r.keyspace != name:
                raise StorageCorruption(r.path, 0, f"sstable belongs to keyspace {r.keyspace!r}")
            keep.append(r)
    if changed:
        fsync_dir(directory)
    store.sstables = keep
    return store, max_gen + 1


def _load_drops(path: Path) -> dict[str, Position]:
    if not path.exists():
        return {}
    data = path.read_bytes()
    if len(data) < 4 or crc32(data[4:]) != int.from_bytes(data[:4], "big"):
        raise StorageCorruption(path, 0, "checksum mismatch")
    try:
        raw = cbor2.loads(data[4:])
        return {str(k): (int(v[0]), int(v[1])) for k, v in raw.items()}
    except Exception as exc:
        raise StorageCorruption(path, 4, f"undecodable: {exc}") from None


def _save_drops(path: Path, drops: dict[str, Position]) -> None:
    body = cbor2.dumps({k: list(v) for k, v in drops.items()})
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(crc32(body).to_bytes(4, "big") + body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
