"""The connection state machine, with no event loop: an Initiator and an Acceptor talk by handing
each other bytes."""

from __future__ import annotations

import pytest

from ringd.protocol import codec, messages
from ringd.protocol.connection import CLOSED, HELLO, READY, Acceptor, Initiator
from ringd.protocol.errors import ErrorCode, ProtocolError
from ringd.protocol.framing import HANDSHAKE_MAX_FRAME, frame


def greeted(role: str = messages.PEER) -> tuple[Initiator[str], Acceptor]:
    client: Initiator[str] = Initiator()
    server = Acceptor()
    _, data = client.hello(messages.hello_args(role), "hello")
    server.receive(data)
    hello = server.next_request()
    assert hello is not None and hello.op == "hello" and server.role == role
    client.receive(server.accept(hello.id, {"host_id": "x"}))
    token, msg = client.next_response() or (None, {})
    assert token == "hello" and msg["result"] == {"host_id": "x"}
    assert client.state == READY and server.state == READY
    return client, server


def test_hello_then_requests_matched_by_id_in_any_order() -> None:
    client, server = greeted()
    ids = [client.request("ping", {"n": i}, f"call{i}")[0] for i in range(3)]
    assert len(set(ids)) == 3
    # send them again as the bytes the client produced
    client2, server2 = greeted()
    frames = [client2.request("ping", {"n": i}, f"call{i}")[1] for i in range(3)]
    server2.receive(b"".join(frames))
    reqs = [server2.next_request() for _ in range(3)]
    assert server2.next_request() is None
    assert [r.args["n"] for r in reqs if r] == [0, 1, 2]
    # answer in reverse order: each response finds its own token
    client2.receive(b"".join(server2.result(r.id, r.args["n"]) for r in reversed(reqs) if r))
    got = []
    while (item := client2.next_response()) is not None:
        got.append((item[0], item[1]["result"]))
    assert got == [("call2", 2), ("call1", 1), ("call0", 0)]
    assert client2.pending == {}


def test_first_request_must_be_hello() -> None:
    server = Acceptor()
    server.receive(frame(codec.encode(messages.request(7, "ping", {}))))
    with pytest.raises(ProtocolError, match="first request must be hello") as info:
        server.next_request()
    assert info.value.details["id"] == 7
    assert server.state == CLOSED


def test_hello_with_wrong_version_is_refused() -> None:
    server = Acceptor()
    server.receive(frame(codec.encode(messages.request(1, "hello", {"version": 99}))))
    with pytest.raises(ProtocolError, match="version"):
        server.next_request()
    assert server.state == CLOSED


def test_handshake_frame_limit_then_the_configured_one() -> None:
    server = Acceptor(max_frame=10 * HANDSHAKE_MAX_FRAME)
    server.receive((HANDSHAKE_MAX_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        server.next_request()
    client, server = greeted()
    big = {"blob": b"x" * (HANDSHAKE_MAX_FRAME + 10)}
    server.receive(client.request("ping", big, "big")[1])
    req = server.next_request()
    assert req is not None and req.error is None and req.args == big


def test_per_request_errors_do_not_close() -> None:
    client, server = greeted(messages.CLIENT)
    server.receive(client.request("mutate", {}, "m")[1])  # peers only
    server.receive(client.request("nosuch", {}, "n")[1])
    server.receive(frame(codec.encode({"id": "x", "op": "ping"})))
    denied, unknown, bad_id = (server.next_request() for _ in range(3))
    assert denied and denied.error and denied.error.code == ErrorCode.UNAUTHORIZED
    assert unknown and unknown.error and "unknown operation" in unknown.error.message
    assert bad_id and bad_id.id is None and bad_id.error is not None
    assert server.state == READY
    server.draining = True
    server.receive(client.request("ping", {}, "p")[1])
    req = server.next_request()
    assert req and req.error and req.error.code == ErrorCode.OVERLOADED


def test_requests_before_the_hello_is_answered_are_refused() -> None:
    client: Initiator[str] = Initiator()
    assert client.state == HELLO
    with pytest.raises(ProtocolError, match="hello not yet answered"):
        client.request("ping", {}, "p")


def test_rejected_hello_closes_the_initiator() -> None:
    client: Initiator[str] = Initiator()
    server = Acceptor()
    req_id, data = client.hello(messages.hello_args(messages.PEER), "hello")
    server.receive(data)
    assert server.next_request() is not None
    client.receive(server.reject(req_id, ProtocolError("wrong cluster", ErrorCode.UNAUTHORIZED)))
    token, msg = client.next_response() or (None, {})
    assert token == "hello" and msg["error"]["code"] == "UNAUTHORIZED"
    assert client.state == CLOSED and server.state == CLOSED
    with pytest.raises(ProtocolError, match="closed"):
        client.request("ping", {}, "p")


def test_connection_level_error_raises_and_late_responses_are_dropped() -> None:
    client, server = greeted()
    req_id, _ = client.request("ping", {}, "p")
    assert client.forget(req_id) == "p"
    client.receive(server.result(req_id, "late"))
    assert client.next_response() is None
    client.receive(server.error(None, ProtocolError("go away", ErrorCode.OVERLOADED)))
    with pytest.raises(ProtocolError, match="go away"):
        client.next_response()
    assert client.state == CLOSED


def test_pending_tokens_are_handed_back_on_close() -> None:
    client, _ = greeted()
    client.request("ping", {}, "a")
    client.request("ping", {}, "b")
    assert sorted(client.drain_pending()) == ["a", "b"]
    assert client.state == CLOSED and client.pending == {}


def test_end_of_stream_inside_a_frame() -> None:
    client, server = greeted()
    server.receive(client.request("ping", {}, "p")[1][:-1])
    assert server.next_request() is None
    with pytest.raises(ProtocolError, match="inside a frame"):
        server.receive(b"")
    assert server.state == CLOSED


def test_unencodable_result_becomes_an_error_frame() -> None:
    client, server = greeted()
    req_id, data = client.request("ping", {}, "p")
    client.receive(server.result(req_id, object()))
    _, msg = client.next_response() or (None, {})
    assert msg["error"]["code"] == "SERVER_ERROR"
