"""The client data and keyspace verbs: put, get, delete, scan and keyspace_*.

put, get and delete observe the client's ``session_us`` (``sessions``) before anything is
stamped; put and delete are refused while this node's clock is beyond the offset bound
(``clock_guard``).

``put``/``get``/``delete`` are deferred (they answer from the coordinator's callbacks), ``scan``
and the keyspace changes run in tasks, ``keyspace_list`` inline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ringd.db.cells import Row
from ringd.net.server import Handler, Reply, Session
from ringd.protocol.errors import InvalidRequest, ProtocolError
from ringd.protocol.messages import arg
from ringd.schema import Keyspace, Schema, replication_warnings
from ringd.service import requests, sessions, tracing
from ringd.service.clock_guard import ClockGuard
from ringd.service.coordination import Consistency
from ringd.service.hlc import HybridClock
from ringd.service.proxy import StorageProxy
from ringd.service.scans import SCAN_PAGE
from ringd.service.schema_sync import SchemaSync
from ringd.service.topology import Topology

MAX_SCAN_PAGE = 5000


def verbs(
    *,
    proxy: StorageProxy,
    schema: Schema,
    clock: HybridClock,
    topology: Topology,
    schema_sync: SchemaSync,
    clock_guard: ClockGuard | None = None,
    max_future_timestamp_ms: int = 60_000,
) -> dict[str, Handler]:
    writes, reads, scans = proxy.writes, proxy.reads, proxy.scans

    def start_trace(args: dict[str, Any]) -> tracing.Trace | None:
        """A trace for this request if the client asked for one (``trace: true``)."""
        if not arg(args, "trace", bool, False):
            return None
        return tracing.Trace(tracing.address_of(topology, topology.local_host_id))

    def traced(trace: tracing.Trace, start: Callable[[], None]) -> None:
        """Run ``start``; an error it raises at once (``UNAVAILABLE``) carries the trace."""
        try:
            start()
        except ProtocolError as exc:
            trace.add("failed", f"{exc.code}: {exc.message}")
            raise tracing.attach(trace, exc) from None

    # ---- data -------------------------------------------------------------------------

    def write(
        args: dict[str, Any], make_row: Callable[[Keyspace, int, float], Row], reply: Reply
    ) -> None:
        """A put or delete: the row ``make_row`` builds, stamped and written at the consistency."""
        ks = schema.require(arg(args, "keyspace", str))
        key = requests.key_bytes(args)
        consistency = Consistency.from_args(args, "w")
        trace = start_trace(args) if "trace" in args else None
        ts = requests.client_timestamp(args)
        if ts is not None:
            requests.check_not_future(ts, clock.wall_seconds(), max_future_timestamp_ms)
        session = sessions.session_us(args)
        if clock_guard is not None:
            clock_guard.check_write()
        sessions.observe(clock, session, stamps=ts is None)
        ts = clock.now() if ts is None else ts
        row = make_row(ks, ts, clock.wall_seconds())

        def done(acks: Any) -> None:
            out = acks if isinstance(acks, ProtocolError) else {"timestamp": ts, "acks": acks}
            reply(out if trace is None else tracing.attach(trace, out))

        if trace is None:
            writes.start_write(ks, key, row, consistency, done)
        else:
            traced(trace, lambda: writes.start_write(ks, key, row, consistency, done, trace))

    def put(s: Session, args: dict[str, Any], reply: Reply) -> None:
        write(args, lambda ks, ts, now: requests.put_row(args, ts, now, ks.default_ttl), reply)

    def get(s: Session, args: dict[str, Any], reply: Reply) -> None:
        ks = schema.require(arg(args, "keyspace", str))
        key = requests.key_bytes(args)
        consistency = Consistency.from_args(args, "r")
        trace = start_trace(args) if "trace" in args else None
        sessions.observe(clock, sessions.session_us(args), stamps=False)

        def done(row: Any) -> None:
            out = _get_result(row, key, clock.wall_seconds())
            reply(out if trace is None else tracing.attach(trace, out))

        if trace is None:
            reads.start_read(ks, key, consistency, done)
        else:
            traced(trace, lambda: reads.start_read(ks, key, consistency, done, trace))

    def delete(s: Session, args: dict[str, Any], reply: Reply) -> None:
        write(args, lambda ks, ts, now: requests.delete_row(args, ts, now), reply)

    async def scan(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        ks = schema.require(arg(args, "keyspace", str))
        limit = arg(args, "limit", int, SCAN_PAGE)
        if not 1 <= limit <= MAX_SCAN_PAGE:
            raise InvalidRequest(f"limit must be between 1 and {MAX_SCAN_PAGE}")
        after = _cursor(args.get("cursor"))
        rows, cursor = await scans.scan_page(ks, after, limit, Consistency.from_args(args, "r"))
        now = clock.wall_seconds()
        out = []
        for _, key, row in rows:
            columns = requests.row_out(row, now)
            if columns is not None:
                out.append({"key": requests.key_out(key), "columns": columns})
        return {"rows": out, "cursor": None if cursor is None else [cursor[0], cursor[1]]}

    # ---- keyspaces ----------------------------------------------------------------------

    def warnings(ks: Keyspace) -> list[str]:
        """Replication the ring as this node knows it cannot hold (see ``replication_warnings``)."""
        dcs = topology.ring.datacenters
        return replication_warnings(ks, {dc: len(hosts) for dc, hosts in dcs.items()})

    async def keyspace_create(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        name = arg(args, "name", str)
        existing = schema.get(name)
        if existing is not None:
            if args.get("if_not_exists"):
                return {**existing.to_wire(), "created": False, "warnings": []}
            raise InvalidRequest(f"keyspace {name!r} already exists", keyspace=name)
        fields = {k: v for k, v in args.items() if k in Keyspace.__dataclass_fields__}
        fields.pop("timestamp", None)
        fields.pop("dropped", None)
        ks = Keyspace.from_wire({**fields, "name": name})
        result = await schema_sync.change(ks)
        return {**result, "created": True, "warnings": warnings(ks)}

    async def keyspace_alter(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        ks = schema.require(arg(args, "name", str))
        changes = {k: v for k, v in args.items() if k in Keyspace.__dataclass_fields__}
        for fixed in ("name", "timestamp", "dropped"):
            changes.pop(fixed, None)
        updated = Keyspace.from_wire({**ks.to_wire(), **changes})
        result = await schema_sync.change(updated)
        return {**result, "warnings": warnings(updated)}

    async def keyspace_drop(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        name = arg(args, "name", str)
        ks = schema.get(name)
        if ks is None:
            if args.get("if_exists"):
                return {"name": name, "dropped": False}
            raise InvalidRequest(f"keyspace {name!r} does not exist", keyspace=name)
        await schema_sync.change(replace(ks, dropped=True))
        return {"name": name, "dropped": True}

    def keyspace_list(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return {"keyspaces": [k.to_wire() for k in schema.live()], "version": schema.version}

    return {
        "put": put,
        "get": get,
        "delete": delete,
        "scan": scan,
        "keyspace_create": keyspace_create,
        "keyspace_alter": keyspace_alter,
        "keyspace_drop": keyspace_drop,
        "keyspace_list": keyspace_list,
    }


def _get_result(row: Any, key: bytes, now: float) -> Any:
    """What ``get`` answers for the merged ``row`` (or the error the read ended with)."""
    if isinstance(row, ProtocolError):
        return row
    columns = requests.row_out(row, now)
    if columns is None or row is None:
        return None
    return {
        "key": requests.key_out(key),
        "columns": columns,
        "writetime": requests.writetimes(row, columns),
    }


def _cursor(raw: Any) -> tuple[int, bytes | None] | None:
    if raw is None:
        return None
    if not (
        isinstance(raw, list)
        and len(raw) == 2
        and type(raw[0]) is int
        and -(1 << 63) <= raw[0] < 1 << 63
        and (raw[1] is None or isinstance(raw[1], bytes))
    ):
        raise InvalidRequest("cursor must be the [token, key] a previous scan returned")
    return raw[0], raw[1]
