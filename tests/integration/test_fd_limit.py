"""Running out of file descriptors: a real node under a low RLIMIT_NOFILE with many clients,
and the accept loop against a listener that reports EMFILE."""

from __future__ import annotations

import errno
import logging
import os
import resource
import socket
from pathlib import Path
from typing import Any

import pytest
import trio
from nodes import Ringd, connect_raw, wait_for

from ringd.net import accept

LIMIT = 256


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


def test_node_fits_connections_to_a_low_fd_limit(tmp_path: Path) -> None:
    """max_connections 1024 under a 256-descriptor limit: the node lowers what it serves and
    says so; 300 connections at once neither kill it nor hang anyone; existing clients keep
    working; once the connections close, new clients are served."""
    node = Ringd(tmp_path / "node1", max_connections=1024)
    node.preexec_fn = _low_fd_limit
    socks: list[socket.socket] = []
    try:
        node.start()
        with node.client(timeout=10) as db:
            db.keyspace_create("demo")
            db.put("demo", b"k", {"v": b"1"})
            for _ in range(300):
                socks.append(connect_raw(node.address, timeout=10))
            # every connection beyond the limit is answered (OVERLOADED) and closed, not hung
            refused = 0
            for s in socks:
                s.settimeout(0.2)
                try:
                    if s.recv(4096) is not None:
                        refused += 1
                except TimeoutError:
                    pass  # held open: served once it says hello
            assert refused >= 300 - (LIMIT - 64), refused
            assert node.running
            assert db.get("demo", b"k")["columns"]["v"] == b"1"  # an existing client works
        for s in socks:
            s.close()
        socks.clear()

        def served() -> bool:
            with node.client(timeout=5) as fresh:
                fresh.ping()
            return True

        wait_for(served, 20, "a new client to be served")
        log = node.log()
        assert "open-file limit (256) is too low for max_connections 1024" in log
        assert "Traceback" not in log
        assert node.stop() == 0
    finally:
        for s in socks:
            s.close()
        node.kill()


class _ExhaustedListener(trio.abc.Listener[Any]):
    """A listener whose accept fails with EMFILE ``failures`` times, then yields a stream."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.streams: list[Any] = [object()]

    async def accept(self) -> Any:
        await trio.lowlevel.checkpoint()
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        if self.streams:
            return self.streams.pop()
        await trio.sleep_forever()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_accept_survives_emfile_with_one_log_line(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accept, "MAX_BACKOFF", 0.02)
    listener = _ExhaustedListener(failures=30)
    handled: list[Any] = []
    done = trio.Event()

    async def handler(stream: Any) -> None:
        handled.append(stream)
        done.set()

    with caplog.at_level(logging.WARNING):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: accept.serve_listeners(
                    handler, [listener], handler_nursery=nursery, task_status=task_status
                )
            )
            with trio.fail_after(10):
                await done.wait()
            nursery.cancel_scope.cancel()
    assert listener.failures == 0 and len(handled) == 1
    lines = [r for r in caplog.records if r.name == accept.log.name]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert "Too many open files" in lines[0].getMessage()
