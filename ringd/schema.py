"""Keyspace definitions: cluster-wide state that converges on every node.

Each definition carries the timestamp of the change that made it; a drop is a definition marked
dropped. Merging two schemas keeps, per keyspace name, the definition with the larger timestamp,
so every node ends with the same set whatever order it hears of changes in. The schema version is
a digest of the live definitions; gossip carries it and nodes that differ pull and merge.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cbor2

from ringd.fsutil import atomic_write
from ringd.protocol.errors import InvalidRequest

MAX_TTL = 20 * 365 * 24 * 3600  # seconds; the largest ttl a write or a keyspace default may give
NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,48}$")
READ_REPAIR_MODES = ("BLOCKING", "NONE")  # as Cassandra 4; given in any case


@dataclass(frozen=True)
class Keyspace:
    name: str
    replication: dict[str, Any] = field(
        default_factory=lambda: {"class": "SimpleStrategy", "replication_factor": 1}
    )
    gc_grace_seconds: int = 864000
    default_ttl: int = 0
    hinted_handoff: bool = True
    sloppy_quorum: bool = False
    read_repair: str = "BLOCKING"
    timestamp: int = 0  # of the change that made this definition
    dropped: bool = False

    def __post_init__(self) -> None:
        # any case is accepted (definitions stored before were lower case); shown upper case
        if isinstance(self.read_repair, str):
            object.__setattr__(self, "read_repair", self.read_repair.upper())

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: Any) -> Keyspace:
        if not isinstance(data, dict):
            raise InvalidRequest("keyspace definition must be a map")
        known = {f for f in cls.__dataclass_fields__}
        try:
            ks = cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise InvalidRequest(f"bad keyspace definition: {exc}") from None
        ks.validate()
        return ks

    def options(self) -> dict[str, Any]:
        return {
            "gc_grace_seconds": self.gc_grace_seconds,
            "default_ttl": self.default_ttl,
            "hinted_handoff": self.hinted_handoff,
            "sloppy_quorum": self.sloppy_quorum,
            "read_repair": self.read_repair,
        }

    def validate(self) -> None:
        if not isinstance(self.name, str) or not NAME_RE.match(self.name):
            raise InvalidRequest(
                f"keyspace name {self.name!r} must be 1-48 letters, digits or underscores"
            )
        for name in ("gc_grace_seconds", "default_ttl", "timestamp"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise InvalidRequest(f"{name} must be a non-negative integer")
        if self.default_ttl > MAX_TTL:
            raise InvalidRequest(f"default_ttl must be between 0 and {MAX_TTL} seconds")
        for name in ("hinted_handoff", "sloppy_quorum", "dropped"):
            if type(getattr(self, name)) is not bool:
                raise InvalidRequest(f"{name} must be true or false")
        if self.read_repair not in READ_REPAIR_MODES:
            raise InvalidRequest(f"read_repair must be one of {', '.join(READ_REPAIR_MODES)}")
        from ringd.locator.strategies import strategy_from_config

        try:
            strategy_from_config(self.replication)
        except (ValueError, TypeError) as exc:
            raise InvalidRequest(f"replication: {exc}") from None


def replication_warnings(ks: Keyspace, nodes_per_dc: dict[str, int]) -> list[str]:
    """What is wrong with ``ks``'s replication for a ring with ``nodes_per_dc`` nodes in each
    datacenter: a datacenter with no nodes, or a factor above the nodes that can hold replicas.
    Such a keyspace is still valid (nodes may be added later), but requests at levels that need
    more replicas than exist will fail with UNAVAILABLE."""
    from ringd.locator.strategies import (
        NetworkTopologyStrategy,
        SimpleStrategy,
        strategy_from_config,
    )

    strategy = strategy_from_config(ks.replication)
    known = ", ".join(sorted(nodes_per_dc)) or "none"
    total = sum(nodes_per_dc.values())
    out = []
    if isinstance(strategy, SimpleStrategy):
        rf = strategy.replication_factor
        if rf > total:
            out.append(
                f"replication factor {rf} exceeds the {_count(total, 'node')} in the cluster; "
                f"requests needing more than {_count(total, 'replica')} will be unavailable"
            )
        return out
    assert isinstance(strategy, NetworkTopologyStrategy)
    for dc, factor in sorted(strategy.factors.items()):
        have = nodes_per_dc.get(dc, 0)
        if factor > 0 and have == 0:
            out.append(f"datacenter {dc!r} has no nodes (datacenters: {known})")
        elif factor > have:
            out.append(
                f"replication factor {factor} for datacenter {dc!r} exceeds its "
                f"{_count(have, 'node')}; requests needing more than {_count(have, 'replica')} "
                "there will be unavailable"
            )
    return out


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def newer(a: Keyspace, b: Keyspace) -> Keyspace:
    """The definition that wins between two of the same name (later change; drop on a tie)."""
    return a if (a.timestamp, a.dropped, repr(a)) >= (b.timestamp, b.dropped, repr(b)) else b


class Schema:
    """The keyspaces this node knows of, persisted in ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._defs: dict[str, Keyspace] = {}
        self.version = ""
        if path.exists():
            raw = cbor2.loads(path.read_bytes())
            self._defs = {d["name"]: Keyspace(**d) for d in raw.get("keyspaces", [])}
        self._recompute()

    def get(self, name: str) -> Keyspace | None:
        ks = self._defs.get(name)
        return None if ks is None or ks.dropped else ks

    def require(self, name: str) -> Keyspace:
        ks = self.get(name)
        if ks is None:
            raise InvalidRequest(
                f"keyspace {name!r} does not exist; create it with: ringctl keyspace create {name}",
                keyspace=name,
            )
        return ks

    def live(self) -> list[Keyspace]:
        return sorted((k for k in self._defs.values() if not k.dropped), key=lambda k: k.name)

    def all_definitions(self) -> list[Keyspace]:
        return list(self._defs.values())

    def merge(self, definitions: list[Keyspace]) -> list[Keyspace]:
        """Merge definitions in; return those that changed here (to act on, e.g. drops)."""
        changed = []
        for ks in definitions:
            mine = self._defs.get(ks.name)
            winner = ks if mine is None else newer(mine, ks)
            if winner is not mine:
                self._defs[ks.name] = winner
                changed.append(winner)
        if changed:
            self._recompute()
            self._save()
        return changed

    def with_change(self, ks: Keyspace, timestamp: int) -> Keyspace:
        return replace(ks, timestamp=max(timestamp, self._max_timestamp() + 1))

    def _max_timestamp(self) -> int:
        return max((k.timestamp for k in self._defs.values()), default=0)

    def _recompute(self) -> None:
        live = [k.to_wire() for k in self.live()]
        self.version = hashlib.blake2b(cbor2.dumps(live, canonical=True), digest_size=8).hexdigest()

    def _save(self) -> None:
        data = cbor2.dumps({"keyspaces": [k.to_wire() for k in self._defs.values()]})
        atomic_write(self.path, data)
