"""The streaming verbs: ``stream_pull`` (peer: a chunk of a token interval's rows),
``stream_request`` (peer: pull these ranges from that node now, for a membership change another
node drives), ``decommission`` (client: this node leaves the ring) and ``removenode`` (client:
re-replicate a dead node's ranges and remove it; ``status``, ``force``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ringd.dht.tokens import Range, check_token
from ringd.net.server import Handler, Session
from ringd.protocol.errors import InvalidRequest
from ringd.protocol.messages import arg
from ringd.streaming.removal import Removals
from ringd.streaming.service import StreamService

MAX_RANGES = 65536


def _ranges(raw: Any) -> list[Range]:
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_RANGES:
        raise InvalidRequest(f"ranges must be a list of 1 to {MAX_RANGES} [start, end] pairs")
    out = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 2):
            raise InvalidRequest("each range must be [start, end]")
        try:
            out.append(Range(check_token(item[0]), check_token(item[1])))
        except ValueError as exc:
            raise InvalidRequest(f"bad range: {exc}") from None
    return out


def verbs(
    service: StreamService,
    decommission: Callable[[], Awaitable[dict[str, Any]]],
    removals: Removals,
    nursery: Callable[[], trio.Nursery | None],
) -> dict[str, Handler]:
    def stream_pull(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return service.pull(args)

    async def stream_request(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        plan, source, ks = arg(args, "plan", str), arg(args, "source", str), arg(args, "ks", str)
        if not service.keyspace_exists(ks):
            raise InvalidRequest(f"keyspace {ks!r} does not exist on this node")
        ranges = _ranges(args.get("ranges"))
        session = await service.fetch(plan, source, ks, ranges)
        service.received.discard(plan, ks, ranges)
        return session.to_wire()

    async def decommission_verb(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return await decommission()

    async def removenode(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        action = arg(args, "action", str, "remove")
        if action == "status":
            return removals.status()
        if action == "force":
            return removals.force()
        if action != "remove":
            raise InvalidRequest("action must be remove, status or force")
        where = nursery()
        if where is None:
            raise InvalidRequest("this node does not serve removenode (no listener)")
        return await removals.remove(arg(args, "host_id", str), where)

    return {
        "removenode": removenode,
        "stream_pull": stream_pull,
        "stream_request": stream_request,
        "decommission": decommission_verb,
    }
