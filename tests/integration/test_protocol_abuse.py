"""Bad input against a running node: each abuser gets an error frame or a closed connection, and
another client is served throughout."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable

import cbor2
import pytest
from nodes import Ringd, connect_raw, still_serving

from ringd.protocol import codec, messages
from ringd.protocol.framing import HANDSHAKE_MAX_FRAME, FrameReader, frame


def _frame(obj: object) -> bytes:
    return frame(cbor2.dumps(obj))


HELLO = _frame(messages.request(0, "hello", messages.hello_args("client")))


def read_replies(sock: socket.socket, limit: int = 10) -> tuple[list[dict], bool]:
    """Frames the node sends back until it closes (or goes quiet), and whether it closed."""
    reader = FrameReader(1 << 24)
    replies: list[dict] = []
    sock.settimeout(2.0)
    closed = False
    try:
        while len(replies) < limit:
            data = sock.recv(65536)
            if not data:
                closed = True
                break
            reader.feed(data)
            while (body := reader.next_frame()) is not None:
                replies.append(codec.decode_map(body))
    except (TimeoutError, ConnectionResetError):
        pass
    return replies, closed


def error_codes(replies: list[dict]) -> list[str]:
    return [r["error"]["code"] for r in replies if "error" in r]


@pytest.fixture
def bystander(node: Ringd):
    """A second client with a connection open through the whole test."""
    with node.client() as db:
        db.put("demo", "bystander", {"v": 1})
        yield db
        assert db.get("demo", "bystander")["columns"] == {"v": 1}


def test_random_bytes(node: Ringd, bystander) -> None:
    for seed in range(5):
        with connect_raw(node.address) as sock:
            sock.sendall(os.urandom(4096 + seed))
            replies, closed = read_replies(sock)
            assert closed or error_codes(replies)
        assert bystander.ping()
    assert still_serving(node.address)


def test_length_over_the_handshake_limit(node: Ringd, bystander) -> None:
    with connect_raw(node.address) as sock:
        sock.sendall(struct.pack(">I", HANDSHAKE_MAX_FRAME + 1))
        replies, closed = read_replies(sock)
        assert closed
        assert error_codes(replies) == ["PROTOCOL_ERROR"]
        assert "exceeds the limit" in replies[0]["error"]["message"]
    assert bystander.ping()


def test_length_over_the_limit_after_hello(node: Ringd, bystander) -> None:
    with connect_raw(node.address) as sock:
        sock.sendall(HELLO + struct.pack(">I", 0xFFFFFFFF))
        replies, closed = read_replies(sock)
        assert closed
        assert "result" in replies[0]
        assert error_codes(replies[1:]) == ["PROTOCOL_ERROR"]
    assert bystander.ping()


def test_truncated_frame(node: Ringd, bystander) -> None:
    with connect_raw(node.address) as sock:
        body = cbor2.dumps(messages.request(1, "ping", {}))
        sock.sendall(HELLO + struct.pack(">I", len(body)) + body[:3])
        sock.shutdown(socket.SHUT_WR)
        replies, closed = read_replies(sock)
        assert closed
        assert "result" in replies[0]
        assert error_codes(replies[1:]) == ["PROTOCOL_ERROR"]
    assert bystander.ping()


def test_cbor_that_is_not_a_map(node: Ringd, bystander) -> None:
    with connect_raw(node.address) as sock:
        sock.sendall(HELLO + _frame([1, 2, 3]))
        replies, closed = read_replies(sock)
        assert closed
        assert error_codes(replies[1:]) == ["PROTOCOL_ERROR"]
        assert "map" in replies[1]["error"]["message"]
    assert bystander.ping()


def test_unknown_operation_keeps_the_connection(node: Ringd, bystander) -> None:
    with connect_raw(node.address) as sock:
        sock.sendall(
            HELLO
            + _frame(messages.request(7, "frobnicate", {}))
            + _frame(messages.request(8, "ping", {}))
        )
        replies, _ = read_replies(sock, limit=3)
        assert replies[1] == {
            "id": 7,
            "error": {"code": "PROTOCOL_ERROR", "message": "unknown operation 'frobnicate'"},
        }
        assert replies[2]["id"] == 8 and "result" in replies[2]
    assert bystander.ping()


def test_request_before_hello(node: Ringd, bystander) -> None:
    with connect_raw(node.address) as sock:
        sock.sendall(
            _frame(
                messages.request(1, "put", {"keyspace": "demo", "key": "x", "columns": {"v": 1}})
            )
        )
        replies, closed = read_replies(sock)
        assert closed
        assert error_codes(replies) == ["PROTOCOL_ERROR"]
        assert "first request must be hello" in replies[0]["error"]["message"]
    assert bystander.get("demo", "x") is None


def test_peer_verbs_are_refused_on_client_connections(node: Ringd, bystander) -> None:
    with connect_raw(node.address) as sock:
        sock.sendall(
            HELLO + _frame(messages.request(1, "mutate", {"ks": "demo", "key": b"x", "row": {}}))
        )
        replies, _ = read_replies(sock, limit=2)
        assert error_codes(replies[1:]) == ["UNAUTHORIZED"]


def test_bad_arguments_get_invalid_and_the_connection_stays(node: Ringd, bystander) -> None:
    with connect_raw(node.address) as sock:
        bad = [
            {"keyspace": "demo", "key": 5, "columns": {"v": 1}},
            {"keyspace": "demo", "key": "", "columns": {"v": 1}},
            {"keyspace": "demo", "key": "k", "columns": {}},
            {"keyspace": "demo", "key": "k", "columns": {"v": 1}, "ttl": -1},
            {"keyspace": "demo", "key": "k", "columns": {"v": 1}, "consistency": "MOST"},
            {"keyspace": "demo", "key": "k", "columns": {"v": 1}, "w": 9},
        ]
        sock.sendall(
            HELLO + b"".join(_frame(messages.request(i + 1, "put", a)) for i, a in enumerate(bad))
        )
        replies, closed = read_replies(sock, limit=len(bad) + 1)
        assert not closed
        assert error_codes(replies[1:]) == ["INVALID"] * len(bad)
    assert bystander.get("demo", "k") is None


def test_many_requests_in_flight_answered_by_id(node: Ringd) -> None:
    with connect_raw(node.address) as sock:
        reqs = [
            _frame(
                messages.request(
                    i, "put", {"keyspace": "demo", "key": f"p{i}", "columns": {"i": i}}
                )
            )
            for i in range(1, 201)
        ]
        sock.sendall(HELLO + b"".join(reqs))
        replies, _ = read_replies(sock, limit=201)
        assert sorted(r["id"] for r in replies[1:]) == list(range(1, 201))
        assert all("result" in r for r in replies)


def test_peer_hello_from_another_cluster_is_refused(node: Ringd, bystander) -> None:
    hello = messages.hello_args("peer", cluster="someone-else", host_id="x", nonce=os.urandom(32))
    with connect_raw(node.address) as sock:
        sock.sendall(_frame(messages.request(0, "hello", hello)))
        replies, closed = read_replies(sock)
        assert closed
        assert error_codes(replies) == ["UNAUTHORIZED"]
        assert "someone-else" in replies[0]["error"]["message"]


@pytest.mark.parametrize("version", [1.0, True, "1", 2])
def test_hello_version_must_be_exactly_1(node: Ringd, version: object) -> None:
    hello = {**messages.hello_args("client"), "version": version}
    with connect_raw(node.address) as sock:
        sock.sendall(_frame(messages.request(0, "hello", hello)))
        replies, closed = read_replies(sock)
        assert closed
        assert error_codes(replies) == ["PROTOCOL_ERROR"]


def test_column_values_must_be_plain_data(node: Ringd, bystander) -> None:
    with connect_raw(node.address) as sock:
        # {"id": 1, "args": {"keyspace": "demo", "key": "k", "columns": {"v": undefined}}, "op": "put"}
        nested_undefined = bytes.fromhex(
            "a3626964016461726773a3686b657973706163656464656d6f636b6579616b67636f6c756d6e73a16176f7626f7063707574"
        )
        sock.sendall(HELLO + frame(nested_undefined))
        replies, _ = read_replies(sock, limit=2)
        assert error_codes(replies[1:]) == ["INVALID"]
    assert bystander.get("demo", "k") is None


def test_connections_beyond_the_limit_are_refused_and_others_served(
    ringd_factory: Callable[..., Ringd],
) -> None:
    node = ringd_factory(max_connections=3, reserved_connections=0)
    with node.client() as first, connect_raw(node.address) as second:
        assert first.ping()
        second.sendall(HELLO)
        assert "result" in read_replies(second, limit=1)[0][0]
        with connect_raw(node.address) as third:
            third.sendall(HELLO)
            replies, _ = read_replies(third, limit=1)
            assert "result" in replies[0]
            with connect_raw(node.address) as fourth:
                replies, closed = read_replies(fourth)
                assert closed
                assert error_codes(replies) == ["OVERLOADED"]
        assert first.ping()
