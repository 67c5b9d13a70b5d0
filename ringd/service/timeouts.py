"""Every timeout the node waits with, from one place: built once from the configuration."""

from __future__ import annotations

from dataclasses import dataclass

from ringd.config import Config
from ringd.protocol.messages import VERBS


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. ``write``/``read``: a coordinated write or read (``write_timeout_ms``,
    ``read_timeout_ms``); ``scan_range``: one token range of a scan page, all replicas;
    ``schema``: a schema push or pull; ``seed_ring``: asking a seed for the ring at first start;
    ``connect``: opening an internode connection. Other verbs wait their verb table timeout."""

    write: float = 2.0
    read: float = 5.0
    scan_range: float = 20.0
    schema: float = 2.0
    seed_ring: float = 2.0
    connect: float = 1.0

    @classmethod
    def from_config(cls, config: Config) -> Timeouts:
        read = config.read_timeout_ms / 1000.0
        return cls(write=config.write_timeout_ms / 1000.0, read=read, scan_range=read * 4)

    @staticmethod
    def verb(name: str) -> float:
        """A verb's default timeout (the verb table's)."""
        return VERBS[name].timeout
