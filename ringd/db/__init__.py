"""The storage engine: cells and their merge rules, commit log, memtable, sstables, compaction.

Log-structured, as Cassandra's (docs/architecture.md, "Storage engine"). Parts, from the bottom up:

- ``cells``: ``Cell``, ``RowTombstone``, ``Row`` and the last-write-wins merge rules every
  replica follows, plus ``Row.purged`` (what compaction keeps).
- ``errors``: ``StorageCorruption``, raised with the file and byte offset of damaged data.
- ``commitlog``: segment files of CRC-checked records; buffered appends, inline writes,
  fsync in a worker thread for the ``periodic``, ``batch`` and ``group`` sync modes (the group
  commit's in the event loop's thread while fsyncs are fast); replay
  that skips only a torn final record; segment release once memtables are flushed.
- ``memtable``: per keyspace, ``key -> row``, each row held as its CBOR encoding (a plain
  overwrite merges without decoding), with a lazily sorted ``(token, key)`` view for flushes
  and scans.
- ``sstable``: immutable sorted files with checksummed data blocks, an index (per-block first
  keys for seeks, per-row offsets and a key-hash index for point reads), a bloom filter and
  metadata; writer (write, fsync, rename, fsync directory) and reader.
- ``compaction``: merging sorted row streams, purging with gc_grace and the overlap rule, the
  size-tiered strategy.
- ``engine``: ``StorageEngine`` and ``EngineOptions`` tie them together: ``apply``, ``read``,
  ``scan``, ``flush``, ``compact``, ``drop_keyspace``, ``stats``, ``verify``, background
  ``run`` and ``close``.
"""

from ringd.db.engine import EngineOptions, StorageEngine
from ringd.db.errors import StorageCorruption

__all__ = ["EngineOptions", "StorageCorruption", "StorageEngine"]
