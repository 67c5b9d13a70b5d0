"""The storage engine against a plain dict model, through flushes, compactions, restarts and
crashes (hypothesis state machine).

The model keeps, per (keyspace, key), the merge of every write the engine must still have:
writes since the last sync point are *pending* and a simulated crash loses them (unless a flush
of their keyspace made them durable first). A crash truncates the commit log back to the last
sync point, optionally leaves a torn record behind, and reopens without ``close``.

Writes respect the gc_grace contract: no write is older than a tombstone (or expired TTL cell)
that compaction may already have purged. Timestamps are unique, so tie-breaks never depend on
whether compaction has turned an expired TTL cell into a tombstone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ringd.db.cells import Cell, Row, RowTombstone
from ringd.db.commitlog import list_segments
from ringd.db.engine import EngineOptions, StorageEngine
from ringd.dht.murmur3 import MAX_TOKEN, MIN_TOKEN, token_for

KEYSPACES = ["ks1", "ks2"]
KEYS = [b"a", b"b", b"user:1", b"\x00\xff", b""]
COLUMNS = ["x", "y", "z"]
GC_GRACE = {"ks1": 10, "ks2": 0}
SEQ_BITS = 20

keyspaces = st.sampled_from(KEYSPACES)
keys = st.sampled_from(KEYS)
columns = st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=3, unique=True)
values = st.binary(min_size=0, max_size=40)


class EngineMachine(RuleBasedStateMachine):
    sync_mode = "periodic"

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="ringd-engine-model-"))
        self.now = 1_000_000.0
        self.options = EngineOptions(
            commitlog_sync=self.sync_mode,
            commitlog_segment_bytes=1024,
            memtable_flush_bytes=1 << 30,
            gc_grace_for=lambda ks: GC_GRACE[ks],
            clock=lambda: self.now,
            background_compaction=False,
        )
        self.engine = StorageEngine.open(self.dir, self.options)
        self.durable: dict[tuple[str, bytes], Row] = {}
        self.pending: list[tuple[str, bytes, Row]] = []
        self.deletions: list[tuple[int, int, int]] = []  # (timestamp, ldt, gc_grace)
        self.seq = 0
        self.base = 10
        self.sync_point = self.engine.commitlog.position()

    def teardown(self) -> None:
        try:
            trio.run(self.engine.close)
        except Exception:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- model ---------------------------------------------------------------------------------

    def model_row(self, ks: str, key: bytes) -> Row | None:
        row = self.durable.get((ks, key))
        row = None if row is None else row.copy()
        for pks, pkey, update in self.pending:
            if (pks, pkey) == (ks, key):
                if row is None:
                    row = update.copy()
                else:
                    row.merge_in(update)
        return row

    def expected(self, ks: str, key: bytes) -> dict[str, bytes]:
        row = self.model_row(ks, key)
        return {} if row is None else row.live_columns(int(self.now))

    def make_durable(self, keyspace: str | None = None) -> None:
        keep = []
        for ks, key, update in self.pending:
            if keyspace is None or ks == keyspace:
                row = self.durable.get((ks, key))
                if row is None:
                    self.durable[(ks, key)] = update.copy()
                else:
                    row.merge_in(update)
            else:
                keep.append((ks, key, update))
        self.pending = keep

    def timestamp(self, data: st.DataObject) -> int:
        """A unique timestamp, fresh or old, but never older than a purgeable deletion."""
        now = int(self.now)
        floor = max((ts for ts, ldt, grace in self.deletions if ldt < now - grace + 1), default=0)
        lo = (floor >> SEQ_BITS) + 1
        if data.draw(st.booleans(), label="fresh"):
            self.base += 1
            base = self.base
        else:
            base = data.draw(st.integers(min_value=max(lo, 1), max_value=max(lo, self.base)))
        self.base = max(self.base, base)
        self.seq += 1
        return (base << SEQ_BITS) | self.seq

    def write(self, ks: str, key: bytes, update: Row) -> None:
        trio.run(self.engine.apply, ks, key, update)
        self.pending.append((ks, key, update))
        if self.sync_mode != "periodic":  # acknowledged means fsynced
            self.make_durable()
            self.sync_point = self.engine.commitlog.position()
        for cell in update.cells.values():
            if cell.ldt is not None:
                self.deletions.append((cell.timestamp, cell.ldt, GC_GRACE[ks]))
        if update.tombstone is not None:
            t = update.tombstone
            self.deletions.append((t.timestamp, t.ldt, GC_GRACE[ks]))

    # -- rules ---------------------------------------------------------------------------------

    @rule(ks=keyspaces, key=keys, cols=columns, value=values, data=st.data())
    def put(self, ks: str, key: bytes, cols: list[str], value: bytes, data: st.DataObject) -> None:
        ts = self.timestamp(data)
        ttl = data.draw(st.one_of(st.none(), st.integers(1, 20)), label="ttl")
        ldt = None if ttl is None else int(self.now) + ttl
        self.write(ks, key, Row({c: Cell(ts, value + c.encode(), ldt) for c in cols}))

    @rule(ks=keyspaces, key=keys, cols=columns, data=st.data())
    def delete_columns(self, ks: str, key: bytes, cols: list[str], data: st.DataObject) -> None:
        ts = self.timestamp(data)
        self.write(ks, key, Row({c: Cell(ts, None, int(self.now)) for c in cols}))

    @rule(ks=keyspaces, key=keys, data=st.data())
    def delete_row(self, ks: str, key: bytes, data: st.DataObject) -> None:
        ts = self.timestamp(data)
        self.write(ks, key, Row({}, RowTombstone(ts, int(self.now))))

    @rule(seconds=st.integers(0, 30))
    def advance_clock(self, seconds: int) -> None:
        self.now += seconds

    @rule(ks=st.one_of(st.none(), keyspaces), data=st.data())
    def flush(self, ks: str | None, data: st.DataObject) -> None:
        trio.run(self.engine.flush, ks)
        self.make_durable(ks)
        if ks is not None and data.draw(st.booleans(), label="then compact some"):
            self.compact_some(ks, data)

    @rule(ks=st.one_of(st.none(), keyspaces))
    def compact(self, ks: str | None) -> None:
        trio.run(self.engine.compact, ks)
        self.make_durable(ks)

    @rule(ks=keyspaces, data=st.data())
    def compact_some(self, ks: str, data: st.DataObject) -> None:
        """A minor compaction of some of the keyspace's sstables, chosen freely (so the overlap
        rule for purging tombstones matters)."""
        store = self.engine._stores.get(ks)
        if store is None or not store.sstables:
            return
        chosen = data.draw(
            st.lists(st.sampled_from(store.sstables), min_size=1, unique=True), label="inputs"
        )

        async def go() -> None:
            async with store.compaction_lock:
                await self.engine._compact(store, chosen, major=False)

        trio.run(go)

    @rule()
    def sync(self) -> None:
        trio.run(self.engine.sync)
        self.sync_point = self.engine.commitlog.position()
        self.make_durable()

    @rule()
    def restart(self) -> None:
        trio.run(self.engine.close)
        self.make_durable()
        self.engine = StorageEngine.open(self.dir, self.options)
        self.sync_point = self.engine.commitlog.position()

    @rule(torn=st.binary(max_size=30))
    def crash(self, torn: bytes) -> None:
        """Lose everything after the last sync point; maybe leave a torn record behind."""
        self.engine.crash()
        seg_id, offset = self.sync_point
        cl_dir = self.dir / "commitlog"
        last: Path | None = None
        for sid, path in list_segments(cl_dir):
            if sid > seg_id:
                path.unlink()
            elif sid == seg_id:
                with open(path, "r+b") as f:
                    f.truncate(min(offset, os.path.getsize(path)))
                last = path
            else:
                last = path
        if torn and last is not None and last.stat().st_size > 0:
            with open(last, "ab") as f:
                f.write(b"\x00\x00\x00\x10" + torn)
        self.pending = []
        self.engine = StorageEngine.open(self.dir, self.options)
        self.sync_point = self.engine.commitlog.position()

    @rule(ks=keyspaces, really=st.integers(0, 7))
    def drop_keyspace(self, ks: str, really: int) -> None:
        if really:  # rarely: dropping throws away the history the other rules build up
            return
        self.engine.drop_keyspace(ks)
        for key in KEYS:
            assert self.engine.read(ks, key) is None
        self.durable = {k: v for k, v in self.durable.items() if k[0] != ks}
        self.pending = [p for p in self.pending if p[0] != ks]

    # -- checks --------------------------------------------------------------------------------

    @rule(ks=keyspaces, key=keys)
    def read(self, ks: str, key: bytes) -> None:
        row = self.engine.read(ks, key)
        got = {} if row is None else row.live_columns(int(self.now))
        assert got == self.expected(ks, key), (ks, key, row, self.model_row(ks, key))

    @rule(
        ks=keyspaces,
        after=st.one_of(st.none(), keys),
        end=st.one_of(st.none(), st.sampled_from([MIN_TOKEN, -1, 0, MAX_TOKEN]), keys),
    )
    def scan(self, ks: str, after: bytes | None, end: int | bytes | None) -> None:
        after_tk = None if after is None else (token_for(after), after)
        end_token = token_for(end) if isinstance(end, bytes) else end
        seen = {}
        last = None
        for tok, key, row in self.engine.scan(ks, after_tk, end_token):
            assert tok == token_for(key)
            assert last is None or (tok, key) > last
            assert after_tk is None or (tok, key) > after_tk
            assert end_token is None or tok <= end_token
            last = (tok, key)
            seen[key] = row.live_columns(int(self.now))
        for key in KEYS:
            tk = (token_for(key), key)
            in_range = (after_tk is None or tk > after_tk) and (
                end_token is None or tk[0] <= end_token
            )
            want = self.expected(ks, key) if in_range else {}
            assert seen.get(key, {}) == want, (ks, key, seen.get(key), want)

    @invariant()
    def keyspaces_known(self) -> None:
        assert set(self.engine.keyspaces()) <= set(KEYSPACES)


EngineMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestEngineModel = EngineMachine.TestCase


class BatchEngineMachine(EngineMachine):
    sync_mode = "batch"


BatchEngineMachine.TestCase.settings = settings(
    max_examples=10,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestBatchEngineModel = BatchEngineMachine.TestCase
