"""Request tracing: what a traced ``put``, ``get`` or ``delete`` did on every node it touched.

A client asks for it with ``"trace": true`` (docs/protocol.md, section 11.9). The coordinator
then keeps a :class:`Trace` for that request only: its own events (the replica plan, each
replica contacted and its answer, digest mismatches, read-repair writes, hints stored,
timeouts) and the events the replicas return. Internode requests of a traced request carry
``"trace": true``; the replica keeps a small :class:`Trace` of its own (at most
``MAX_PEER_EVENTS``) and returns it in its answer as ``[[elapsed_us, kind, text], ...]``,
which the coordinator checks with :func:`peer_events` before it uses a byte of it.

Untraced requests carry ``None`` instead of a ``Trace`` and pay one ``is not None`` test at
each hook. Events are timed from when the request reached the node that records them, in µs.
The trace goes back with the response, so events after it (a late replica's answer) are not
in it.
"""

from __future__ import annotations

import re
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from ringd.db.cells import Row

if TYPE_CHECKING:
    from ringd.db.engine import StorageEngine
    from ringd.locator.consistency import ReplicaPlan
    from ringd.service.topology import Topology

MAX_EVENTS = 128  # events one traced request keeps on the coordinator, replicas' included
MAX_PEER_EVENTS = 16  # events a replica returns; more from a peer is malformed
MAX_TEXT = 300  # characters of one event's text
MAX_ELAPSED_US = 1 << 40  # about 12 days: a larger elapsed time from a peer is malformed
_KIND = re.compile(r"[a-z][a-z_]{0,31}")

PeerEvent = tuple[int, str, str]


class Trace:
    """The events of one traced request on one node, at most ``limit`` of them (later ones are
    counted in ``dropped``)."""

    __slots__ = ("node", "start", "events", "limit", "dropped")

    def __init__(self, node: str, limit: int = MAX_EVENTS) -> None:
        self.node = node  # the address events of this node are filed under
        self.start = time.perf_counter()
        self.events: list[dict[str, Any]] = []
        self.limit = limit
        self.dropped = 0

    def elapsed_us(self) -> int:
        return int((time.perf_counter() - self.start) * 1_000_000)

    def add(self, kind: str, text: str, **fields: Any) -> None:
        """An event on this node, now."""
        event = {"node": self.node, "elapsed_us": self.elapsed_us(), "kind": kind}
        self._keep({**event, "event": text[:MAX_TEXT], **fields})

    def add_peer(self, node: str, raw: object) -> None:
        """The events a replica at ``node`` returned (``raw``, unchecked). Malformed ones are
        left out whole and the trace says so; nothing a peer sends can raise here."""
        if raw is None:
            return
        try:
            events = peer_events(raw)
        except ValueError as exc:
            self.add("malformed_trace", f"left out the trace {node} returned: {exc}", replica=node)
            return
        for elapsed, kind, text in events:
            self._keep({"node": node, "elapsed_us": elapsed, "kind": kind, "event": text})

    def _keep(self, event: dict[str, Any]) -> None:
        if len(self.events) < self.limit:
            self.events.append(event)
        else:
            self.dropped += 1

    def to_wire(self) -> list[dict[str, Any]]:
        """The events for the client, in the order they were recorded (a copy: what a late
        answer adds afterwards is not sent)."""
        if not self.dropped:
            return list(self.events)
        more = f"{self.dropped} more events left out (at most {self.limit} are kept)"
        last = {"node": self.node, "elapsed_us": self.elapsed_us(), "kind": "truncated"}
        return [*self.events, {**last, "event": more}]

    def peer_wire(self) -> list[list[Any]]:
        """A replica's events as it returns them: ``[[elapsed_us, kind, text], ...]``."""
        return [[e["elapsed_us"], e["kind"], e["event"]] for e in self.events]


def replica_trace(node: str) -> Trace:
    """The trace a replica keeps for one traced internode request."""
    return Trace(node, MAX_PEER_EVENTS)


def peer_events(raw: object) -> list[PeerEvent]:
    """A replica's returned events, checked: a list of at most ``MAX_PEER_EVENTS``
    ``[elapsed_us, kind, text]``, elapsed a non-negative int below 2**40, kind lower-case
    letters and ``_`` (1-32), text at most ``MAX_TEXT`` characters. ``ValueError`` otherwise."""
    if not isinstance(raw, list):
        raise ValueError("trace must be a list")
    if len(raw) > MAX_PEER_EVENTS:
        raise ValueError(f"{len(raw)} events; at most {MAX_PEER_EVENTS} are accepted")
    out = []
    for item in raw:
        if not isinstance(item, list) or len(item) != 3:
            raise ValueError("an event must be [elapsed_us, kind, text]")
        elapsed, kind, text = item
        if type(elapsed) is not int or not 0 <= elapsed < MAX_ELAPSED_US:
            raise ValueError("elapsed_us must be a non-negative integer below 2**40")
        if type(kind) is not str or not _KIND.fullmatch(kind):
            raise ValueError("kind must be 1-32 lower-case letters or _")
        if type(text) is not str or len(text) > MAX_TEXT:
            raise ValueError(f"event text must be at most {MAX_TEXT} characters")
        out.append((elapsed, kind, text))
    return out


def attach(trace: Trace | None, result: Any) -> Any:
    """What a traced client verb answers: ``{"result": result, "trace": events}``; an error
    gets the events as its ``trace`` detail. Untraced: ``result`` as it is."""
    if trace is None:
        return result
    from ringd.protocol.errors import ProtocolError

    if isinstance(result, ProtocolError):
        result.details["trace"] = trace.to_wire()
        return result
    return {"result": result, "trace": trace.to_wire()}


def describe_row(row: Row | None) -> str:
    """``2 cells``, ``1 cell and a row tombstone``, ``a row tombstone``, ``no row``."""
    if row is None:
        return "no row"
    n = len(row.cells)
    parts = [f"{n} cell" if n == 1 else f"{n} cells"] if n or row.tombstone is None else []
    if row.tombstone is not None:
        parts.append("a row tombstone")
    return " and ".join(parts)


def describe_read(engine: StorageEngine, ks: str, key: bytes, row: Row | None) -> str:
    """Where a read found the row (memtable, sstables holding the key of those there are) and
    what it found."""
    memtables, hits, sstables = engine.read_shape(ks, key)
    where = "in the memtable" if memtables else "not in the memtable"
    return f"read {describe_row(row)}: {where}, in {hits} of {sstables} sstables"


def address_of(topology: Topology, host: str) -> str:
    """A host id as a trace names it: its address (the host id if the ring lost it)."""
    try:
        return topology.address(host)
    except KeyError:
        return host


def add_plan(
    trace: Trace,
    topology: Topology,
    plan: ReplicaPlan,
    consistency: str,
    stand_ins: dict[str, str],
) -> None:
    """The coordinator's plan: the natural replicas, whom it contacts, the consistency and
    blockFor (the acknowledgements it waits for)."""
    name = partial(address_of, topology)
    replicas = [name(h) for h in plan.natural]
    contacts = [name(h) for h in plan.contacts]
    text = f"plan: replicas {', '.join(replicas)}; {consistency}, blockFor {plan.required}"
    if not plan.is_write:
        asked = [f"{c} ({'data' if i == 0 else 'digest'})" for i, c in enumerate(contacts)]
        text += f"; asking {', '.join(asked)}"
    down = [name(h) for h in plan.natural if h not in plan.contacts]
    if down:
        text += f"; not contacted: {', '.join(down)}"
    for fallback, target in stand_ins.items():
        text += f"; {name(fallback)} stands in for {name(target)}"
    trace.add(
        "plan",
        text,
        replicas=replicas,
        contacts=contacts,
        consistency=consistency,
        block_for=plan.required,
    )
