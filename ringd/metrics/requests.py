"""Per verb served by this node: how long requests waited before they ran and how long they
ran (``tpstats``' message-type section).

*Queue wait* is the time from when the connection read the bytes holding a request off its
socket to when its handler started: requests decoded from one read wait for those before them.
*Latency* is from the handler's start to its answer (a deferred or task verb's reply). Both are
``Histogram`` (µs, decaying by window). A verb's metrics exist once it was first served, so
memory is bounded by the verb table.
"""

from __future__ import annotations

from typing import Any

from ringd.metrics.histogram import Histogram


class VerbLatency:
    """One verb's queue wait and latency."""

    __slots__ = ("latency", "queue_wait")

    def __init__(self) -> None:
        self.latency = Histogram()
        self.queue_wait = Histogram()

    def summary(self) -> dict[str, Any]:
        return {"latency": self.latency.summary(), "queue_wait": self.queue_wait.summary()}


class ServedVerbs(dict[str, VerbLatency]):
    """``verb -> VerbLatency``, created when a verb is first served (only verbs of the verb
    table reach a handler)."""

    def __missing__(self, verb: str) -> VerbLatency:
        metrics = self[verb] = VerbLatency()
        return metrics

    def summaries(self) -> dict[str, dict[str, Any]]:
        return {verb: m.summary() for verb, m in list(self.items())}
