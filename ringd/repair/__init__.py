"""Anti-entropy: bringing replicas of the same ranges back into agreement.

- ``merkle``: ``MerkleTree`` over a token range built from (key, row digest) pairs, compared top
  down to find differing leaves; ``diff_rows`` finds the rows of a leaf that need syncing.
- ``validation``: a replica's tree of a range, and a leaf's (key, digest) pairs, from a scan of
  the local storage engine.
"""
