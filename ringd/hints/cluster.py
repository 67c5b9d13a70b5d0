"""What hinted handoff sees of the cluster, from the node's topology, gossip and schema
(the ``Membership`` and ``Schema`` the ``HintsService`` takes)."""

from __future__ import annotations

from ringd.dht.murmur3 import token_for
from ringd.gms.gossiper import Gossiper
from ringd.schema import Schema
from ringd.service.topology import Topology


class ClusterView:
    def __init__(self, topology: Topology, gossiper: Gossiper, schema: Schema) -> None:
        self.topology = topology
        self.gossiper = gossiper
        self.schema = schema

    def is_alive(self, host_id: str) -> bool:
        return self.topology.is_alive(host_id)

    def in_ring(self, host_id: str) -> bool:
        return host_id in self.topology.ring.nodes

    def address_of(self, host_id: str) -> str | None:
        nodes = self.topology.ring.nodes
        return nodes[host_id].address if host_id in nodes else self.gossiper.address_of(host_id)

    def dc_of(self, host_id: str) -> str | None:
        nodes = self.topology.ring.nodes
        return nodes[host_id].dc if host_id in nodes else None

    def rack_of(self, host_id: str) -> str | None:
        nodes = self.topology.ring.nodes
        return nodes[host_id].rack if host_id in nodes else None

    def down_seconds(self, host_id: str) -> float | None:
        return self.gossiper.downtime(host_id)

    def replicas_for(self, keyspace: str, key: bytes) -> list[str]:
        ks = self.schema.get(keyspace)
        return [] if ks is None else self.topology.replicas(ks, token_for(key))

    def node_count(self) -> int:
        return len(self.topology.ring.nodes)

    def gc_grace_of(self, keyspace: str) -> int | None:
        ks = self.schema.get(keyspace)
        return None if ks is None else ks.gc_grace_seconds
