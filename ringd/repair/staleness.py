"""Stale data must not rejoin: a node out of touch with its cluster for longer than gc_grace may
hold rows whose deletions the others have already purged, and would bring them back.

``LastContact`` keeps, in ``system/last_contact.cbor``, the last time this node saw at least
one live peer and how many peers its ring had (saved every minute while running and at a clean
shutdown). At start, :meth:`LastContact.check` refuses when the node had peers and that time is
older than the smallest gc_grace of its replicated keyspaces. A node that never had peers (a
single-node cluster) or has no record (first start) is never refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import cbor2
import trio

from ringd.fsutil import atomic_write
from ringd.schema import Keyspace

log = logging.getLogger(__name__)

SAVE_INTERVAL_S = 60.0


class StaleData(Exception):
    """The node must not start with its data; the message is the one-line reason."""


class Peers(Protocol):
    local_host_id: str

    @property
    def ring(self) -> Any: ...

    def is_alive(self, host_id: str) -> bool: ...


def replicas(ks: Keyspace) -> int:
    """The total replication factor of a keyspace (over every datacenter)."""
    return sum(v for k, v in ks.replication.items() if k != "class" and type(v) is int)


class LastContact:
    def __init__(self, path: Path, wall: Callable[[], float]) -> None:
        self.path = path
        self.wall = wall
        self.last_contact: float | None = None
        self.peers = 0
        if path.exists():
            try:
                raw = cbor2.loads(path.read_bytes())
                value = raw.get("last_contact")
                self.last_contact = None if value is None else float(value)
                self.peers = int(raw.get("peers", 0))
            except Exception as exc:  # an unreadable record: no check rather than no start
                log.warning("ignoring damaged %s: %s", path, exc)

    def check(self, keyspaces: Iterable[Keyspace], accept_stale: bool) -> None:
        """``StaleData`` if this node was out of touch for longer than a keyspace's gc_grace."""
        if self.peers == 0 or self.last_contact is None:
            return
        replicated = [k for k in keyspaces if replicas(k) > 1]
        if not replicated:
            return
        shortest = min(replicated, key=lambda k: k.gc_grace_seconds)
        age = self.wall() - self.last_contact
        if age <= shortest.gc_grace_seconds:
            return
        reason = (
            f"this node last saw its cluster {age:.0f} s ago, longer than gc_grace_seconds "
            f"({shortest.gc_grace_seconds}) of keyspace {shortest.name}: its data may bring "
            "deleted rows back; wipe the data directory and rejoin, or start with "
            "--accept-stale-data"
        )
        if accept_stale:
            log.warning("starting anyway (--accept-stale-data): %s", reason)
            return
        raise StaleData(reason)

    def note(self, peers: Peers) -> None:
        """Record now as the last contact if a peer is alive; remember the ring's size."""
        others = [h for h in peers.ring.nodes if h != peers.local_host_id]
        self.peers = len(others)
        if any(peers.is_alive(h) for h in others):
            self.last_contact = self.wall()

    def save(self) -> None:
        try:
            atomic_write(
                self.path, cbor2.dumps({"last_contact": self.last_contact, "peers": self.peers})
            )
        except OSError as exc:
            log.warning("cannot save %s: %s", self.path, exc)

    async def run(
        self,
        peers: Peers,
        interval: float = SAVE_INTERVAL_S,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        await trio.sleep(min(interval, 10.0))  # once gossip has had time to see the peers
        while True:
            self.note(peers)
            self.save()
            await trio.sleep(interval)
