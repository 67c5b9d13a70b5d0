"""ringd: a Dynamo-style, leaderless, replicated key-value store.

Packages:
  protocol/  sans-IO wire protocol: framing, strict CBOR codec, the verb table, error codes
  net/       trio server, peer connections, request/response correlation, message filters
  auth/      the gate: peer authentication, client roles and logins (and TLS contexts)
  dht/       Murmur3 tokens, token ranges, the ring and vnodes
  locator/   replication strategies and consistency levels
  gms/       gossip membership and the phi-accrual failure detector
  db/        the storage engine: cells and merge rules, commit log, memtable, sstables
  service/   the coordinator (storage proxy), the replica and the hybrid logical clock
  hints/     hinted handoff and sloppy quorum's stand-ins
  repair/    Merkle-tree repair, background anti-entropy, the stale-data start check
  metrics/   latency histograms and counters behind the admin commands

Modules: ``schema`` (keyspace definitions), ``admin`` (admin views and test hooks), ``verbs``
(the merged handler table), ``node`` (the only module that wires the services), ``config``,
``main``. docs/architecture.md describes how they fit together.
"""

__version__ = "0.1.0"
