"""Replication strategies: which nodes hold the replicas of a token.

Both strategies walk the ring clockwise from the range holding the key's token, as Cassandra does:

- :class:`SimpleStrategy` takes the first ``replication_factor`` distinct nodes, whatever their
  datacenter or rack.
- :class:`NetworkTopologyStrategy` fills each datacenter's factor independently during one walk.
  Within a datacenter it takes nodes from racks it has not used yet, and accepts a node from an
  already-used rack only while it may still do so and cover every rack: at most
  ``factor - racks_in_dc`` repeats (Cassandra's ``acceptableRackRepeats``). So replicas are on
  distinct racks whenever ``factor <= racks``, and on every rack otherwise.

Replica lists are cached per (ring snapshot, strategy, vnode range), so a lookup is a ``bisect``
plus a list index once a range has been seen. Strategies are immutable, hashable values.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ringd.dht.ring import HostId, Ring
from ringd.dht.tokens import RING_SIZE, Range

__all__ = [
    "NetworkTopologyStrategy",
    "ReplicationStrategy",
    "SimpleStrategy",
    "effective_ownership",
    "strategy_from_config",
]

_ReplicaTable = list[tuple[HostId, ...] | None]
_DcTable = list[Mapping[HostId, str] | None]
_NO_REPLICAS: Mapping[HostId, str] = MappingProxyType({})


class ReplicationStrategy(ABC):
    """Where a keyspace's replicas live. Subclasses are immutable and hashable."""

    __slots__ = ()

    @property
    @abstractmethod
    def total_replication_factor(self) -> int:
        """n: the number of replicas of each key (sum over datacenters for NTS)."""

    @abstractmethod
    def factor_for_dc(self, dc: str) -> int:
        """Replicas in datacenter ``dc``.

        For :class:`SimpleStrategy`, which ignores datacenters, this is the whole replication
        factor (as Cassandra's LOCAL_QUORUM does for a non-NTS keyspace).
        """

    @abstractmethod
    def to_config(self) -> dict[str, Any]:
        """The keyspace ``replication`` setting this strategy was parsed from (canonical form)."""

    @abstractmethod
    def _calculate(self, ring: Ring, index: int) -> tuple[HostId, ...]:
        """Natural replicas of the vnode range ending at ``ring.tokens[index]``."""

    # -- lookups ---------------------------------------------------------------------------

    def _table(self, ring: Ring) -> _ReplicaTable:
        return ring.derived(("locator.replicas", self), _empty_table)

    def replicas_at(self, ring: Ring, index: int) -> tuple[HostId, ...]:
        """Natural replicas of the vnode range ending at ``ring.tokens[index]`` (cached)."""
        table = self._table(ring)
        entry = table[index]
        if entry is None:
            entry = table[index] = self._calculate(ring, index)
        return entry

    def replicas(self, ring: Ring, token: int) -> list[HostId]:
        """Natural replicas of ``token`` in ring-walk order (primary owner first).

        Empty when the ring has no tokens.
        """
        if ring.is_empty:
            return []
        return list(self.replicas_at(ring, ring.index_of(token)))

    def replica_dcs(self, ring: Ring, token: int) -> Mapping[HostId, str]:
        """Natural replicas of ``token`` mapped to their datacenter, in ring-walk order.

        A cached read-only mapping (what :func:`ringd.locator.plan_request` takes as
        ``natural``). Empty when the ring has no tokens.
        """
        if ring.is_empty:
            return _NO_REPLICAS
        index = ring.index_of(token)
        table: _DcTable = ring.derived(("locator.replica_dcs", self), _empty_table)
        entry = table[index]
        if entry is None:
            nodes = ring.nodes
            hosts = self.replicas_at(ring, index)
            entry = table[index] = MappingProxyType({h: nodes[h].dc for h in hosts})
        return entry

    def range_replicas(self, ring: Ring) -> list[tuple[Range, tuple[HostId, ...]]]:
        """Every vnode range of ``ring`` with its natural replicas, ordered by end token."""
        return [(r, self.replicas_at(ring, i)) for i, (r, _) in enumerate(ring.ranges())]

    def ranges_for(self, ring: Ring, host_id: HostId) -> list[Range]:
        """The vnode ranges ``host_id`` holds a replica of (what repair of that node covers)."""
        return [r for r, hosts in self.range_replicas(ring) if host_id in hosts]


def _empty_table(ring: Ring) -> list[Any]:
    return [None] * len(ring.tokens)


class SimpleStrategy(ReplicationStrategy):
    """The first ``replication_factor`` distinct nodes clockwise from the key's token."""

    __slots__ = ("_rf",)

    def __init__(self, replication_factor: int) -> None:
        self._rf = _check_factor(replication_factor, "replication_factor", minimum=1)

    @property
    def replication_factor(self) -> int:
        return self._rf

    @property
    def total_replication_factor(self) -> int:
        return self._rf

    def factor_for_dc(self, dc: str) -> int:
        return self._rf

    def to_config(self) -> dict[str, Any]:
        return {"class": "SimpleStrategy", "replication_factor": self._rf}

    def _calculate(self, ring: Ring, index: int) -> tuple[HostId, ...]:
        owners = ring.token_owners
        count = len(owners)
        rf = self._rf
        chosen: list[HostId] = []
        for i in range(index, index + count):
            host_id = owners[i - count if i >= count else i]
            if host_id not in chosen:
                chosen.append(host_id)
                if len(chosen) == rf:
                    break
        return tuple(chosen)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SimpleStrategy):
            return NotImplemented
        return self._rf == other._rf

    def __hash__(self) -> int:
        return hash(("SimpleStrategy", self._rf))

    def __repr__(self) -> str:
        return f"SimpleStrategy(replication_factor={self._rf})"


class NetworkTopologyStrategy(ReplicationStrategy):
    """A replication factor per datacenter, spread over racks (see the module docstring)."""

    __slots__ = ("_factors", "_total")

    def __init__(self, factors: Mapping[str, int]) -> None:
        checked: dict[str, int] = {}
        for dc, factor in factors.items():
            if not isinstance(dc, str) or not dc:
                raise ValueError(f"datacenter names must be non-empty strings, got {dc!r}")
            checked[dc] = _check_factor(factor, f"replication factor for {dc!r}", minimum=0)
        if not any(checked.values()):
            raise ValueError(
                "NetworkTopologyStrategy needs at least one datacenter with a replication "
                "factor above 0, e.g. {'class': 'NetworkTopologyStrategy', 'dc1': 3}"
            )
        self._factors: tuple[tuple[str, int], ...] = tuple(sorted(checked.items()))
        self._total = sum(checked.values())

    @property
    def factors(self) -> dict[str, int]:
        """``{dc: factor}`` as configured (including factors of 0)."""
        return dict(self._factors)

    @property
    def datacenters(self) -> list[str]:
        """Datacenters with a factor above 0, sorted."""
        return [dc for dc, factor in self._factors if factor > 0]

    @property
    def total_replication_factor(self) -> int:
        return self._total

    def factor_for_dc(self, dc: str) -> int:
        for name, factor in self._factors:
            if name == dc:
                return factor
        return 0

    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"class": "NetworkTopologyStrategy"}
        config.update(self._factors)
        return config

    def _calculate(self, ring: Ring, index: int) -> tuple[HostId, ...]:
        nodes = ring.nodes
        dc_hosts = ring.datacenters
        rack_counts: dict[str, int] = ring.derived(("locator.rack_counts",), _rack_counts)
        # per dc: [replicas still wanted, rack repeats still allowed], plus the racks used
        wanted: dict[str, list[int]] = {}
        racks_used: dict[str, set[str]] = {}
        for dc, factor in self._factors:
            hosts = dc_hosts.get(dc, ())
            if factor <= 0 or not hosts:
                continue
            wanted[dc] = [min(factor, len(hosts)), factor - rack_counts[dc]]
            racks_used[dc] = set()
        pending = len(wanted)
        chosen: list[HostId] = []
        if not pending:
            return ()
        owners = ring.token_owners
        count = len(owners)
        for i in range(index, index + count):
            host_id = owners[i - count if i >= count else i]
            if host_id in chosen:
                continue
            info = nodes[host_id]
            state = wanted.get(info.dc)
            if state is None or state[0] == 0:
                continue
            used = racks_used[info.dc]
            if info.rack not in used:
                used.add(info.rack)
            elif state[1] > 0:
                state[1] -= 1
            else:
                continue
            chosen.append(host_id)
            state[0] -= 1
            if state[0] == 0:
                pending -= 1
                if pending == 0:
                    break
        return tuple(chosen)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NetworkTopologyStrategy):
            return NotImplemented
        return self._factors == other._factors

    def __hash__(self) -> int:
        return hash(("NetworkTopologyStrategy", self._factors))

    def __repr__(self) -> str:
        return f"NetworkTopologyStrategy({dict(self._factors)!r})"


def _rack_counts(ring: Ring) -> dict[str, int]:
    return {dc: len(ring.racks(dc)) for dc in ring.datacenters}


def _check_factor(value: object, what: str, *, minimum: int) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"{what} must be an integer, got {value!r}")
        value = int(text)
    if not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{what} must be at least {minimum}, got {value}")
    return value


_CLASS_NAMES = {
    "simplestrategy": "SimpleStrategy",
    "networktopologystrategy": "NetworkTopologyStrategy",
}


def strategy_from_config(config: Mapping[str, Any]) -> ReplicationStrategy:
    """Parse a keyspace's ``replication`` setting.

    ``{"class": "SimpleStrategy", "replication_factor": 3}`` or
    ``{"class": "NetworkTopologyStrategy", "dc1": 3, "dc2": 2}``. Factors may be ints or
    strings of digits (as Cassandra stores them); the class may be given by its Cassandra Java
    name (``org.apache.cassandra.locator.SimpleStrategy``). Anything else raises ``ValueError``
    with a message fit to show the operator.
    """
    if not isinstance(config, Mapping):
        raise ValueError(
            f"replication must be a map such as {{'class': 'SimpleStrategy', "
            f"'replication_factor': 3}}, got {type(config).__name__}"
        )
    raw_class = config.get("class")
    if raw_class is None:
        raise ValueError(
            "replication is missing 'class' (SimpleStrategy or NetworkTopologyStrategy)"
        )
    if not isinstance(raw_class, str):
        raise ValueError(f"replication 'class' must be a string, got {raw_class!r}")
    class_name = _CLASS_NAMES.get(raw_class.rsplit(".", 1)[-1].strip().lower())
    options = {k: v for k, v in config.items() if k != "class"}
    if class_name == "SimpleStrategy":
        if "replication_factor" not in options:
            raise ValueError("SimpleStrategy requires 'replication_factor', e.g. 3")
        unknown = sorted(str(k) for k in options if k != "replication_factor")
        if unknown:
            raise ValueError(
                f"unknown option(s) for SimpleStrategy: {', '.join(unknown)} "
                "(only 'replication_factor' is allowed; use NetworkTopologyStrategy for "
                "per-datacenter factors)"
            )
        return SimpleStrategy(options["replication_factor"])
    if class_name == "NetworkTopologyStrategy":
        if "replication_factor" in options:
            raise ValueError(
                "NetworkTopologyStrategy takes a factor per datacenter, e.g. "
                "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}, "
                "not 'replication_factor'"
            )
        if not options:
            raise ValueError(
                "NetworkTopologyStrategy needs a factor per datacenter, e.g. "
                "{'class': 'NetworkTopologyStrategy', 'dc1': 3}"
            )
        return NetworkTopologyStrategy(options)
    raise ValueError(
        f"unknown replication class {raw_class!r}: use SimpleStrategy or NetworkTopologyStrategy"
    )


def effective_ownership(ring: Ring, strategy: ReplicationStrategy) -> dict[HostId, float]:
    """Share of the token space each node holds a replica of ("Owns (effective)").

    Every node listed in the ring appears, with 0.0 if it replicates nothing. The shares add up
    to the number of replicas each key actually gets (n, or fewer if the ring is too small).
    """
    widths: dict[HostId, int] = dict.fromkeys(ring.nodes, 0)
    for r, hosts in strategy.range_replicas(ring):
        width = r.width
        for host_id in hosts:
            widths[host_id] += width
    return {host_id: width / RING_SIZE for host_id, width in widths.items()}
