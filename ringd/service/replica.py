"""The local replica's side of the data verbs: ``mutate``, ``read_local``, ``scan_local``.

``Replica`` applies and reads rows of this node's storage engine; the coordinator calls it
in-process for the local replica, and ``verbs`` serves it to peers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from ringd.db.cells import Row, row_digest
from ringd.db.engine import StorageEngine
from ringd.db.memtable import encode_wire
from ringd.net.server import Handler, Reply, Session, server_error
from ringd.protocol.errors import ErrorCode, InvalidRequest, ProtocolError
from ringd.schema import Schema
from ringd.service.hlc import HybridClock
from ringd.service.messages import (
    Cursor,
    MutateRequest,
    MutateResponse,
    ReadLocalRequest,
    ReadLocalResponse,
    ScanLocalRequest,
    ScanLocalResponse,
)
from ringd.service.requests import MAX_KEY_BYTES, check_not_future
from ringd.service.tracing import Trace, describe_read, describe_row, replica_trace

log = logging.getLogger(__name__)

# sorts after every key of a token (keys are at most MAX_KEY_BYTES long)
AFTER_ALL_KEYS = b"\xff" * (MAX_KEY_BYTES + 1)

#: the replica lag probe's canaries (``ringd.service.lag_probe``) live here: a name no user
#: keyspace can have (a dot), in no schema, so listings and views do not show it
CANARY_KEYSPACE = "system.lag_probe"
MAX_APPLY_DELAY_MS = 600_000


def row_bytes(row: Row) -> int:
    """The size of a row as ``max_row_bytes`` and scan page budgets measure it: its encoding."""
    return len(encode_wire(row))  # byte for byte cbor2.dumps(row.to_wire()), cheaper


def _failed(error: BaseException) -> ProtocolError:
    """A mutation's failure as its answer."""
    if isinstance(error, ProtocolError):
        return error
    return ProtocolError(f"mutation failed: {error}", ErrorCode.SERVER_ERROR)


_PENDING = object()


class _BatchReply:
    """A ``mutate_batch``'s answers by item: replies once every item has answered (an item's
    second answer, after a bug, is ignored)."""

    __slots__ = ("clock", "results", "left", "reply")

    def __init__(self, clock: HybridClock, n: int, reply: Callable[[Any], None]) -> None:
        self.clock = clock
        self.results: list[Any] = [_PENDING] * n  # None: applied and durable
        self.left = n
        self.reply = reply

    def done(self, i: int, error: BaseException | None) -> None:
        """Item ``i`` is durable (``error`` None) or failed."""
        self.answer(i, None if error is None else _failed(error))

    def answer(self, i: int, value: Any) -> None:
        """Item ``i``'s own answer: a result map, a ``ProtocolError``, or None for the batch's
        acknowledgement (durable)."""
        if self.results[i] is _PENDING:
            if isinstance(value, ProtocolError):
                value = {"error": value.to_wire()}
            self.results[i] = value
            self._one_less()

    def _one_less(self) -> None:
        self.left -= 1
        if self.left == 0:
            ack = MutateResponse(self.clock.peek()).to_wire()
            self.reply({"results": [ack if r is None else r for r in self.results]})


def row_too_large(size: int, limit: int) -> InvalidRequest:
    return InvalidRequest(
        f"the row would be {size} bytes after this write; the limit (max_row_bytes) is {limit}"
    )


class Replica:
    def __init__(
        self,
        engine: StorageEngine,
        schema: Schema,
        clock: HybridClock,
        *,
        max_row_bytes: int,
        page_bytes: int,
        max_future_timestamp_ms: int = 60_000,
    ) -> None:
        self.max_future_timestamp_ms = max_future_timestamp_ms
        self.engine = engine
        self.schema = schema
        self.clock = clock
        self.max_row_bytes = max_row_bytes
        self.page_bytes = page_bytes  # a scan page stops once its rows reach this many bytes
        # test hook (test_apply_delay): mutations from peers wait this long before they are
        # applied; ``later(seconds, fn)`` runs fn then (node.py: the proxy's deadline heap)
        self.apply_delay_ms = 0
        self.later: Callable[[float, Callable[[], None]], object] | None = None

    def check_row_size(
        self, ks: str, key: bytes, row: Row, *, new_only: bool = False, encoded: bytes = b""
    ) -> bytes:
        """``INVALID`` if the stored row would be larger than ``max_row_bytes`` after ``row``
        is merged into it (``new_only``: if ``row`` alone is, without reading the stored row);
        returns ``row``'s encoding (``encode_wire``), which ``StorageEngine.apply_then`` takes
        instead of encoding it again (pass it back as ``encoded`` to check again without
        encoding). The stored row is read and merged only when the engine's bound on its size
        (``row_bytes_bound``) says the limit could be reached."""
        limit = self.max_row_bytes
        if not encoded:
            encoded = encode_wire(row)
        size = len(encoded)
        if size > limit:
            raise row_too_large(size, limit)
        if new_only or size + self.engine.row_bytes_bound(ks, key) <= limit:
            return encoded
        existing = self.engine.read(ks, key)
        if existing is not None:
            merged = row_bytes(existing.merge(row).normalized())
            if merged > limit:
                raise row_too_large(merged, limit)
        return encoded

    def check_timestamps(self, req: MutateRequest) -> None:
        """Every timestamp of a peer's mutation (cells, row tombstone, its clock) non-negative
        and at most ``max_future_timestamp_ms`` ahead of this node's clock, as for clients."""
        row = req.row
        low = high = req.hlc  # non-negative (MutateRequest.from_wire)
        for cell in row.cells.values():
            ts = cell[0]
            if ts < low:
                low = ts
            elif ts > high:
                high = ts
        if row.tombstone is not None:
            ts = row.tombstone[0]
            low, high = min(low, ts), max(high, ts)
        if low < 0:
            raise InvalidRequest("malformed mutation: timestamps must be non-negative")
        check_not_future(high, self.clock.wall_seconds(), self.max_future_timestamp_ms)

    def start_mutate(
        self, req: MutateRequest, reply: Callable[[Any], None], trace: Trace | None = None
    ) -> None:
        """Apply a replica mutation; ``reply`` gets the response once it is durable as the sync
        mode promises (at once in periodic mode, after the covering fsync otherwise). A traced
        one (``trace``) returns its events with the response."""
        clock = self.clock
        encoded = self._check(req)

        def durable(error: BaseException | None) -> None:
            if error is None:
                wire = MutateResponse(clock.peek()).to_wire()
                if trace is not None:
                    mode = self.engine.options.commitlog_sync
                    trace.add("apply", f"applied to commit log and memtable ({mode} sync)")
                    wire["trace"] = trace.peer_wire()
                reply(wire)
            else:
                reply(_failed(error))

        self._apply(req, durable, encoded)

    def traced_mutate(self, req: MutateRequest, reply: Callable[[Any], None]) -> None:
        """:meth:`start_mutate` with the replica's events in the response (``trace``)."""
        trace = replica_trace("")
        trace.add("received", f"mutation received: {describe_row(req.row)}")
        self.start_mutate(req, reply, trace)

    def mutate_batch(self, items: list[Any], reply: Callable[[Any], None]) -> None:
        """``mutate`` for each item of a ``mutate_batch``, in one pass (no request, closure or
        response object per item): ``reply`` gets ``{"results": [...]}`` once every item is
        durable or failed, each ``{"hlc": ...}`` (the clock when the last was durable) or
        ``{"error": ...}``; a bad item fails only itself."""
        batch = _BatchReply(self.clock, len(items), reply)
        for i, item in enumerate(items):
            try:
                if type(item) is not dict:
                    raise InvalidRequest(f"mutate_batch: item {i} is not a map")
                req = MutateRequest.from_wire(item)
                if req.trace:
                    self.traced_mutate(req, partial(batch.answer, i))
                else:
                    self._apply(req, partial(batch.done, i), self._check(req))
            except ProtocolError as exc:
                batch.answer(i, exc)
            except Exception as exc:
                log.exception("mutate_batch: item %d failed", i)
                batch.answer(i, server_error("mutate", exc))

    def _check(self, req: MutateRequest) -> bytes:
        """Check a peer's mutation (timestamps, keyspace, row size) and observe its clock; the
        row's encoding for :meth:`_apply`."""
        self.check_timestamps(req)
        self.clock.observe(req.hlc)
        if self.schema.get(req.ks) is None and req.ks != CANARY_KEYSPACE:
            raise InvalidRequest(f"keyspace {req.ks!r} does not exist on this replica")
        return self.check_row_size(req.ks, req.key, req.row)

    def _apply(
        self,
        req: MutateRequest,
        durable: Callable[[BaseException | None], None],
        encoded: bytes,
    ) -> None:
        if self.apply_delay_ms and self.later is not None:
            self.later(
                self.apply_delay_ms / 1000,
                lambda: self._apply_late(req, durable, encoded),
            )
            return
        self.engine.apply_then(req.ks, req.key, req.row, None, durable, encoded)

    def _apply_late(
        self,
        req: MutateRequest,
        durable: Callable[[BaseException | None], None],
        encoded: bytes,
    ) -> None:
        """A mutation held back by the ``test_apply_delay`` hook, applied now."""
        try:
            self.engine.apply_then(req.ks, req.key, req.row, None, durable, encoded)
        except Exception as exc:  # e.g. writes stopped meanwhile: the caller still hears back
            durable(exc)

    def set_apply_delay(self, delay_ms: int) -> None:
        """Test hook: hold every mutation from a peer ``delay_ms`` before applying it (0: off)."""
        if not 0 <= delay_ms <= MAX_APPLY_DELAY_MS:
            raise InvalidRequest(f"delay_ms must be between 0 and {MAX_APPLY_DELAY_MS}")
        self.apply_delay_ms = delay_ms

    def read_local(self, req: ReadLocalRequest) -> ReadLocalResponse:
        row = self.engine.read(req.ks, req.key)
        if req.digest:
            return ReadLocalResponse(None, row_digest(row), self.clock.peek())
        return ReadLocalResponse(row, None, self.clock.peek())

    def traced_read_local(self, req: ReadLocalRequest) -> dict[str, Any]:
        """``read_local`` with the replica's events in the response (``trace``)."""
        trace = replica_trace("")
        row = self.engine.read(req.ks, req.key)
        trace.add("read", describe_read(self.engine, req.ks, req.key, row))
        if req.digest:
            trace.add("digest", "answering with its digest")
            response = ReadLocalResponse(None, row_digest(row), self.clock.peek())
        else:
            response = ReadLocalResponse(row, None, self.clock.peek())
        wire = response.to_wire()
        wire["trace"] = trace.peer_wire()
        return wire

    def scan_local(
        self, ks: str, after: Cursor, end: int, limit: int
    ) -> tuple[list[tuple[int, bytes, Row]], bool]:
        """Rows after ``after`` up to token ``end``: at most ``limit`` rows, stopping once they
        reach the page byte budget; and whether the page is full (more rows may follow)."""
        token, key = after
        start = (token, AFTER_ALL_KEYS if key is None else key)
        rows = []
        budget = self.page_bytes
        size = 0
        for item in self.engine.scan(ks, start, end):
            rows.append(item)
            size += len(item[1]) + row_bytes(item[2])
            if len(rows) >= limit or size >= budget:
                return rows, True
        return rows, False


def verbs(replica: Replica) -> dict[str, Handler]:
    """The replica verbs: ``mutate`` and ``mutate_batch`` (deferred until durable),
    ``read_local``, ``scan_local``."""

    def mutate(s: Session, args: dict[str, Any], reply: Reply) -> None:
        req = MutateRequest.from_wire(args)
        if req.trace:
            replica.traced_mutate(req, reply)
        else:
            replica.start_mutate(req, reply)

    def mutate_batch(s: Session, args: dict[str, Any], reply: Reply) -> None:
        replica.mutate_batch(args["items"], reply)  # a list of 1 to MAX_BATCH_ITEMS (the server)

    def read_local(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        req = ReadLocalRequest.from_wire(args)
        if req.trace:
            return replica.traced_read_local(req)
        return replica.read_local(req).to_wire()

    def scan_local(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        req = ScanLocalRequest.from_wire(args)
        rows, full = replica.scan_local(req.ks, req.after, req.end, req.limit)
        return ScanLocalResponse(rows, full).to_wire()

    return {
        "mutate": mutate,
        "mutate_batch": mutate_batch,
        "read_local": read_local,
        "scan_local": scan_local,
    }
