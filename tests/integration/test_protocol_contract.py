"""docs/protocol.md is the contract: the error messages it quotes are the ones a node sends, and
the details it describes (TTL from the write's time, timestamp 0, default_ttl bounds, the
consistency detail of an explicit count) hold on a real node (issue 8, item 16)."""

from __future__ import annotations

import re
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import pytest
from nodes import Ringd, wait_for, wait_status

from ringd.auth.peer import Initiator, load_secret_file
from ringd.protocol.errors import ErrorCode, ProtocolError

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
HELLO = {"version": 1, "role": "client", "credentials": None}

# quoted literals in the doc that are not error messages
NOT_MESSAGES = {
    "local-quorum",
    "BLOCKING",
    "blocking",
    "org.apache.cassandra.locator.SimpleStrategy",
    "replication: ",
    "periodic",
    "Murmur3Partitioner",
    'role": "peer',
    "malformed mutation: ",
    "malformed read: ",
    "malformed scan: ",
    "SHUTDOWN",
    "HOST:PORT",
    "w=2",
    "r=2",
    "QUORUM",
    "default_ttl must be between 0 and 630720000 seconds",  # checked by its own test below
}
# messages checked elsewhere, or that need conditions this module does not create
ELSEWHERE = {
    "keyspace definition 'demo' is stamped N ms ahead of this node's clock (limit "
    "max_future_timestamp_ms 60000); refused": (
        "test_security::test_peer_schema_push_stamped_in_the_future_is_invalid"
    ),
    "no hello within the handshake timeout": "takes 10 s; test_protocol_abuse",
    "too many connections (1024); try again later or another node": "needs 1024 connections",
    "node is shutting down; try another node": "test_lifecycle",
    "cannot achieve consistency LOCAL_QUORUM: 2 replicas required in dc1 but only 1 alive": (
        "same format as the explicit-count case below, with a dc"
    ),
    "write timed out: 1 of 2 required replicas acknowledged": "test_seed_scenarios",
    "read timed out: 1 of 2 required replicas responded": "test_seed_scenarios",
    "flush failed on the server: OSError: [Errno 28] No space left on device": "illustrative",
    "this node's clock is 2000 ms off the cluster (limit 500 ms); writes are refused until it is "
    "back within bounds; write through another node": "test_clock_skew",
    "cannot achieve consistency TWO: 2 replicas required but only 1 alive": "cluster test below",
    "cannot achieve consistency ALL: 3 replicas required but only 2 alive": (
        "test_tracing::test_a_traced_put_with_a_replica_down_shows_the_hint"
    ),
    "cannot achieve consistency w=2: 2 replicas required but only 1 alive": "cluster test below",
    "... is being repaired by session ID": "tests/repair/test_service.py (two sessions)",
    "cannot repair: replica HOST:PORT is down": "tests/repair/test_service.py (a replica down)",
}


def documented_messages() -> set[str]:
    found = re.findall(r'"message":\s*"((?:[^"\\]|\\.)*)"', DOC)
    found += [a or b for a, b in re.findall(r'\(`"([^`]*)"`\)|`"([^`"]{8,})"`', DOC)]
    return {re.sub(r"\s+", " ", m) for m in found} - NOT_MESSAGES


class Raw:
    """A bare connection speaking frames, to send what a client written from the doc sends."""

    def __init__(self, address: str, secret: bytes = b"") -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buf = b""
        self.secret = secret  # the node's cluster secret, for peer requests

    def send_body(self, body: bytes) -> None:
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def request(self, op: str, args: dict[str, Any] | None = None, req_id: int = 1) -> Any:
        self.send_body(cbor2.dumps({"id": req_id, "op": op, "args": args or {}}))
        return self.response()

    def response(self) -> Any:
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">I", self.buf[:4])
                if len(self.buf) >= 4 + n:
                    body, self.buf = self.buf[4 : 4 + n], self.buf[4 + n :]
                    return cbor2.loads(body)
            data = self.sock.recv(65536)
            assert data, "the node closed the connection without an answer"
            self.buf += data

    def close(self) -> None:
        self.sock.close()


def _client(op: str, args: dict[str, Any]) -> Callable[[Raw], Any]:
    def run(raw: Raw) -> Any:
        raw.request("hello", HELLO, 0)
        return raw.request(op, args)

    return run


def _peer(op: str, args: dict[str, Any]) -> Callable[[Raw], Any]:
    def run(raw: Raw) -> Any:
        initiator = Initiator(raw.secret, "ringd", "x")
        hello = {**HELLO, "role": "peer", **initiator.hello_fields()}
        answer = raw.request("hello", hello, 0)
        raw.request("auth", initiator.auth_args(answer["result"]), 1)
        return raw.request(op, args, 2)

    return run


def _body(body: bytes, hello: bool = True) -> Callable[[Raw], Any]:
    def run(raw: Raw) -> Any:
        if hello:
            raw.request("hello", HELLO, 0)
        raw.send_body(body)
        return raw.response()

    return run


def _bytes(data: bytes) -> Callable[[Raw], Any]:
    def run(raw: Raw) -> Any:
        raw.request("hello", HELLO, 0)
        raw.sock.sendall(data)
        if len(data) < 8:
            raw.sock.shutdown(socket.SHUT_WR)
        return raw.response()

    return run


def _twice_hello(raw: Raw) -> Any:
    raw.request("hello", HELLO, 0)
    return raw.request("hello", HELLO)


PUT = {"keyspace": "demo", "key": "k", "columns": {"v": 1}}
CASES: dict[str, Callable[[Raw], Any]] = {
    "protocol version 2 is not supported; this node speaks 1": lambda raw: raw.request(
        "hello", {"version": 2, "role": "client"}
    ),
    "hello role must be one of client, peer, not 'admin'": lambda raw: raw.request(
        "hello", {"version": 1, "role": "admin"}
    ),
    "the first request must be hello, not 'ping'": lambda raw: raw.request("ping"),
    "hello was already said": _twice_hello,
    "mutate is not allowed on a client connection": _client("mutate", {}),
    "a frame must hold a CBOR map, not list": _body(cbor2.dumps([1])),
    "bytes after the CBOR item": _body(cbor2.dumps({"id": 1}) + b"\x00"),
    "malformed CBOR: map keys must be text strings": _body(cbor2.dumps({1: 2})),
    "malformed CBOR: error decoding map: Duplicate map key: 'id'": _body(
        bytes.fromhex("a2626964016269640" + "2")
    ),
    "frame of 16777217 bytes exceeds the limit of 16777216": _bytes(struct.pack(">I", 16777217)),
    "connection closed inside a frame (7 bytes)": _bytes(struct.pack(">I", 100) + b"abc"),
    "unknown operation 'frobnicate'": _client("frobnicate", {}),
    "keyspace 'nope' does not exist; create it with: ringctl keyspace create nope": _client(
        "put", {**PUT, "keyspace": "nope"}
    ),
    "missing argument 'key'": _client("put", {"keyspace": "demo", "columns": {"v": 1}}),
    "argument 'key' must be str/bytes, not int": _client("get", {"keyspace": "demo", "key": 1}),
    "test hooks are disabled on this node; start ringd with --enable-test-hooks": _client(
        "test_filter", {"action": "list"}
    ),
    "a put needs at least one column": _client("put", {**PUT, "columns": {}}),
    "keyspace 'demo' already exists": _client("keyspace_create", {"name": "demo"}),
    "keyspace name 'bad-name' must be 1-48 letters, digits or underscores": _client(
        "keyspace_create", {"name": "bad-name"}
    ),
    "keyspace 'nope' does not exist": _client("keyspace_drop", {"name": "nope"}),
    "malformed mutation: a tombstone cell needs a deletion time": _peer(
        "mutate", {"ks": "demo", "key": b"k", "row": {"c": {"v": [1, None, None]}}}
    ),
    "cluster name mismatch: this node is in cluster 'ringd', the gossiping peer in 'other'; "
    "check cluster_name and seeds": _peer("gossip_syn", {"cluster": "other", "digests": []}),
    "keyspace 'nope' does not exist on this replica": _peer(
        "mutate", {"ks": "nope", "key": b"k", "row": {"c": {"v": [1, b"x", None]}}}
    ),
    "mutate_batch: items must be a list of 1 to 128 maps": _peer("mutate_batch", {"items": []}),
    "give either consistency or w, not both": _client("put", {**PUT, "consistency": "ONE", "w": 1}),
    "w=2 exceeds replication factor 1": _client("put", {**PUT, "w": 2}),
    "w must be a positive integer": _client("put", {**PUT, "w": 0}),
    "consistency level ANY is only valid for writes": _client(
        "get", {"keyspace": "demo", "key": "k", "consistency": "ANY"}
    ),
    "key must not be empty": _client("put", {**PUT, "key": ""}),
    "key is 70000 bytes; the limit is 65536": _client("put", {**PUT, "key": "k" * 70000}),
    "column names must be 1-1024 characters of text": _client("put", {**PUT, "columns": {"": 1}}),
    "ttl must be between 0 and 630720000 seconds": _client("put", {**PUT, "ttl": -1}),
    "timestamp must be microseconds since the epoch, non-negative": _client(
        "put", {**PUT, "timestamp": -1}
    ),
    "argument 'ttl' must be int, not bool": _client("put", {**PUT, "ttl": True}),
    "argument 'trace' must be bool, not str": _client(
        "get", {"keyspace": "demo", "key": "k", "trace": "yes"}
    ),
    "session_us must be microseconds since the epoch, 0 <= n < 2^63": _client(
        "put", {**PUT, "session_us": -1}
    ),
    "cursor must be the [token, key] a previous scan returned": _client(
        "scan", {"keyspace": "demo", "cursor": "x"}
    ),
    "give both -st and -et, or neither": _client("repair_start", {"start_token": 1}),
    "-pr cannot be combined with --dc or --hosts": _client(
        "repair_start", {"primary_range": True, "dc": "dc1"}
    ),
    "jobs must be between 1 and 4": _client("repair_start", {"jobs": 9}),
    "no repair session 'ID' on this node": _client("repair_session", {"id": "ID"}),
    "replication: unknown replication class 'Foo': use SimpleStrategy or NetworkTopologyStrategy": (
        _client("keyspace_create", {"name": "foo", "replication": {"class": "Foo"}})
    ),
}


def test_every_documented_message_is_checked() -> None:
    unchecked = documented_messages() - set(CASES) - set(ELSEWHERE)
    assert not unchecked, f"docs/protocol.md quotes messages no test checks: {unchecked}"
    undocumented = (set(CASES) | set(ELSEWHERE)) - documented_messages()
    assert not undocumented, f"checked messages the doc no longer quotes: {undocumented}"


def test_documented_messages_are_what_the_node_sends(node: Ringd) -> None:
    wrong = {}
    for message, provoke in CASES.items():
        raw = Raw(node.address, load_secret_file(node.flags["cluster_secret_file"]))
        try:
            answer = provoke(raw)
        finally:
            raw.close()
        got = answer.get("error", {}).get("message")
        if got != message:
            wrong[message] = got
    assert not wrong, wrong


def test_a_batch_answers_each_item_in_order(node: Ringd) -> None:
    """``mutate_batch`` and ``read_local_batch`` (section 12.2): each item runs as a request of
    its verb and is counted in that verb's metrics; one answer holds every item's result or
    error, in order; a bad item fails only itself."""
    row = {"c": {"v": [1_700_000_000_000_000, b"x", None]}}
    items = [
        {"ks": "demo", "key": b"b1", "row": row},
        {"ks": "nope", "key": b"b2", "row": row},
        "not a map",
        {"ks": "demo", "key": b"b3", "row": row},
    ]
    with node.client() as db:
        before = {m["type"]: m for m in db.admin("tpstats")["messages"]}
    raw = Raw(node.address, load_secret_file(node.flags["cluster_secret_file"]))
    try:
        results = _peer("mutate_batch", {"items": items})(raw)["result"]["results"]
        reads = [{"ks": "demo", "key": b"b1"}, {"ks": "demo", "key": b"b2"}]
        reads.append({"ks": "demo", "key": b"b3", "digest": True})
        rows = raw.request("read_local_batch", {"items": reads}, 3)["result"]["results"]
    finally:
        raw.close()
    assert [sorted(r) for r in results] == [["hlc"], ["error"], ["error"], ["hlc"]]
    assert results[1]["error"] == {
        "code": "INVALID",
        "message": "keyspace 'nope' does not exist on this replica",
    }
    assert results[2]["error"]["message"] == "mutate_batch: item 2 is not a map"
    assert rows[0]["row"] == row and rows[1]["row"] is None and len(rows[2]["digest"]) == 16
    with node.client() as db:
        after = {m["type"]: m for m in db.admin("tpstats")["messages"]}
    assert "mutate_batch" not in after and "read_local_batch" not in after  # counted as items
    for verb, items_served in (("mutate", 4), ("read_local", 3)):
        counts = [m[verb]["latency"]["count"] for m in (before, after)]
        assert counts[1] - counts[0] == items_served, verb


def test_ttl_counts_from_the_write(node: Ringd) -> None:
    with node.client() as db:
        # write late in a wall-clock second: a TTL rounded down to the second expired at once
        wait_for(lambda: time.time() % 1 > 0.6, 5, "the second half of a second")
        before = time.monotonic()
        db.put("demo", "t", {"v": 1}, ttl=1)
        while time.monotonic() - before < 0.95:
            assert db.get("demo", "t") is not None, f"expired {time.monotonic() - before:.2f} s in"
        wait_for(lambda: db.get("demo", "t") is None, 5, "the TTL cell to expire")
        assert time.monotonic() - before < 2.5


def test_timestamp_zero_means_not_given(node: Ringd) -> None:
    with node.client() as db:
        result = db.put("demo", "z", {"v": 1}, timestamp=0)
        assert result["timestamp"] > 1_000_000_000_000_000  # µs of the node's clock, not 0
        assert db.get("demo", "z")["writetime"]["v"] == result["timestamp"]


def test_default_ttl_above_the_maximum_is_refused(node: Ringd) -> None:
    message = "default_ttl must be between 0 and 630720000 seconds"
    assert message in DOC
    with node.client() as db:
        for call in (
            lambda: db.keyspace_create("toolong", default_ttl=630720001),
            lambda: db.keyspace_alter("demo", default_ttl=630720001),
        ):
            with pytest.raises(ProtocolError) as exc:
                call()
            assert exc.value.code == ErrorCode.INVALID and exc.value.message == message
        db.keyspace_alter("demo", default_ttl=630720000)
        db.put("demo", "d", {"v": 1})


def test_unavailable_details_match_the_doc(cluster_factory: Callable[..., list[Ringd]]) -> None:
    nodes = cluster_factory(2, gossip_interval_ms=100)
    with nodes[0].client() as db:
        db.keyspace_create("rf2", replication={"class": "SimpleStrategy", "replication_factor": 2})
    nodes[1].stop()
    wait_status(nodes[0], nodes[1].address, "DOWN")
    with nodes[0].client() as db:
        for kwargs, level in (({"w": 2}, "w=2"), ({"consistency": "TWO"}, "TWO")):
            with pytest.raises(ProtocolError) as exc:
                db.put("rf2", "k", {"v": 1}, **kwargs)
            err = exc.value
            assert err.code == ErrorCode.UNAVAILABLE
            assert err.details == {
                "required": 2,
                "alive": 1,
                "consistency": level,
                "replicas": 2,
            }
            assert err.message == (
                f"cannot achieve consistency {level}: 2 replicas required but only 1 alive"
            )
            assert err.message in re.sub(r"\s+", " ", DOC)
            assert f'"consistency": "{level}"' in DOC
