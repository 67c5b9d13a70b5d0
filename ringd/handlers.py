"""The handler behind every verb of the protocol's verb table (``handlers.table``).

Each verb's mode in the verb table says how its handler runs: ``inline`` (a plain function
answered in the connection's reader), ``deferred`` (a plain function given a ``reply`` callable:
the coordinator's put/get/delete and the replica's mutate) or ``task`` (an ``async`` function).
Admin verbs live in ``admin``; this module holds data, keyspace, peer and test-hook verbs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import ringd
from ringd import admin
from ringd.db.cells import Row
from ringd.net.server import Handler, Reply, Session
from ringd.protocol.errors import InvalidRequest, ProtocolError, Unauthorized
from ringd.protocol.messages import arg
from ringd.schema import Keyspace, replication_warnings
from ringd.service import requests
from ringd.service.proxy import SCAN_PAGE, Consistency

if TYPE_CHECKING:
    from ringd.node import Node

MAX_SCAN_PAGE = 5000


def table(node: Node) -> dict[str, Handler]:
    proxy = node.proxy

    # ---- data -------------------------------------------------------------------------

    def ping(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return {"version": ringd.__version__, "host_id": node.host_id, "time_us": node.clock.peek()}

    def write(
        args: dict[str, Any], make_row: Callable[[Keyspace, int, float], Row], reply: Reply
    ) -> None:
        """A put or delete: the row ``make_row`` builds, stamped and written at the consistency."""
        ks = node.schema.require(arg(args, "keyspace", str))
        key = requests.key_bytes(args)
        consistency = Consistency.from_args(args, "w")
        ts = requests.client_timestamp(args)
        ts = node.clock.now() if ts is None else ts
        row = make_row(ks, ts, node.clock.wall_seconds())

        def done(acks: Any) -> None:
            reply(acks if isinstance(acks, ProtocolError) else {"timestamp": ts, "acks": acks})

        proxy.start_write(ks, key, row, consistency, done)

    def put(s: Session, args: dict[str, Any], reply: Reply) -> None:
        write(args, lambda ks, ts, now: requests.put_row(args, ts, now, ks.default_ttl), reply)

    def get(s: Session, args: dict[str, Any], reply: Reply) -> None:
        ks = node.schema.require(arg(args, "keyspace", str))
        key = requests.key_bytes(args)

        def done(row: Any) -> None:
            if isinstance(row, ProtocolError):
                reply(row)
                return
            columns = requests.row_out(row, node.clock.wall_seconds())
            if columns is None or row is None:
                reply(None)
                return
            reply(
                {
                    "key": requests.key_out(key),
                    "columns": columns,
                    "writetime": requests.writetimes(row, columns),
                }
            )

        proxy.start_read(ks, key, Consistency.from_args(args, "r"), done)

    def delete(s: Session, args: dict[str, Any], reply: Reply) -> None:
        write(args, lambda ks, ts, now: requests.delete_row(args, ts, now), reply)

    async def scan(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        ks = node.schema.require(arg(args, "keyspace", str))
        limit = arg(args, "limit", int, SCAN_PAGE)
        if not 1 <= limit <= MAX_SCAN_PAGE:
            raise InvalidRequest(f"limit must be between 1 and {MAX_SCAN_PAGE}")
        after = _cursor(args.get("cursor"))
        rows, cursor = await proxy.scan_page(ks, after, limit, Consistency.from_args(args, "r"))
        now = node.clock.wall_seconds()
        out = []
        for _, key, row in rows:
            columns = requests.row_out(row, now)
            if columns is not None:
                out.append({"key": requests.key_out(key), "columns": columns})
        return {"rows": out, "cursor": None if cursor is None else [cursor[0], cursor[1]]}

    # ---- keyspaces ----------------------------------------------------------------------

    def warnings(ks: Keyspace) -> list[str]:
        """Replication the ring as this node knows it cannot hold (see ``replication_warnings``)."""
        dcs = node.topology.ring.datacenters
        return replication_warnings(ks, {dc: len(hosts) for dc, hosts in dcs.items()})

    async def keyspace_create(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        name = arg(args, "name", str)
        existing = node.schema.get(name)
        if existing is not None:
            if args.get("if_not_exists"):
                return {**existing.to_wire(), "created": False, "warnings": []}
            raise InvalidRequest(f"keyspace {name!r} already exists", keyspace=name)
        fields = {k: v for k, v in args.items() if k in Keyspace.__dataclass_fields__}
        fields.pop("timestamp", None)
        fields.pop("dropped", None)
        ks = Keyspace.from_wire({**fields, "name": name})
        result = await node.topology.change_schema(ks)
        return {**result, "created": True, "warnings": warnings(ks)}

    async def keyspace_alter(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        ks = node.schema.require(arg(args, "name", str))
        changes = {k: v for k, v in args.items() if k in Keyspace.__dataclass_fields__}
        for fixed in ("name", "timestamp", "dropped"):
            changes.pop(fixed, None)
        updated = Keyspace.from_wire({**ks.to_wire(), **changes})
        result = await node.topology.change_schema(updated)
        return {**result, "warnings": warnings(updated)}

    async def keyspace_drop(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        name = arg(args, "name", str)
        ks = node.schema.get(name)
        if ks is None:
            if args.get("if_exists"):
                return {"name": name, "dropped": False}
            raise InvalidRequest(f"keyspace {name!r} does not exist", keyspace=name)
        await node.topology.change_schema(replace(ks, dropped=True))
        return {"name": name, "dropped": True}

    def keyspace_list(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "keyspaces": [k.to_wire() for k in node.schema.live()],
            "version": node.schema.version,
        }

    # ---- test hooks ---------------------------------------------------------------------

    def _hooks_enabled() -> None:
        if not node.config.enable_test_hooks:
            raise Unauthorized(
                "test hooks are disabled on this node; start ringd with --enable-test-hooks"
            )

    def test_filter(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        _hooks_enabled()
        return admin.set_filter(node, args)

    def test_clock(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        _hooks_enabled()
        offset = arg(args, "offset_ms", int)
        if abs(offset) > 10 * 365 * 86400 * 1000:
            raise InvalidRequest("offset_ms is out of range")
        node.clock.offset_ms = offset
        return {"offset_ms": offset, "wall_us": int(node.clock.wall_seconds() * 1e6)}

    # ---- between nodes ------------------------------------------------------------------

    def mutate(s: Session, args: dict[str, Any], reply: Reply) -> None:
        try:
            proxy.start_mutate(args, reply)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequest(f"malformed mutation: {exc}") from None

    def read_local(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        try:
            return proxy.handle_read_local(args)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequest(f"malformed read: {exc}") from None

    def scan_local(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        try:
            after = args["after"]
            token, key = after[0], after[1]
            rows, full = proxy.scan_local(
                args["ks"],
                (int(token), None if key is None else bytes(key)),
                int(args["end"]),
                int(args["limit"]),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InvalidRequest(f"malformed scan: {exc}") from None
        return {"rows": [[t, k, r.to_wire()] for t, k, r in rows], "full": full}

    def gossip_syn(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        try:
            return node.gossiper.handle_syn(args)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None

    def gossip_ack2(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        try:
            return node.gossiper.handle_ack2(args)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None

    def schema_pull(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return {"keyspaces": [k.to_wire() for k in node.schema.all_definitions()]}

    def schema_push(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        node.topology.merge_schema(args.get("keyspaces", []))
        return {"version": node.schema.version}

    return {
        "ping": ping,
        "put": put,
        "get": get,
        "delete": delete,
        "scan": scan,
        "keyspace_create": keyspace_create,
        "keyspace_alter": keyspace_alter,
        "keyspace_drop": keyspace_drop,
        "keyspace_list": keyspace_list,
        "test_filter": test_filter,
        "test_clock": test_clock,
        "mutate": mutate,
        "read_local": read_local,
        "scan_local": scan_local,
        "gossip_syn": gossip_syn,
        "gossip_ack2": gossip_ack2,
        "schema_pull": schema_pull,
        "schema_push": schema_push,
        **admin.table(node),
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
