"""toppartitions' hook in the engine: samplers see local reads and writes only while hooked."""

from __future__ import annotations

from collections.abc import Callable

from ringd.db.engine import StorageEngine
from ringd.metrics.topk import Sampler

from .conftest import put

Opener = Callable[..., StorageEngine]


async def test_samplers_see_reads_and_writes_while_hooked(open_engine: Opener) -> None:
    e = open_engine()
    await e.apply("ks", b"before", put(1, a=b"1"))
    first, second = Sampler(8), Sampler(8)
    e.sample("ks", first)
    e.sample("ks", second)
    await e.apply("ks", b"hot", put(2, a=b"1"))
    await e.apply("ks", b"hot", put(3, a=b"2"))
    await e.apply("other", b"elsewhere", put(3, a=b"2"))  # another keyspace: not sampled
    e.read("ks", b"hot")
    e.read("ks", b"missing")
    e.unsample("ks", first)
    await e.apply("ks", b"late", put(4, a=b"1"))
    assert first.writes.top(8) == [(b"hot", 2, 0)]
    assert sorted(k for k, _, _ in first.reads.top(8)) == [b"hot", b"missing"]
    assert second.writes.top(8) == [(b"hot", 2, 0), (b"late", 1, 0)]
    e.unsample("ks", second)
    e.unsample("gone", second)  # a keyspace without a store: nothing to do
    await e.apply("ks", b"after", put(5, a=b"1"))
    assert second.writes.total == 3
