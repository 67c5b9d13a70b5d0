"""Cleanup: a compaction that leaves out the rows of tokens the node no longer replicates."""

from __future__ import annotations

from pathlib import Path

import trio

from ringd.db.cells import Cell, Row
from ringd.db.engine import EngineOptions, StorageEngine
from ringd.dht.murmur3 import token_for


async def test_cleanup_removes_only_rejected_tokens(tmp_path: Path) -> None:
    engine = StorageEngine.open(tmp_path / "data", EngineOptions(clock=lambda: 1_000_000.0))
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        keys = [b"k%d" % i for i in range(500)]
        for key in keys[:300]:
            await engine.apply("ks", key, Row({"v": Cell(1, key, None)}))
        await engine.flush()
        for key in keys[300:]:  # still in the memtable: flushed first
            await engine.apply("ks", key, Row({"v": Cell(1, key, None)}))

        def keep(token: int) -> bool:
            return token % 2 == 0

        removed = await engine.cleanup("ks", keep)
        kept = {k for k in keys if keep(token_for(k))}
        assert removed == len(keys) - len(kept) > 0
        assert {k for _, k, _ in engine.scan("ks")} == kept
        assert all(engine.read("ks", k) is None for k in set(keys) - kept)
        assert engine.stats()["ks"]["rows_on_disk"] == len(kept)
        assert await engine.cleanup("other", keep) == 0
        nursery.cancel_scope.cancel()
    await engine.close()
