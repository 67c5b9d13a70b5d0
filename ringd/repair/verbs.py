"""The repair verbs: a replica's side (peer only) and the sessions a client starts and follows.

Peer (``ringd.repair.participant``): ``repair_validate`` and ``repair_leaves`` scan the local
data (task), ``repair_rows`` reads rows (inline), ``repair_apply`` checks every row before it
applies any (task), ``repair_release`` ends a session on the participant (inline).

Client: ``repair_start`` plans and starts a session and answers with it at once (it runs in the
repair service's nursery); ``repair_session {id}`` and ``repair_sessions`` follow it,
``repair_cancel {id}`` stops it, ``repair_state`` says when this node's ranges were last
repaired, what anti-entropy is doing, and how many validations this replica ran.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from ringd.net.server import Handler, Session
from ringd.protocol.errors import InvalidRequest
from ringd.protocol.messages import arg
from ringd.repair.antientropy import AntiEntropy
from ringd.repair.participant import ReplicaRepair
from ringd.repair.service import RepairOptions, RepairService


def state(
    service: RepairService, replica: ReplicaRepair, anti_entropy: AntiEntropy | None
) -> dict[str, Any]:
    """``repair_state``: the service's status plus this replica's counters and anti-entropy."""
    out = service.status()
    out["validations"] = replica.validations
    out["rows_received"] = replica.rows_received
    ae: dict[str, Any] = {"enabled": anti_entropy is not None}
    if anti_entropy is not None:
        current = anti_entropy.current
        ae.update(
            interval_s=anti_entropy.settings.interval_s,
            mb_per_s=anti_entropy.settings.mb_per_s,
            pieces_done=anti_entropy.pieces_done,
            rows_streamed=anti_entropy.rows_streamed,
            current=None
            if current is None
            else {"keyspace": current[0], "range": [str(current[1].start), str(current[1].end)]},
        )
    out["anti_entropy"] = ae
    return out


def stale_warnings(status: dict[str, Any]) -> list[str]:
    """One line per keyspace with ranges here not repaired within gc_grace (``status``)."""
    return [
        f"keyspace {k['keyspace']} has ranges not repaired within gc_grace "
        f"({k['gc_grace_seconds']} s): deleted data may come back; "
        f"run 'ringctl repair {k['keyspace']}'"
        for k in status["keyspaces"]
        if k["stale"]
    ]


def verbs(
    replica: ReplicaRepair,
    service: RepairService,
    anti_entropy: Callable[[], AntiEntropy | None] = lambda: None,
) -> dict[str, Handler]:
    """The peer verbs on ``replica`` and the client verbs on ``service``."""

    async def repair_validate(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        return await replica.validate(args)

    async def repair_leaves(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        return await replica.leaves(args)

    def repair_rows(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return replica.rows(args)

    async def repair_apply(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return await replica.apply(args)

    def repair_release(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return replica.release_verb(args)

    def _session_id(args: dict[str, Any]) -> str:
        sid = arg(args, "id", str)
        session = service.sessions.get(sid)
        if session is None:
            raise InvalidRequest(f"no repair session {sid!r} on this node")
        return sid

    def repair_start(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return service.start(RepairOptions.from_args(args)).to_wire()

    def repair_session(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return service.sessions[_session_id(args)].to_wire()

    def repair_sessions(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        sessions = sorted(service.sessions.values(), key=lambda x: x.started)
        return {"sessions": [x.to_wire() for x in sessions]}

    async def repair_cancel(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        session = service.cancel(_session_id(args))
        with trio.move_on_after(5):  # answer with the final state once the session stopped
            await session.ended.wait()
        return session.to_wire()

    def repair_state(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return state(service, replica, anti_entropy())

    return {
        "repair_validate": repair_validate,
        "repair_leaves": repair_leaves,
        "repair_rows": repair_rows,
        "repair_apply": repair_apply,
        "repair_release": repair_release,
        "repair_start": repair_start,
        "repair_session": repair_session,
        "repair_sessions": repair_sessions,
        "repair_cancel": repair_cancel,
        "repair_state": repair_state,
    }
