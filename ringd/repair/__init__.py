"""Anti-entropy: bringing replicas of the same ranges back into agreement.

- ``merkle``: ``MerkleTree`` over a token range built from (key, row digest) pairs, compared top
  down to find differing leaves; ``diff_rows`` finds the rows of a leaf that need syncing.
"""
