"""Anti-entropy: bringing replicas of the same ranges back into agreement.

- ``merkle``: ``MerkleTree`` over a token range built from (key, row digest) pairs, compared top
  down to find differing leaves; ``diff_rows`` finds the rows of a leaf that need syncing.
- ``validation``: a replica's tree of a range, and a leaf's (key, digest) pairs, from a scan of
  the local storage engine; ``LocalParticipant``, this node's replica in a repair.
- ``session``: ``repair_range`` validates a range on every replica, compares the trees pairwise
  and syncs only the rows that differ (one merged copy to each replica that lacks it).
"""
