"""ringd: a Dynamo-style, leaderless, replicated key-value store.

Packages:
  protocol/  sans-IO wire protocol: framing, strict CBOR codec, the verb table, error codes
  net/       trio server, peer connections, request/response correlation, message filters
  dht/       Murmur3 tokens, token ranges, the ring and vnodes
  locator/   replication strategies and consistency levels
  gms/       gossip membership and the phi-accrual failure detector
  db/        the storage engine: cells and merge rules, commit log, memtable, sstables
  service/   the coordinator (storage proxy) and the hybrid logical clock
  metrics/   latency histograms and counters behind the admin commands
"""

__version__ = "0.1.0"
