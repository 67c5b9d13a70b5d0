"""Errors are one line with the right exit code, and the client library raises the same
exceptions from ``Client`` and ``AsyncClient``: bad addresses, something that is not ringd, a
request too large for a frame, a node that does not answer (``RequestTimeout``, --timeout)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio
from nodes import Ringd
from typer.testing import CliRunner

from ringctl.app import app
from ringctl.client import AsyncClient, Client, NotRingd, RequestError, RequestTimeout
from ringctl.values import MAX_VALUE_BYTES


def _run(*args: str, host: str | None = None) -> tuple[int, str]:
    env = {"RINGCTL_HOST": host} if host else {}
    done = CliRunner().invoke(app, list(args), env=env)
    return done.exit_code, done.stderr


@pytest.mark.parametrize("host", ["127.0.0.1:99999", ":7400", "127.0.0.1:port"])
def test_malformed_host_is_a_one_line_usage_error(host: str) -> None:
    code, err = _run("ping", "--host", host)
    assert code == 2, err
    assert err.startswith("ringctl: error: --host: address") and len(err.splitlines()) == 1
    assert "Traceback" not in err


@pytest.fixture
def http_server() -> Iterator[str]:
    """A listener that answers every connection as an HTTP server would, then closes it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_a_service_that_is_not_ringd_exits_4(http_server: str) -> None:
    code, err = _run("ping", host=http_server)
    assert code == 4, err
    assert f"{http_server} is not a ringd node" in err and len(err.splitlines()) == 1
    with pytest.raises(NotRingd):
        Client(http_server, timeout=5).connect()

    async def connect_async() -> None:
        async with AsyncClient(http_server, timeout=5):
            pass

    with pytest.raises(NotRingd):
        trio.run(connect_async)


def test_a_row_larger_than_a_frame_is_refused_by_the_client(node: Ringd, tmp_path: Path) -> None:
    huge = tmp_path / "huge"
    huge.write_bytes(b"x" * (20 * 1024 * 1024))
    code, err = _run("put", "demo", "big", "--value-file", str(huge), host=node.address)
    assert code == 2 and "larger than" in err and "SERVER_ERROR" not in err, err
    almost = tmp_path / "almost"
    almost.write_bytes(b"x" * (MAX_VALUE_BYTES - 10))
    code, err = _run("put", "demo", "big", "--raw", "--value-file", str(almost), host=node.address)
    assert code == 2 and "a frame holds at most" in err and "SERVER_ERROR" not in err, err
    with Client(node.address) as db:
        with pytest.raises(RequestError, match="frame holds at most"):
            db.put("demo", "big", {"v": b"x" * (20 * 1024 * 1024)})
        assert db.get("demo", "big") is None  # nothing was sent; the connection still serves


@pytest.fixture
def paused(node: Ringd) -> Iterator[Ringd]:
    node.pause()
    try:
        yield node
    finally:
        node.resume()


def test_ping_to_a_paused_node_gives_up_after_timeout(paused: Ringd) -> None:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "ringctl", "ping", "--host", paused.address, "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - start
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("ringctl: error: timed out: no response from")
    assert len(done.stderr.splitlines()) == 1
    assert elapsed < 15  # 1 s of waiting plus interpreter start-up, not the 30 s default


def test_both_clients_raise_request_timeout(node: Ringd) -> None:
    with Client(node.address, timeout=0.5) as db:
        db.ping()
        node.pause()
        try:
            with pytest.raises(RequestTimeout, match="no response"):
                db.get("demo", "k")
        finally:
            node.resume()

    async def late(pause: Callable[[], None], resume: Callable[[], None]) -> None:
        async with AsyncClient(node.address, timeout=0.5) as adb:
            await adb.ping()
            pause()
            try:
                with pytest.raises(RequestTimeout, match="no response"):
                    await adb.get("demo", "k")
            finally:
                resume()

    trio.run(late, node.pause, node.resume)
