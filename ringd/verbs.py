"""The node's handler table: one ``{verb: handler}`` dict per subsystem, merged and checked
against the verb table (``ringd.protocol.messages.VERBS``).

Each subsystem that serves verbs has a ``verbs(...)`` function next to its code:

  ringd.service.client_verbs   put, get, delete, scan, keyspace_*
  ringd.service.replica        mutate, mutate_batch, read_local, scan_local
  ringd.service.schema_sync    schema_pull, schema_push
  ringd.gms.verbs              gossip_syn, gossip_ack2
  ringd.admin                  ping, the admin views, flush/compact/verify, test hooks
  ringd.hints.verbs            hints_*, mutate_hinted, read_hinted
  ringd.auth.verbs             role_create, role_alter, role_drop, role_list
  ringd.repair.verbs           repair_validate/leaves/rows/apply/release, repair_start/...
  ringd.streaming.verbs        stream_pull
  ringd.auth.gate              auth (a peer's proof of the cluster secret)

Adding a verb is adding a row to the verb table and a handler to one of these (a new subsystem
gets its own ``verbs.py`` and one more argument to :func:`merge`).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from ringd.net.server import Handler
from ringd.protocol import messages


def merge(*tables: dict[str, Handler]) -> dict[str, Handler]:
    """One table from the subsystems' tables; ``ValueError`` unless every verb of the verb table
    (but ``hello`` and the batch verbs, which the server answers) has exactly one handler of the
    right kind. A batch verb may have a handler of its own, which then runs whole batches."""
    merged: dict[str, Handler] = {}
    for table in tables:
        for name, handler in table.items():
            if name in merged:
                raise ValueError(f"two handlers for verb {name}")
            verb = messages.VERBS.get(name)
            if verb is None:
                raise ValueError(f"handler for {name}, which is not in the verb table")
            if name in messages.SERVER_VERBS and name not in messages.BATCHES:
                raise ValueError(f"handler for {name}, which the server answers")
            if inspect.iscoroutinefunction(handler) != (verb.mode == messages.TASK):
                raise ValueError(f"handler for {name} does not match its mode ({verb.mode})")
            merged[name] = handler
    missing = sorted(set(messages.VERBS) - set(merged) - messages.SERVER_VERBS)
    if missing:
        raise ValueError(f"no handler for verbs: {', '.join(missing)}")
    return merged


def message_type(name: str) -> Any:
    """The class a verb table entry names (``"module:Class"``), or None for ``""``."""
    if not name:
        return None
    module, _, cls = name.partition(":")
    return getattr(importlib.import_module(module), cls)
