"""Crash loop: a real ringd in batch mode is killed with SIGKILL at random moments during a write
load, 30 times; after each restart every acknowledged write is there."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

from nodes import Ringd, wait_for

from ringctl.client import Client, ConnectError
from ringd.protocol.errors import ProtocolError

KILLS = 30
WRITERS = 4


def all_keys(node: Ringd) -> set[str]:
    keys: set[str] = set()
    with node.client(timeout=60) as db:
        cursor = None
        while True:
            page = db.scan("crash", cursor, limit=5000)
            keys.update(row["key"] for row in page["rows"])
            cursor = page["cursor"]
            if cursor is None:
                return keys


def test_acknowledged_writes_survive_repeated_kill_9(ringd_factory: Callable[..., Ringd]) -> None:
    rng = random.Random(7)
    node = ringd_factory(commitlog_sync="batch", memtable_flush_mb=1)
    with node.client() as db:
        db.keyspace_create("crash")
    acked: set[str] = set()
    lock = threading.Lock()
    for round_ in range(KILLS):
        stop = threading.Event()

        def writer(wid: int, round_: int = round_, stop: threading.Event = stop) -> None:
            try:
                with Client(node.address, timeout=10) as db:
                    i = 0
                    while not stop.is_set():
                        key = f"r{round_}-w{wid}-{i}"
                        db.put("crash", key, {"payload": "x" * rng.randint(1, 300)})
                        with lock:
                            acked.add(key)
                        i += 1
            except (ConnectError, ProtocolError):
                pass  # the node was killed mid-request: that write was not acknowledged

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
        for t in threads:
            t.start()
        target = len(acked) + rng.randint(1, 400)
        wait_for(lambda target=target: len(acked) >= target, 60, "writes to be acknowledged")
        node.kill()
        stop.set()
        for t in threads:
            t.join(30)
        node.start()
        with lock:
            expected = set(acked)
        missing = expected - all_keys(node)
        assert not missing, (
            f"after kill {round_ + 1}: {len(missing)} acknowledged writes lost, e.g. {sorted(missing)[:5]}"
        )
    assert len(acked) > KILLS
