"""The role management verbs (admin only): ``role_create``, ``role_alter``, ``role_drop``,
``role_list``. They change this node's ``RoleStore`` only: roles are per node until they are
kept in replicated system data (ringctl applies a change to every node of a local cluster).

A node run with ``authenticator = "none"`` has no role store: every role verb is INVALID there.
Passwords are hashed off the event loop, one change at a time.
"""

from __future__ import annotations

from typing import Any

import trio

from ringd.auth.gate import Gate
from ringd.auth.roles import RoleStore
from ringd.net.server import Handler, Session
from ringd.protocol.errors import InvalidRequest
from ringd.protocol.messages import arg


def verbs(gate: Gate) -> dict[str, Handler]:
    """Handlers for the role verbs of ``gate``'s role store."""
    changing = trio.Lock()

    def store() -> RoleStore:
        if gate.role_store is None:
            raise InvalidRequest(
                'this node runs with authenticator = "none": it has no roles to manage'
            )
        return gate.role_store

    def password(args: dict[str, Any]) -> str | bytes:
        value: str | bytes = arg(args, "password", (str, bytes))
        return value

    async def role_create(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        roles = store()
        name, kind, secret = arg(args, "name", str), arg(args, "kind", str), password(args)
        async with changing:
            await trio.to_thread.run_sync(roles.create, name, kind, secret)
        return {"name": name, "kind": kind}

    async def role_alter(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        roles = store()
        name, secret = arg(args, "name", str), password(args)
        async with changing:
            await trio.to_thread.run_sync(roles.alter, name, secret)
        return {"name": name}

    async def role_drop(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        roles = store()
        name = arg(args, "name", str)
        async with changing:
            roles.drop(name)
        return {"name": name}

    def role_list(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return {"roles": store().list()}

    return {
        "role_create": role_create,
        "role_alter": role_alter,
        "role_drop": role_drop,
        "role_list": role_list,
    }
