"""Anti-entropy: bringing replicas of the same ranges back into agreement.

- ``merkle``: ``MerkleTree`` over a token range built from (key, row digest) pairs, compared top
  down to find differing leaves; ``diff_rows`` finds the rows of a leaf that need syncing.
- ``validation``: a replica's tree of a range, and a leaf's (key, digest) pairs, from a scan of
  the local storage engine.
- ``session``: ``repair_range`` validates a range on every replica, compares the trees pairwise
  and syncs only the rows that differ (one merged copy to each replica that lacks it).
- ``participant``: a replica's repair verbs (``ReplicaRepair``: validate, leaves, rows, apply,
  release; leases so two sessions cannot repair one range at once) and the coordinator's view
  of a replica (``LocalParticipant`` in-process, ``RemoteParticipant`` over the wire).
- ``history``: ``RepairHistory``, when each range was last repaired and with whom (on disk).
- ``service``: ``RepairService``, sessions this node coordinates: planning (``-pr``,
  ``-st``/``-et``, ``--dc``, ``--hosts``), running ranges ``jobs`` at a time, cancelling, and
  ``status`` (the oldest repair per keyspace, ranges past gc_grace). Every participant records
  the ranges a session completed in its own history.
- ``antientropy``: ``AntiEntropy``, the background task that repairs this node's primary ranges
  piece by piece, least recently repaired first, paced by an interval and an I/O budget.
"""
