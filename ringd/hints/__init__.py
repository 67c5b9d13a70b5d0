"""Hinted handoff: writes a replica missed, kept by the coordinator and replayed to it later.

- ``store``: ``HintStore``, durable append-only hint files per target host (CRC-checked records,
  sealed files replayed oldest first, delivery positions kept across restarts, corrupted files
  reported and skipped).
- ``service``: ``HintsService``, the one front door: ``submit`` keeps a hint unless handoff is
  disabled (for the node or the target's datacenter), the target is past the hint window, or its
  hints fill ``max_hints_size_per_host``; ``run`` is the dispatcher that replays hints to live
  hosts in throttled pages, dropping hints older than gc_grace; ``pending`` feeds the views.
"""
