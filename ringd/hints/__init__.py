"""Hinted handoff: writes a replica missed, kept by the coordinator and replayed to it later.

- ``store``: ``HintStore``, durable append-only hint files per target host (CRC-checked records,
  sealed files replayed oldest first, delivery positions kept across restarts, corrupted files
  reported and skipped).
"""
