"""The gossip messages: verbs and the validated wire forms of their arguments.

A gossip round from node A to node B is Cassandra's three-way exchange carried over two
request/response calls:

1. ``gossip_syn`` A -> B, listing every endpoint A knows:
   ``{"cluster": name, "digests": [[host_id, generation, max_version], ...]}``.
   B answers with the *ack*: ``{"digests": [...], "states": {host_id: endpoint_state},
   "now_us": B's wall clock}`` where
   ``digests`` are the endpoints B wants from A (``[host_id, generation, version]``: send me what
   is newer than ``version`` in that generation; 0 for everything) and ``states`` are the deltas
   for which B knows more than A (including endpoints A did not list at all); A measures the
   clock offset between A and B from ``now_us`` and the round trip (``ringd.gms.clock``).
2. ``gossip_ack2`` A -> B: ``{"states": {host_id: endpoint_state}}``, the deltas B asked for.
   B answers ``{}``. A sends no ack2 when B asked for nothing newer than B has.

Endpoint states are in the wire form of ``EndpointState.to_wire``. The parse functions validate
and raise ``ValueError`` (only) on malformed input; ``GossipSyn``, ``GossipAck`` and
``GossipAck2`` are the same as typed messages (the verb table names them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ringd.gms.state import (
    EndpointState,
    GossipDigest,
    digests_from_wire,
    digests_to_wire,
    states_from_wire,
    states_to_wire,
)

GOSSIP_SYN = "gossip_syn"
GOSSIP_ACK2 = "gossip_ack2"

MAX_CLUSTER_NAME_LENGTH = 256


def _check_map(
    args: object, keys: set[str], what: str, optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(args, dict):
        raise ValueError(f"{what} arguments must be a map")
    if not keys <= set(args) <= keys | optional:
        raise ValueError(f"{what} arguments must have exactly the keys {', '.join(sorted(keys))}")
    return args


def check_cluster_name(name: object) -> str:
    if type(name) is not str or not name or len(name) > MAX_CLUSTER_NAME_LENGTH:
        raise ValueError("cluster name must be non-empty text")
    return name


def syn_to_wire(cluster: str, digests: Iterable[GossipDigest]) -> dict[str, Any]:
    return {"cluster": cluster, "digests": digests_to_wire(digests)}


def parse_syn(args: object) -> tuple[str, list[GossipDigest]]:
    """``(cluster name, digests)`` of a ``gossip_syn``."""
    m = _check_map(args, {"cluster", "digests"}, GOSSIP_SYN)
    return check_cluster_name(m["cluster"]), digests_from_wire(m["digests"])


def ack_to_wire(
    digests: Iterable[GossipDigest],
    states: Mapping[str, EndpointState],
    now_us: int | None = None,
) -> dict[str, Any]:
    ack: dict[str, Any] = {"digests": digests_to_wire(digests), "states": states_to_wire(states)}
    if now_us is not None:
        ack["now_us"] = now_us
    return ack


def parse_ack(args: object) -> tuple[list[GossipDigest], dict[str, EndpointState]]:
    """``(requested digests, states)`` of the response to a ``gossip_syn``."""
    m = _check_map(args, {"digests", "states"}, "gossip ack", frozenset({"now_us"}))
    return digests_from_wire(m["digests"]), states_from_wire(m["states"])


def ack_time(args: dict[str, Any]) -> int | None:
    """The answering node's wall clock (µs) in an ack, if it said (for clock offsets)."""
    now = args.get("now_us")
    return now if type(now) is int and 0 <= now < 1 << 63 else None


def ack2_to_wire(states: Mapping[str, EndpointState]) -> dict[str, Any]:
    return {"states": states_to_wire(states)}


def parse_ack2(args: object) -> dict[str, EndpointState]:
    """The states of a ``gossip_ack2``."""
    m = _check_map(args, {"states"}, GOSSIP_ACK2)
    return states_from_wire(m["states"])


@dataclass(frozen=True, slots=True)
class GossipSyn:
    cluster: str
    digests: list[GossipDigest]

    @classmethod
    def from_wire(cls, args: object) -> GossipSyn:
        return cls(*parse_syn(args))

    def to_wire(self) -> dict[str, Any]:
        return syn_to_wire(self.cluster, self.digests)


@dataclass(frozen=True, slots=True)
class GossipAck:
    digests: list[GossipDigest]  # what the answering node wants
    states: dict[str, EndpointState]  # what it knows better
    now_us: int | None = None  # its wall clock

    @classmethod
    def from_wire(cls, args: object) -> GossipAck:
        digests, states = parse_ack(args)
        return cls(digests, states, ack_time(args))  # type: ignore[arg-type]

    def to_wire(self) -> dict[str, Any]:
        return ack_to_wire(self.digests, self.states, self.now_us)


@dataclass(frozen=True, slots=True)
class GossipAck2:
    states: dict[str, EndpointState]

    @classmethod
    def from_wire(cls, args: object) -> GossipAck2:
        return cls(parse_ack2(args))

    def to_wire(self) -> dict[str, Any]:
        return ack2_to_wire(self.states)
