"""A replica's side of repair over the wire: the verbs a repair coordinator sends, and the
``RemoteParticipant`` that sends them.

Verbs (peer only), each checked before it touches anything:

  repair_validate  {session, ks, range: [start, end], depth} -> {tree: MerkleTree wire form}
  repair_leaves    {session, ks, ranges: [[start, end], ...]} -> {leaves: [[[key, digest], ...]]}
  repair_rows      {session, ks, keys: [key, ...]} -> {rows: [[key, row wire form], ...]}
  repair_apply     {session, ks, rows: [[key, row wire form], ...]} -> {}
  repair_release   {session, completed: [[ks, start, end], ...], participants: [address, ...]}
                   -> {}   (the session ended: forget its leases, record the completed ranges)

Rows travel with their timestamps and tombstones and are merged by the cell rules, so applying
a repaired row twice, or alongside newer writes, is harmless. A participant holds the ranges of
the sessions validating on it; a second session validating an overlapping range of the same
keyspace is refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from ringd.db.cells import Row
from ringd.dht.murmur3 import token_for
from ringd.dht.tokens import Range, check_token
from ringd.fsutil import atomic_write
from ringd.protocol.errors import InvalidRequest
from ringd.repair.history import RepairHistory
from ringd.repair.merkle import MAX_DEPTH, MerkleTree
from ringd.repair.session import row_size
from ringd.repair.validation import Engine, build_tree, leaf_digests
from ringd.streaming.service import apply_rows

log = logging.getLogger(__name__)

MAX_KEYS = 4096  # rows asked for or sent in one message
MAX_LEAVES = 4096
SESSION_LEASE_S = 120.0  # a participant forgets a session it has not heard of for this long
ENDED_REMEMBERED = 256  # sessions released here whose late requests are refused

Call = Callable[[str, str, dict[str, Any], float], Awaitable[Any]]


def _range(raw: Any) -> Range:
    if not (isinstance(raw, list) and len(raw) == 2):
        raise InvalidRequest("a range must be [start, end]")
    try:
        return Range(check_token(raw[0]), check_token(raw[1]))
    except ValueError as exc:
        raise InvalidRequest(f"bad range: {exc}") from None


def _text(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value or len(value) > 128:
        raise InvalidRequest(f"{name} must be non-empty text")
    return value


def _keys(raw: Any) -> list[bytes]:
    if not isinstance(raw, list) or len(raw) > MAX_KEYS:
        raise InvalidRequest(f"keys must be a list of at most {MAX_KEYS} byte strings")
    if not all(isinstance(k, bytes) and 0 < len(k) <= 65536 for k in raw):
        raise InvalidRequest("keys must be non-empty byte strings of at most 65536 bytes")
    return list(raw)


@dataclass
class _Lease:
    keyspace: str
    ranges: list[Range] = field(default_factory=list)
    seen: float = field(default_factory=time.monotonic)
    started: float = field(default_factory=time.monotonic)
    rows_received: int = 0  # repaired rows applied to this replica (incoming)
    bytes_received: int = 0
    rows_sent: int = 0  # rows read for the coordinator to repair others with (outgoing)
    bytes_sent: int = 0

    def view(self, session: str) -> dict[str, Any]:
        return {
            "id": session,
            "keyspace": self.keyspace,
            "ranges_validated": len(self.ranges),
            "rows_received": self.rows_received,
            "bytes_received": self.bytes_received,
            "rows_sent": self.rows_sent,
            "bytes_sent": self.bytes_sent,
        }


def _overlap(a: Range, b: Range) -> bool:
    """Whether two ranges share a token (full ranges overlap everything)."""
    if a.is_full or b.is_full:
        return True
    return a.contains(b.end) or b.contains(a.end)


class ReplicaRepair:
    """The participant's verbs on this node's engine (also used in-process by the coordinator
    for the local replica, through ``LocalParticipant``)."""

    def __init__(
        self,
        engine: Engine,
        keyspace_exists: Callable[[str], bool],
        history: RepairHistory | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.keyspace_exists = keyspace_exists
        self.history = history
        self.wall = wall
        self.leases: dict[str, _Lease] = {}
        #: sessions released here, oldest first: a request of one that arrives after its release
        #: (a validation still queued behind the release) must not take a lease again
        self.ended: dict[str, None] = {}
        self.validations = 0
        self.rows_received = 0
        self._changes = 0  # to the history; keep_history_saved writes them
        self._saved = 0  # the changes the history file holds
        self._changed = trio.Event()

    def _keyspace(self, args: dict[str, Any]) -> str:
        ks = _text(args, "ks")
        if not self.keyspace_exists(ks):
            raise InvalidRequest(f"keyspace {ks!r} does not exist on this replica")
        return ks

    def lease(self, session: str, ks: str, rng: Range) -> None:
        """Hold ``rng`` of ``ks`` for ``session``; INVALID if another session holds an
        overlapping range (a second repair of the same data at once)."""
        if session in self.ended:
            raise InvalidRequest(f"repair session {session} has ended")
        now = time.monotonic()
        for sid, lease in list(self.leases.items()):
            if now - lease.seen > SESSION_LEASE_S:
                del self.leases[sid]
            elif (
                sid != session
                and lease.keyspace == ks
                and any(_overlap(rng, r) for r in lease.ranges)
            ):
                raise InvalidRequest(f"range {rng} of {ks} is being repaired by session {sid}")
        lease = self.leases.setdefault(session, _Lease(ks))
        lease.ranges.append(rng)
        lease.seen = now

    def release(self, session: str) -> None:
        self.leases.pop(session, None)
        self.ended[session] = None
        while len(self.ended) > ENDED_REMEMBERED:
            del self.ended[next(iter(self.ended))]

    def streamed(
        self, session: Any, ks: str, rows: list[tuple[bytes, Row]], *, received: bool
    ) -> None:
        """Count rows a session moved into (``received``) or out of this replica."""
        if not isinstance(session, str) or not session or len(session) > 128:
            return
        if session in self.ended:
            return
        lease = self.leases.get(session)
        if lease is None:
            now = time.monotonic()
            for sid, old in list(self.leases.items()):
                if now - old.seen > SESSION_LEASE_S:
                    del self.leases[sid]
            lease = self.leases[session] = _Lease(ks)
        n = sum(len(k) + row_size(r) for k, r in rows)
        if received:
            lease.rows_received += len(rows)
            lease.bytes_received += n
        else:
            lease.rows_sent += len(rows)
            lease.bytes_sent += n
        lease.seen = time.monotonic()

    def streams(self) -> list[dict[str, Any]]:
        """Every repair session holding this replica now (those it coordinates too): ranges
        validated here, rows and bytes received and sent (``netstats``)."""
        now = time.monotonic()
        return [
            lease.view(sid)
            for sid, lease in sorted(self.leases.items())
            if now - lease.seen <= SESSION_LEASE_S
        ]

    def release_verb(self, args: dict[str, Any]) -> dict[str, Any]:
        session = _text(args, "session")
        completed = args.get("completed", [])
        participants = args.get("participants", [])
        if not isinstance(completed, list) or not isinstance(participants, list):
            raise InvalidRequest("completed and participants must be lists")
        done = []
        for item in completed:
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)):
                raise InvalidRequest("each completed range must be [keyspace, start, end]")
            done.append((item[0], _range(item[1:])))
        lease = self.leases.get(session)
        if lease is not None:
            log.info(
                "repair session %s ended on this replica: %s, %d ranges validated, "
                "%d rows (%d bytes) received, %d rows sent, %.1f s",
                session,
                lease.keyspace,
                len(lease.ranges),
                lease.rows_received,
                lease.bytes_received,
                lease.rows_sent,
                time.monotonic() - lease.started,
            )
        self.release(session)
        self.record(done, [str(p) for p in participants])
        return {}

    def record(self, completed: list[tuple[str, Range]], participants: list[str]) -> None:
        """Note ranges repaired with ``participants`` in this node's repair history."""
        if self.history is None or not completed:
            return
        now = self.wall()
        for ks, rng in completed:
            self.history.record(ks, rng, now, participants)
        self._changes += 1
        self._changed.set()  # written by keep_history_saved

    async def keep_history_saved(self) -> None:
        """Write the repair history after each change, in a worker thread: a file write and
        two fsyncs, which in the event loop held up every request on the node for up to tens
        of milliseconds after each repair piece. Written once more on the way out if changes
        are still unsaved. A crash, or a write that fails (logged; the next change tries
        again), loses at most the last records: their ranges look unrepaired and are repaired
        again."""
        history = self.history
        if history is None:
            return
        try:
            while True:
                await self._changed.wait()
                self._changed = trio.Event()
                changes, data = self._changes, history.encoded()
                try:
                    await trio.to_thread.run_sync(atomic_write, history.path, data)
                except OSError as exc:
                    log.warning("cannot write the repair history %s: %s", history.path, exc)
                    continue
                self._saved = changes
        finally:
            if self._saved != self._changes:
                try:
                    history.save()
                except OSError as exc:
                    log.warning("cannot write the repair history %s: %s", history.path, exc)

    async def tree(self, session: str, ks: str, rng: Range, depth: int) -> MerkleTree:
        """The Merkle tree of ``rng`` for ``session``, which holds the range's lease from then
        on. The memtables' new keys get their tokens in a worker thread first
        (``StorageEngine.prepare_scan``), so the scan in the event loop only sorts them."""
        await self.engine.prepare_scan(ks)
        self.lease(session, ks, rng)
        self.validations += 1
        return build_tree(self.engine, ks, rng, depth)

    async def leaf_digests(self, ks: str, ranges: list[Range]) -> list[list[tuple[bytes, bytes]]]:
        """The ``(key, row digest)`` pairs of each range (prepared as for :meth:`tree`)."""
        await self.engine.prepare_scan(ks)
        return [leaf_digests(self.engine, ks, r) for r in ranges]

    async def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        session, ks, rng = _text(args, "session"), self._keyspace(args), _range(args.get("range"))
        depth = args.get("depth")
        if type(depth) is not int or not 0 <= depth <= MAX_DEPTH:
            raise InvalidRequest(f"depth must be an integer from 0 to {MAX_DEPTH}")
        return {"tree": (await self.tree(session, ks, rng, depth)).to_wire()}

    async def leaves(self, args: dict[str, Any]) -> dict[str, Any]:
        ks = self._keyspace(args)
        raw = args.get("ranges")
        if not isinstance(raw, list) or len(raw) > MAX_LEAVES:
            raise InvalidRequest(f"ranges must be a list of at most {MAX_LEAVES} ranges")
        digests = await self.leaf_digests(ks, [_range(r) for r in raw])
        return {"leaves": [[[k, d] for k, d in leaf] for leaf in digests]}

    def rows(self, args: dict[str, Any]) -> dict[str, Any]:
        ks = self._keyspace(args)
        out = []
        found = []
        for key in _keys(args.get("keys")):
            row = self.engine.read(ks, key)
            if row is not None:
                out.append([key, row.to_wire()])
                found.append((key, row))
        self.streamed(args.get("session"), ks, found, received=False)
        return {"rows": out}

    def parse_rows(self, args: dict[str, Any]) -> tuple[str, list[tuple[bytes, Row]]]:
        ks = self._keyspace(args)
        raw = args.get("rows")
        if not isinstance(raw, list) or len(raw) > MAX_KEYS:
            raise InvalidRequest(f"rows must be a list of at most {MAX_KEYS} [key, row] pairs")
        rows = []
        for item in raw:
            if not (isinstance(item, list) and len(item) == 2):
                raise InvalidRequest("each row must be [key, row]")
            (key,) = _keys([item[0]])
            try:
                rows.append((key, Row.from_wire(item[1])))
            except ValueError as exc:
                raise InvalidRequest(f"bad row for key {key!r}: {exc}") from None
        return ks, rows

    async def apply(self, args: dict[str, Any]) -> dict[str, Any]:
        ks, rows = self.parse_rows(args)  # everything checked before anything is applied
        await self.apply_rows(args.get("session"), ks, rows)
        return {}

    async def apply_rows(self, session: Any, ks: str, rows: list[tuple[bytes, Row]]) -> None:
        """Apply repaired rows as streaming does (``ringd.streaming.service.apply_rows``):
        all appended, then one wait for them to be durable; counted for ``session``."""
        await apply_rows(self.engine, ks, [(token_for(key), key, row) for key, row in rows])
        self.rows_received += len(rows)
        self.streamed(session, ks, rows, received=True)


class LocalParticipant:
    """This node's replica in a repair it coordinates: the same work, without the wire."""

    def __init__(self, replica: ReplicaRepair, session: str) -> None:
        self.replica = replica
        self.session = session

    async def tree(self, keyspace: str, rng: Range, depth: int) -> MerkleTree:
        return await self.replica.tree(self.session, keyspace, rng, depth)

    async def leaf_digests(
        self, keyspace: str, ranges: list[Range]
    ) -> list[list[tuple[bytes, bytes]]]:
        return await self.replica.leaf_digests(keyspace, ranges)

    async def rows(self, keyspace: str, keys: list[bytes]) -> dict[bytes, Row]:
        out = {}
        for key in keys:
            row = self.replica.engine.read(keyspace, key)
            if row is not None:
                out[key] = row
        self.replica.streamed(self.session, keyspace, list(out.items()), received=False)
        return out

    async def apply(self, keyspace: str, rows: list[tuple[bytes, Row]]) -> None:
        await self.replica.apply_rows(self.session, keyspace, rows)


class RemoteParticipant:
    """A peer replica in a repair, reached with ``call(address, verb, args, timeout)``."""

    def __init__(self, call: Call, address: str, session: str, timeout: float = 60.0) -> None:
        self.call = call
        self.address = address
        self.session = session
        self.timeout = timeout

    async def _ask(self, verb: str, args: dict[str, Any]) -> Any:
        return await self.call(self.address, verb, {"session": self.session, **args}, self.timeout)

    async def tree(self, keyspace: str, rng: Range, depth: int) -> MerkleTree:
        result = await self._ask(
            "repair_validate", {"ks": keyspace, "range": [rng.start, rng.end], "depth": depth}
        )
        tree = MerkleTree.from_wire(result["tree"])
        if tree.range != rng or tree.depth != depth:
            raise ValueError(f"{self.address} answered with a tree of another range or depth")
        return tree

    async def leaf_digests(
        self, keyspace: str, ranges: list[Range]
    ) -> list[list[tuple[bytes, bytes]]]:
        out: list[list[tuple[bytes, bytes]]] = []
        for i in range(0, len(ranges), MAX_LEAVES):
            chunk = [[r.start, r.end] for r in ranges[i : i + MAX_LEAVES]]
            result = await self._ask("repair_leaves", {"ks": keyspace, "ranges": chunk})
            out.extend([(bytes(k), bytes(d)) for k, d in leaf] for leaf in result["leaves"])
        return out

    async def rows(self, keyspace: str, keys: list[bytes]) -> dict[bytes, Row]:
        out: dict[bytes, Row] = {}
        for i in range(0, len(keys), MAX_KEYS):
            result = await self._ask(
                "repair_rows", {"ks": keyspace, "keys": keys[i : i + MAX_KEYS]}
            )
            for key, raw in result["rows"]:
                out[bytes(key)] = Row.from_wire(raw)
        return out

    async def apply(self, keyspace: str, rows: list[tuple[bytes, Row]]) -> None:
        for i in range(0, len(rows), MAX_KEYS):
            chunk = [[k, r.to_wire()] for k, r in rows[i : i + MAX_KEYS]]
            await self._ask("repair_apply", {"ks": keyspace, "rows": chunk})

    async def release(self, completed: list[tuple[str, Range]], participants: list[str]) -> None:
        done = [[ks, r.start, r.end] for ks, r in completed]
        await self._ask("repair_release", {"completed": done, "participants": participants})
