"""A client that sends many requests and stops reading: the node keeps what it cannot send (up to
its per-connection bound, then it stops reading that connection), serves everyone else, and
every answer arrives whole and in order once the client reads again."""

from __future__ import annotations

import os
import socket
from typing import Any

import cbor2
from nodes import Ringd, connect_raw, still_serving

from ringd.protocol import codec, messages
from ringd.protocol.framing import FrameReader, frame


class Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.frames = FrameReader(1 << 25)
        self.answers: list[dict[str, Any]] = []

    def until(self, count: int) -> None:
        """Read until ``count`` answers are in."""
        while len(self.answers) < count:
            while (body := self.frames.next_frame()) is not None:
                self.answers.append(codec.decode_map(body))
            if len(self.answers) < count:
                data = self.sock.recv(1 << 20)
                assert data, f"the node closed the connection after {len(self.answers)} answers"
                self.frames.feed(data)


def test_a_client_that_stops_reading_gets_every_answer_whole(node: Ringd) -> None:
    """24 gets of a 256 KB row (6 MB of answers, more than the socket buffers take), then the
    hello's answer read, so that the node is still sending the first answers when 40 more gets
    arrive (16 MB in all: past the node's unsent bound, so it stops reading for a while)."""
    value = os.urandom(256 * 1024)
    with node.client() as db:
        db.put("demo", "big", {"v": value})
    sock = connect_raw(node.address, timeout=60)
    reader = Reader(sock)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)

        def send(requests: list[dict[str, Any]]) -> None:
            sock.sendall(b"".join(frame(cbor2.dumps(r)) for r in requests))

        def gets(first: int, last: int) -> list[dict[str, Any]]:
            args = {"keyspace": "demo", "key": "big"}
            return [messages.request(i, "get", args) for i in range(first, last + 1)]

        send([messages.request(0, "hello", messages.hello_args("client")), *gets(1, 24)])
        reader.until(1)
        send(gets(25, 64))
        assert still_serving(node.address)  # while this connection's answers wait
        reader.until(65)
    finally:
        sock.close()
    answers = reader.answers
    assert [a["id"] for a in answers] == list(range(65))
    assert all(a["result"]["columns"] == {"v": value} for a in answers[1:])
