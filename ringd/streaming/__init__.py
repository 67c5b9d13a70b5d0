"""Streaming: moving the rows of token ranges of a keyspace from one node to another.

Bootstrap, decommission, removenode and replace all move data the same way: a *session* on the
receiving node pulls the rows of each range from a source node in chunks (``stream_pull``),
checks each chunk's CRC, applies the rows to its storage engine (they keep their timestamps and
tombstones, so applying twice or next to newer writes is harmless), throttled by
``stream_throughput_mb_per_s``. A range counts as received only once all of it is applied, and
the received ranges of a *plan* (``bootstrap``, ``decommission-HOST``...) are kept in
``system/streams.cbor``, so a session restarted after a crash skips them. ``netstats`` shows
every session with its bytes and progress.

Repair applies the rows it moves with the same ``service.apply_rows`` (all appended, then one
wait for their durability); its transfer stays row by row, by key (``ringd.repair``).

Modules: ``chunks`` (the CRC-checked chunk), ``throttle`` (the byte-rate limit), ``received``
(the record of received ranges), ``service`` (sessions, both sides), ``bootstrap`` (what a joining or replacing node streams),
``decommission`` (what a leaving node hands over, and a dead node's ranges for removenode),
``removal`` (removenode), ``verbs``.
"""
