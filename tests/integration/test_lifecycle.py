"""Signals and shutdown of a real ringd process: SIGHUP reloads, a second SIGTERM is harmless,
and a drain answers every request the node received (issue 8, item 3)."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import trio
from nodes import Ringd, still_serving, wait_for

from ringctl.client import AsyncClient, ConnectError
from ringd.protocol.errors import ErrorCode, ProtocolError


def test_sighup_reloads_log_level_and_keeps_serving(
    ringd_factory: Callable[..., Ringd], tmp_path: Path
) -> None:
    config = tmp_path / "ringd.toml"
    config.write_text('log_level = "info"\n')
    n = ringd_factory(config=str(config))
    assert n.proc is not None
    config.write_text('log_level = "debug"\n')
    n.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reloaded" in n.log(), 10, "the SIGHUP log line")
    assert "log level debug" in n.log()
    assert n.running and still_serving(n.address)
    # a broken file on reload is logged and changes nothing
    config.write_text("log_level = \n")
    n.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "not reloaded" in n.log(), 10, "the failed reload line")
    assert n.running and still_serving(n.address)
    assert n.stop() == 0


def test_second_sigterm_during_drain_still_exits_zero(ringd_factory: Callable[..., Ringd]) -> None:
    n = ringd_factory(drain_timeout_s=3)
    assert n.proc is not None
    with n.client() as db:
        db.keyspace_create("demo")
        db.put("demo", "k", {"v": 1})
    # a client that keeps sending keeps the drain going until drain_timeout_s
    stop = threading.Event()
    connected = threading.Event()

    def chatter() -> None:
        with contextlib.suppress(ProtocolError), n.client(timeout=5) as db:
            db.ping()  # connected before the first SIGTERM closes the listener
            connected.set()
            while not stop.is_set():
                with contextlib.suppress(ProtocolError):
                    db.ping()
                time.sleep(0.02)

    t = threading.Thread(target=chatter)
    t.start()
    try:
        assert connected.wait(10), "the chatting client never connected"
        n.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "draining" in n.log(), 10, "the drain to start")
        n.proc.send_signal(signal.SIGTERM)
        n.proc.send_signal(signal.SIGINT)
        assert n.proc.wait(30) == 0, n.log()
    finally:
        stop.set()
        t.join(10)
    assert "already draining" in n.log()
    n.start()
    with n.client() as db:
        assert db.get("demo", "k")["columns"] == {"v": 1}


def test_drain_answers_every_request_received(ringd_factory: Callable[..., Ringd]) -> None:
    """300 writers, each with one put in flight at a time, across SIGTERM: every request gets
    an answer (its result, or OVERLOADED once the drain began); none is left hanging."""
    n = ringd_factory(commitlog_sync="group", commitlog_group_window_ms=20)
    assert n.proc is not None
    with n.client() as db:
        db.keyspace_create("demo")
    writers = 300
    acknowledged: list[str] = []
    last: dict[int, str] = {}

    async def run() -> None:
        flowing = trio.Event()
        async with AsyncClient(n.address, timeout=30) as db:

            async def writer(w: int) -> None:
                for i in range(1_000_000):
                    key = f"w{w}-{i}"
                    try:
                        await db.put("demo", key, {"i": i})
                    except ConnectError as exc:
                        last[w] = f"no answer: {exc}"
                        return
                    except ProtocolError as exc:
                        last[w] = exc.code.value if exc.code == ErrorCode.OVERLOADED else str(exc)
                        return
                    acknowledged.append(key)
                    if len(acknowledged) >= 3 * writers:
                        flowing.set()

            async with trio.open_nursery() as nursery:
                for w in range(writers):
                    nursery.start_soon(writer, w)
                with trio.fail_after(20):
                    await flowing.wait()
                assert n.proc is not None
                n.proc.send_signal(signal.SIGTERM)

    trio.run(run)
    assert n.proc.wait(30) == 0
    assert len(last) == writers
    bad = {w: o for w, o in last.items() if o != "OVERLOADED"}
    assert not bad, f"{len(bad)} writers lost an answer, e.g. {list(bad.items())[:3]}"
    n.start()
    with n.client() as db:
        for key in acknowledged:
            assert db.get("demo", key) is not None, f"acknowledged write {key} lost"
