"""Connections cannot be exhausted (docs/security.md): reserved slots for admins and peers, an
idle timeout, a progress timeout for started frames and a node-wide bound on unfinished frames."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cbor2
from nodes import Ringd, connect_raw, wait_for

from ringd.protocol import codec, messages
from ringd.protocol.framing import FrameReader, frame

ADMIN = {"user": "admin", "password": "admin-secret"}
APP = {"user": "app", "password": "app-secret"}


def send(sock: socket.socket, req_id: int, op: str, args: dict[str, Any]) -> None:
    sock.sendall(frame(cbor2.dumps(messages.request(req_id, op, args))))


def replies(sock: socket.socket, want: int = 1, wait: float = 5.0) -> tuple[list[dict], bool]:
    """Up to ``want`` frames the node sends, and whether it closed the connection."""
    reader, got = FrameReader(1 << 24), []
    sock.settimeout(wait)
    while len(got) < want:
        while (body := reader.next_frame()) is not None:
            got.append(codec.decode_map(body))
        if len(got) >= want:
            break
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return got, False
        if not data:
            return got, True
        reader.feed(data)
    return got, False


def closed_within(sock: socket.socket, seconds: float) -> tuple[list[dict], bool]:
    """Frames until the node closes ``sock``, reading for at most ``seconds``."""
    got: list[dict] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        more, closed = replies(sock, want=10, wait=max(0.1, deadline - time.monotonic()))
        got += more
        if closed:
            return got, True
    return got, False


def hello(sock: socket.socket, credentials: Any = None) -> dict:
    send(sock, 0, "hello", messages.hello_args("client", credentials=credentials))
    got, _ = replies(sock)
    assert got, "no answer to hello"
    return got[0]


def limits(node: Ringd, **kw: Any) -> dict[str, int]:
    with node.client(timeout=10, **kw) as db:
        return db.admin("info")["connection_limits"]


@contextlib.contextmanager
def sockets() -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    try:
        yield held
    finally:
        for s in held:
            s.close()


def test_reserved_slots_serve_admins_when_clients_fill_the_node(
    ringd_factory: Callable[..., Ringd], tmp_path: Path
) -> None:
    pw = tmp_path / "admin.password"
    pw.write_text(ADMIN["password"] + "\n")
    pw.chmod(0o600)
    node = ringd_factory(
        authenticator="password",
        initial_admin_password_file=pw,
        max_connections=20,
        reserved_connections=4,
        wait=False,
    )

    def up() -> bool:
        with node.client(timeout=2, credentials=ADMIN) as db:
            return bool(db.ping())

    wait_for(up, 20, "the node to serve its admin")
    with node.client(credentials=ADMIN) as db:
        db.admin("role_create", name="app", kind="readwrite", password=APP["password"])
    with sockets() as held:
        answers = []
        for _ in range(25):  # clients that log in and idle
            held.append(connect_raw(node.address))
            answers.append(hello(held[-1], APP))
        ok = [a for a in answers if "result" in a]
        refused = [a["error"]["code"] for a in answers if "error" in a]
        assert len(ok) == 20, answers
        assert refused == ["OVERLOADED"] * 5
        # an admin still gets in, and runs an admin command
        stats = limits(node, credentials=ADMIN)
        assert stats["ordinary_connections"] == 20
        assert stats["refused_connections"] >= 5
        # the held clients are still served
        send(held[0], 1, "ping", {})
        assert "result" in replies(held[0])[0][0]


def test_idle_clients_are_closed_and_pings_keep_a_connection(
    ringd_factory: Callable[..., Ringd],
) -> None:
    node = ringd_factory(client_idle_timeout_s=1)
    with connect_raw(node.address) as idle, connect_raw(node.address) as busy:
        assert "result" in hello(idle)
        assert "result" in hello(busy)
        start = time.monotonic()
        for i in range(8):  # 2.4 s of pings, well past the idle timeout
            send(busy, i + 1, "ping", {})
            assert "result" in replies(busy)[0][0]
            time.sleep(0.3)
        got, closed = closed_within(idle, 10)
        assert closed, got
        assert time.monotonic() - start < 10
        assert got and "idle" in got[-1]["error"]["message"], got
        send(busy, 99, "ping", {})
        assert "result" in replies(busy)[0][0]
    assert limits(node)["idle_closed"] >= 1


def test_unfinished_frames_are_bounded_and_time_out(
    ringd_factory: Callable[..., Ringd],
) -> None:
    bound = 2 * 1024 * 1024
    node = ringd_factory(
        max_frame_bytes=1024 * 1024,
        max_row_bytes=256 * 1024,
        max_unfinished_frame_bytes=bound,
        frame_timeout_s=3,
    )
    with node.client() as db:
        db.keyspace_create("demo")
    with sockets() as held:
        for _ in range(6):  # 6 x 600 KB of 1 MB frames: more than the node may hold
            s = connect_raw(node.address)
            held.append(s)
            assert "result" in hello(s)
            with contextlib.suppress(OSError):
                s.sendall((1_000_000).to_bytes(4, "big") + b"\xa1" + b"x" * 600_000)
        seen = []

        def refused() -> bool:
            stats = limits(node)
            seen.append(stats["unfinished_frame_bytes"])
            return stats["refused_frames"] >= 1

        wait_for(refused, 10, "a refused frame")
        with node.client() as db:  # everyone else is served
            db.put("demo", b"k", {"v": b"1"})
            assert db.get("demo", b"k")["columns"]["v"] == b"1"

        def timed_out() -> bool:
            stats = limits(node)
            seen.append(stats["unfinished_frame_bytes"])
            return stats["frame_timeouts"] >= 1 and stats["unfinished_frame_bytes"] == 0

        wait_for(timed_out, 15, "unfinished frames to time out")
        assert max(seen) <= bound, seen
        assert max(seen) > 0, seen
