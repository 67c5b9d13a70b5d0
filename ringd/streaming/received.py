"""Which ranges of which plan this node has received completely (``system/streams.cbor``).

A plan is one membership change as the receiving node sees it (``bootstrap``, ``replace``,
``decommission-HOST``, ``removenode-HOST``); its ranges are recorded one by one as they complete
and forgotten when the plan completes, so a plan restarted after a crash streams only what is
missing."""

from __future__ import annotations

import logging
from pathlib import Path

import cbor2

from ringd.dht.tokens import Range
from ringd.fsutil import atomic_write

log = logging.getLogger(__name__)


class ReceivedRanges:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._plans: dict[str, set[tuple[str, int, int]]] = {}
        if path is not None and path.exists():
            try:
                raw = cbor2.loads(path.read_bytes())
                for plan, items in raw.items():
                    self._plans[str(plan)] = {(str(k), int(s), int(e)) for k, s, e in items}
            except Exception as exc:  # damaged: stream everything again, which is harmless
                log.warning("ignoring damaged %s (%s): ranges will be streamed again", path, exc)
                self._plans = {}

    def has(self, plan: str, keyspace: str, rng: Range) -> bool:
        return (keyspace, rng.start, rng.end) in self._plans.get(plan, ())

    def count(self, plan: str) -> int:
        return len(self._plans.get(plan, ()))

    def add(self, plan: str, keyspace: str, rng: Range) -> None:
        self._plans.setdefault(plan, set()).add((keyspace, rng.start, rng.end))
        self._save()

    def discard(self, plan: str, keyspace: str, ranges: list[Range]) -> None:
        """Forget ranges of a session that completed (nothing is left to resume)."""
        items = self._plans.get(plan)
        if items is None:
            return
        items -= {(keyspace, r.start, r.end) for r in ranges}
        if not items:
            del self._plans[plan]
        self._save()

    def forget(self, plan: str) -> None:
        if self._plans.pop(plan, None) is not None:
            self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        data = {p: sorted([k, s, e] for k, s, e in items) for p, items in self._plans.items()}
        atomic_write(self.path, cbor2.dumps(data))
