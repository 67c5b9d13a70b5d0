"""The start-up check that keeps a node out of touch past gc_grace from rejoining with its data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ringd.repair.staleness import LastContact, StaleData
from ringd.schema import Keyspace

RF3 = {"class": "SimpleStrategy", "replication_factor": 3}


@dataclass
class Ring:
    nodes: dict[str, object] = field(default_factory=dict)


@dataclass
class Peers:
    alive: set[str]
    local_host_id: str = "me"
    ring: Ring = field(default_factory=Ring)

    def is_alive(self, host_id: str) -> bool:
        return host_id in self.alive


def test_a_node_out_of_touch_past_gc_grace_is_refused(tmp_path: Path) -> None:
    now = [1000.0]
    path = tmp_path / "last_contact.cbor"
    contact = LastContact(path, lambda: now[0])
    peers = Peers({"a"}, ring=Ring({"me": 0, "a": 0, "b": 0}))
    contact.note(peers)
    contact.save()
    now[0] += 11
    again = LastContact(path, lambda: now[0])
    short = [Keyspace("ks", RF3, gc_grace_seconds=10), Keyspace("long", RF3)]
    with pytest.raises(StaleData, match="longer than gc_grace_seconds \\(10\\) of keyspace ks"):
        again.check(short, accept_stale=False)
    again.check(short, accept_stale=True)  # the operator's override
    again.check([Keyspace("ks", gc_grace_seconds=10)], accept_stale=False)  # RF 1: no replicas
    again.check([Keyspace("ks", RF3, gc_grace_seconds=20)], accept_stale=False)


def test_no_peers_or_no_record_is_never_refused(tmp_path: Path) -> None:
    now = [1000.0]
    ks = [Keyspace("ks", RF3, gc_grace_seconds=1)]
    LastContact(tmp_path / "none.cbor", lambda: now[0]).check(ks, accept_stale=False)
    single = LastContact(tmp_path / "single.cbor", lambda: now[0])
    single.note(Peers(set(), ring=Ring({"me": 0})))
    single.save()
    now[0] += 1000
    LastContact(tmp_path / "single.cbor", lambda: now[0]).check(ks, accept_stale=False)
    # peers in the ring, none alive at the last save: the earlier contact still counts
    alone = LastContact(tmp_path / "alone.cbor", lambda: now[0])
    alone.note(Peers({"a"}, ring=Ring({"me": 0, "a": 0})))
    now[0] += 100
    alone.note(Peers(set(), ring=Ring({"me": 0, "a": 0})))
    alone.save()
    with pytest.raises(StaleData):
        LastContact(tmp_path / "alone.cbor", lambda: now[0]).check(ks, accept_stale=False)
