"""Removenode: the survivors re-replicate the ranges of a dead node, then it leaves the ring.

The node given ``removenode HOST_ID`` drives it: for every range the dead node replicated, each
node that replicates it once the dead node is gone (and does not now) pulls it from a live
surviving replica (``stream_request``, plan ``removenode-HOST``: a failed removal run again
skips what was received). Then the dead node's gossip state is replaced by one with a newer
generation and STATUS LEFT (as ``assassinate`` does), so every node drops it from the ring.
``force`` stops waiting for the streams and removes the node at once (ranges may then have
fewer copies until repair). Writes during a removal go to the current replicas (the dead one
gets hints), so every write acknowledged at a level is on enough survivors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from ringd.protocol.errors import ErrorCode, InvalidRequest, ProtocolError
from ringd.schema import Schema
from ringd.service.topology import Topology
from ringd.streaming.decommission import (
    Call,
    DecommissionError,
    removal_targets,
    request_streams,
)

log = logging.getLogger(__name__)

PLAN_PREFIX = "removenode-"


@dataclass
class Removal:
    host_id: str
    address: str
    state: str = "RUNNING"  # RUNNING, COMPLETED, FAILED, FORCED
    sessions_total: int = 0
    sessions: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    started: float = field(default_factory=time.time)

    def to_wire(self) -> dict[str, Any]:
        return {
            "host_id": self.host_id,
            "address": self.address,
            "state": self.state,
            "sessions_done": len(self.sessions),
            "sessions_total": self.sessions_total,
            "rows": sum(int(s.get("rows", 0)) for s in self.sessions),
            "bytes": sum(int(s.get("bytes", 0)) for s in self.sessions),
            "error": self.error,
            "started": self.started,
        }


class Removals:
    """At most one removal at a time, driven by this node."""

    def __init__(
        self,
        topology: Topology,
        schema: Schema,
        call: Call,
        assassinate: Callable[[str], str],
        local_address: str,
    ) -> None:
        self.topology = topology
        self.schema = schema
        self.call = call
        self.assassinate = assassinate
        self.local_address = local_address
        self.current: Removal | None = None
        self._scope: trio.CancelScope | None = None
        self._finished: trio.Event | None = None

    def _check(self, host_id: str) -> list[tuple[str, str, str, list[Any]]]:
        topology = self.topology
        if self.current is not None and self.current.state == "RUNNING":
            raise InvalidRequest(
                f"a removal of {self.current.host_id} is running (removenode status / force)"
            )
        if topology.changing:
            raise InvalidRequest(
                "another node is joining or leaving the ring: one membership change at a time"
            )
        if host_id == topology.local_host_id:
            raise InvalidRequest("that is this node: decommission it instead")
        if host_id not in topology.ring.nodes:
            raise InvalidRequest(f"no node with host id {host_id} in the ring")
        if topology.is_alive(host_id):
            raise InvalidRequest(
                f"{topology.address(host_id)} ({host_id}) is UP: removenode is for dead nodes; "
                "decommission a live one"
            )
        targets = []
        ring = topology.ring
        for ks in self.schema.live():
            try:
                pairs = removal_targets(
                    ring, host_id, topology.strategy(ks), topology.is_alive, ks.name
                )
            except DecommissionError as exc:
                raise InvalidRequest(f"removenode refused: {exc}") from None
            for (gaining, source), ranges in sorted(pairs.items()):
                if not topology.is_alive(gaining):
                    raise InvalidRequest(
                        f"removenode refused: {topology.address(gaining)}, which takes over "
                        f"ranges of {ks.name}, is down"
                    )
                targets.append(
                    (ks.name, topology.address(gaining), topology.address(source), ranges)
                )
        return targets

    async def remove(self, host_id: str, nursery: trio.Nursery) -> dict[str, Any]:
        """Remove the dead node ``host_id`` and return once it is done (or forced)."""
        targets = self._check(host_id)
        removal = self.current = Removal(host_id, self.topology.address(host_id))
        removal.sessions_total = len(targets)
        finished = self._finished = trio.Event()
        log.info("removenode %s: %d stream sessions", host_id, len(targets))
        nursery.start_soon(self._run, removal, targets, finished)
        await finished.wait()
        if removal.state == "FAILED":
            raise ProtocolError(
                f"removenode failed: {removal.error}; run it again to resume (ranges already "
                "streamed are skipped), or 'removenode force'",
                ErrorCode.SERVER_ERROR,
            )
        return removal.to_wire()

    async def _run(
        self, removal: Removal, targets: list[tuple[str, str, str, list[Any]]], finished: trio.Event
    ) -> None:
        try:
            with trio.CancelScope() as self._scope:
                try:
                    removal.sessions = await request_streams(
                        self.call, PLAN_PREFIX + removal.host_id, targets
                    )
                except DecommissionError as exc:
                    removal.state, removal.error = "FAILED", str(exc)
                    log.warning("removenode %s failed: %s", removal.host_id, exc)
                    return
                self._left(removal, "COMPLETED")
        finally:
            self._scope = None
            finished.set()

    def _left(self, removal: Removal, state: str) -> None:
        try:
            self.assassinate(removal.address)
        except ValueError as exc:  # it came back meanwhile
            removal.state, removal.error = "FAILED", str(exc)
            return
        removal.state = state
        log.info("removenode %s: %s, marked LEFT", removal.host_id, state.lower())

    def status(self) -> dict[str, Any]:
        return {"removal": None if self.current is None else self.current.to_wire()}

    def force(self) -> dict[str, Any]:
        """Stop waiting for the running removal's streams and remove the node now."""
        removal = self.current
        if removal is None or removal.state != "RUNNING":
            raise InvalidRequest("no removal is running on this node")
        if self._scope is not None:
            self._scope.cancel()
        self._left(removal, "FORCED")
        if self._finished is not None:
            self._finished.set()
        return removal.to_wire()
