"""The ring: an immutable snapshot of which node owns which tokens.

A :class:`Ring` is built from ``{host_id: NodeInfo}`` whenever membership or tokens change, and is
never mutated afterwards, so anything derived from it (replica lists per range, ownership) can be
computed once and memoised on the snapshot itself (:meth:`Ring.derived`).

Each token ``t`` a node holds makes it the *primary owner* of the vnode range ``(p, t]`` where
``p`` is the previous token on the ring; a key belongs to the range holding its token, so its
primary owner is the node with the first ring token ``>= token`` (wrapping to the first token).
Lookups are a ``bisect`` over the sorted token list.
"""

from __future__ import annotations

import random
from bisect import bisect_left
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

from ringd.dht.tokens import Range, check_token, random_tokens

__all__ = ["EmptyRingError", "HostId", "NodeInfo", "Ring"]

HostId = str
T = TypeVar("T")


class EmptyRingError(LookupError):
    """Raised when looking up an owner on a ring that holds no tokens."""

    def __init__(self) -> None:
        super().__init__("the ring has no tokens: no node has joined yet")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What the ring needs to know about one node.

    ``tokens`` is normalised to a sorted tuple of distinct ints. A node with no tokens (e.g. one
    still joining) may be listed but owns nothing.
    """

    host_id: HostId
    address: str
    dc: str = "dc1"
    rack: str = "rack1"
    tokens: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.host_id:
            raise ValueError("host_id must not be empty")
        if not self.dc:
            raise ValueError(f"node {self.host_id}: datacenter must not be empty")
        if not self.rack:
            raise ValueError(f"node {self.host_id}: rack must not be empty")
        tokens = tuple(sorted({check_token(t) for t in self.tokens}))
        object.__setattr__(self, "tokens", tokens)


class Ring:
    """Immutable token-ownership snapshot.

    ``Ring(nodes)`` accepts ``{host_id: NodeInfo}`` or an iterable of ``NodeInfo``. Two nodes
    claiming the same token is a ``ValueError``.
    """

    __slots__ = (
        "_nodes",
        "_tokens",
        "_owners",
        "_datacenters",
        "_derived",
        "_hash",
    )

    def __init__(self, nodes: Mapping[HostId, NodeInfo] | Iterable[NodeInfo] = ()) -> None:
        infos: dict[HostId, NodeInfo] = {}
        if isinstance(nodes, Mapping):
            for host_id, info in nodes.items():
                if host_id != info.host_id:
                    raise ValueError(f"node listed as {host_id!r} has host_id {info.host_id!r}")
                infos[host_id] = info
        else:
            for info in nodes:
                if info.host_id in infos:
                    raise ValueError(f"node {info.host_id!r} listed twice")
                infos[info.host_id] = info

        pairs: list[tuple[int, HostId]] = []
        for host_id in sorted(infos):
            for token in infos[host_id].tokens:
                pairs.append((token, host_id))
        pairs.sort()
        for i in range(1, len(pairs)):
            (token, host_id), (prev_token, prev_host) = pairs[i], pairs[i - 1]
            if token == prev_token:
                raise ValueError(f"token {token} is claimed by both {prev_host!r} and {host_id!r}")

        datacenters: dict[str, list[HostId]] = {}
        for host_id in sorted(infos):
            if infos[host_id].tokens:
                datacenters.setdefault(infos[host_id].dc, []).append(host_id)

        self._nodes: Mapping[HostId, NodeInfo] = MappingProxyType(infos)
        self._tokens: tuple[int, ...] = tuple(t for t, _ in pairs)
        self._owners: tuple[HostId, ...] = tuple(h for _, h in pairs)
        self._datacenters: Mapping[str, tuple[HostId, ...]] = MappingProxyType(
            {dc: tuple(hosts) for dc, hosts in sorted(datacenters.items())}
        )
        self._derived: dict[Hashable, Any] = {}
        self._hash: int | None = None

    # -- construction helpers -------------------------------------------------------------

    def with_node(self, info: NodeInfo) -> Ring:
        """A new ring with ``info`` added or replacing the node of the same host id."""
        nodes = dict(self._nodes)
        nodes[info.host_id] = info
        return Ring(nodes)

    def without_node(self, host_id: HostId) -> Ring:
        """A new ring without ``host_id`` (unchanged copy if it is not there)."""
        nodes = dict(self._nodes)
        nodes.pop(host_id, None)
        return Ring(nodes)

    # -- membership ------------------------------------------------------------------------

    @property
    def nodes(self) -> Mapping[HostId, NodeInfo]:
        """Every listed node, with or without tokens (read-only)."""
        return self._nodes

    @property
    def tokens(self) -> tuple[int, ...]:
        """All ring tokens, sorted ascending."""
        return self._tokens

    @property
    def token_owners(self) -> tuple[HostId, ...]:
        """``token_owners[i]`` owns ``tokens[i]``."""
        return self._owners

    @property
    def is_empty(self) -> bool:
        return not self._tokens

    @property
    def datacenters(self) -> Mapping[str, tuple[HostId, ...]]:
        """``{dc: host ids owning tokens in that dc}``, both sorted."""
        return self._datacenters

    def node(self, host_id: HostId) -> NodeInfo:
        return self._nodes[host_id]

    def dc_of(self, host_id: HostId) -> str:
        return self._nodes[host_id].dc

    def rack_of(self, host_id: HostId) -> str:
        return self._nodes[host_id].rack

    def racks(self, dc: str) -> dict[str, tuple[HostId, ...]]:
        """``{rack: host ids}`` of the token-owning nodes of ``dc``."""
        out: dict[str, list[HostId]] = {}
        for host_id in self._datacenters.get(dc, ()):
            out.setdefault(self._nodes[host_id].rack, []).append(host_id)
        return {rack: tuple(hosts) for rack, hosts in sorted(out.items())}

    # -- lookups ---------------------------------------------------------------------------

    def index_of(self, token: int) -> int:
        """Index into :attr:`tokens` of the ring token whose range holds ``token``."""
        tokens = self._tokens
        if not tokens:
            raise EmptyRingError()
        i = bisect_left(tokens, token)
        return 0 if i == len(tokens) else i

    def owner(self, token: int) -> HostId:
        """The primary owner of ``token``."""
        return self._owners[self.index_of(token)]

    def range_at(self, index: int) -> Range:
        """The vnode range ending at ``tokens[index]``."""
        tokens = self._tokens
        return Range(tokens[index - 1], tokens[index])

    def range_for(self, token: int) -> Range:
        """The vnode range holding ``token``."""
        return self.range_at(self.index_of(token))

    def ranges(self) -> tuple[tuple[Range, HostId], ...]:
        """Every vnode range with its primary owner, ordered by end token.

        The ranges tile the ring: every token lies in exactly one of them.
        """
        return self.derived(("dht.ranges",), _compute_ranges)

    def primary_ranges(self, host_id: HostId) -> list[Range]:
        """The vnode ranges ``host_id`` is primary owner of, ordered by end token."""
        return [r for r, owner in self.ranges() if owner == host_id]

    def walk(self, token: int) -> Iterator[tuple[int, HostId]]:
        """``(ring token, owner)`` clockwise, once around, starting at the owner of ``token``."""
        tokens = self._tokens
        owners = self._owners
        count = len(tokens)
        start = self.index_of(token)
        for i in range(start, start + count):
            j = i - count if i >= count else i
            yield tokens[j], owners[j]

    def preference_list(self, token: int) -> Iterator[HostId]:
        """Distinct hosts in clockwise order from the owner of ``token`` (the Dynamo walk)."""
        seen: set[HostId] = set()
        for _, host_id in self.walk(token):
            if host_id not in seen:
                seen.add(host_id)
                yield host_id

    def random_tokens(self, n: int, rng: random.Random) -> list[int]:
        """``n`` distinct random tokens not already on this ring (for a joining node's vnodes)."""
        return random_tokens(n, rng, exclude=self._tokens)

    # -- memoisation -----------------------------------------------------------------------

    def derived(self, key: Hashable, compute: Callable[[Ring], T]) -> T:
        """Return ``compute(self)``, computed once per snapshot and ``key``.

        Valid because the ring never changes; ``key`` must identify everything ``compute``
        depends on besides the ring (e.g. a replication strategy, which is a hashable value).
        """
        try:
            return self._derived[key]
        except KeyError:
            value = compute(self)
            self._derived[key] = value
            return value

    # -- value semantics -------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ring):
            return NotImplemented
        return self is other or dict(self._nodes) == dict(other._nodes)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._nodes.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"Ring(nodes={len(self._nodes)}, tokens={len(self._tokens)})"


def _compute_ranges(ring: Ring) -> tuple[tuple[Range, HostId], ...]:
    tokens = ring.tokens
    owners = ring.token_owners
    return tuple((Range(tokens[i - 1], tokens[i]), owners[i]) for i in range(len(tokens)))
