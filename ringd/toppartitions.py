"""``toppartitions``: sample a keyspace's hottest keys on this node for a while (nodetool's).

While a sampling runs, every local read and write of the keyspace (whoever coordinated it)
offers its key to a ``Sampler`` (two Space-Saving summaries, ``ringd.metrics.topk``) hooked into
the storage engine; when no sampling runs the engine's only cost is one empty-tuple test per
read or write. Memory is bounded: at most ``MAX_SAMPLINGS`` at once per node, each with at most
``MAX_CAPACITY`` counters per summary.
"""

from __future__ import annotations

from typing import Any

import trio

from ringd.db.engine import StorageEngine
from ringd.metrics.topk import Sampler
from ringd.net.server import Session
from ringd.protocol.errors import ErrorCode, InvalidRequest, ProtocolError
from ringd.protocol.messages import arg
from ringd.schema import Schema
from ringd.service.requests import key_out

MAX_DURATION_MS = 600_000
MAX_CAPACITY = 1024
DEFAULT_CAPACITY = 256
DEFAULT_TOP = 10
MAX_SAMPLINGS = 4


def _bounded(args: dict[str, Any], name: str, default: Any, low: int, high: int) -> int:
    value: int = arg(args, name, int, default)
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be from {low} to {high}, not {value}")
    return value


def verbs(engine: StorageEngine, schema: Schema) -> dict[str, Any]:
    running: list[Sampler] = []

    async def toppartitions(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        keyspace = arg(args, "keyspace", str)
        schema.require(keyspace)
        duration_ms = _bounded(args, "duration_ms", ..., 1, MAX_DURATION_MS)
        capacity = _bounded(args, "capacity", DEFAULT_CAPACITY, 1, MAX_CAPACITY)
        top = _bounded(args, "top", DEFAULT_TOP, 1, capacity)
        if len(running) >= MAX_SAMPLINGS:
            raise ProtocolError(
                f"{MAX_SAMPLINGS} toppartitions samplings are running on this node; "
                "try again when one ends",
                ErrorCode.OVERLOADED,
            )
        sampler = Sampler(capacity)
        running.append(sampler)
        engine.sample(keyspace, sampler)
        try:
            await trio.sleep(duration_ms / 1000)
        finally:
            engine.unsample(keyspace, sampler)
            running.remove(sampler)
        return {
            "keyspace": keyspace,
            "duration_ms": duration_ms,
            "capacity": capacity,
            **sampler.summary(top, key_out),
        }

    return {"toppartitions": toppartitions}
