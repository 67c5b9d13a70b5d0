"""Gossip membership and the phi-accrual failure detector (Cassandra's ``gms`` package).

Parts, from the bottom up:

- ``state``: ``EndpointState`` -- what gossip knows about one node: a ``HeartBeatState``
  ``(generation, version)`` and application states ``{key: VersionedValue(value, version)}``
  (STATUS, TOKENS, DC, RACK, ADDRESS, HOST_ID, LOAD, SCHEMA, RELEASE_VERSION), with validated,
  CBOR-friendly wire forms; ``GossipDigest`` ``(host_id, generation, max_version)``.
- ``failure_detector``: ``FailureDetector`` -- per endpoint a bounded window of heartbeat
  inter-arrival times and phi = elapsed / mean * (1 / ln 10); convict above a threshold (8).
- ``messages``: the ``gossip_syn`` / ``gossip_ack2`` verbs and the validated wire forms of their
  arguments and responses.
- ``gossiper``: ``Gossiper`` -- owns the endpoint states of every known node (keyed by host id),
  bumps the local heartbeat every interval, exchanges digests and deltas with chosen peers through
  an injected ``send(address, verb, args)`` coroutine (so it knows nothing about the network),
  feeds every observed version increase to the failure detector, judges nodes alive or dead and
  tells subscribers (``join``, ``alive``, ``dead``, ``change``, ``restart``). The server routes the
  two verbs to ``Gossiper.handle_syn`` and ``Gossiper.handle_ack2``.

The server owns persistence: it keeps the host id and tokens across restarts and passes a larger
``generation`` at every start; gossip then replaces the old state of that host id everywhere.
"""

from ringd.gms.failure_detector import PHI_FACTOR, FailureDetector
from ringd.gms.gossiper import EVENTS, Gossiper, Listener, Send
from ringd.gms.messages import GOSSIP_ACK2, GOSSIP_SYN
from ringd.gms.state import (
    DEAD_STATES,
    AppState,
    EndpointState,
    GossipDigest,
    HeartBeatState,
    Status,
    VersionedValue,
)

__all__ = [
    "DEAD_STATES",
    "EVENTS",
    "GOSSIP_ACK2",
    "GOSSIP_SYN",
    "PHI_FACTOR",
    "AppState",
    "EndpointState",
    "FailureDetector",
    "GossipDigest",
    "Gossiper",
    "HeartBeatState",
    "Listener",
    "Send",
    "Status",
    "VersionedValue",
]
