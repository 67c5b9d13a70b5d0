"""Attacks from docs/security.md against real nodes: each is refused and changes nothing."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import cbor2
import pytest
from nodes import Ringd, connect_raw, still_serving, wait_for

from ringctl.client import Client
from ringd.protocol import codec, messages
from ringd.protocol.framing import FrameReader, frame


class Raw:
    """One raw connection: send requests, read the responses (None once the node closed)."""

    def __init__(self, address: str) -> None:
        self.sock = connect_raw(address)
        self.sock.settimeout(5.0)
        self.reader = FrameReader(1 << 24)
        self.next_id = 0

    def request(self, op: str, args: dict[str, Any]) -> dict[str, Any] | None:
        self.sock.sendall(frame(cbor2.dumps(messages.request(self.next_id, op, args))))
        self.next_id += 1
        while (body := self.reader.next_frame()) is None:
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                return None
            if not data:
                return None
            self.reader.feed(data)
        return codec.decode_map(body)

    def close(self) -> None:
        self.sock.close()


def code(reply: dict[str, Any] | None) -> str | None:
    return None if reply is None or "error" not in reply else reply["error"]["code"]


def node_count(node: Ringd) -> int:
    with node.client(timeout=5) as db:
        return len(db.admin("status")["nodes"])


PEER_HELLO = messages.hello_args("peer", cluster="ringd", host_id="intruder")


def test_peer_hello_without_the_secret_is_unauthorized(node: Ringd) -> None:
    raw = Raw(node.address)
    try:
        reply = raw.request("hello", PEER_HELLO)
        assert code(reply) == "UNAUTHORIZED", reply
        assert "cluster_secret_file" in reply["error"]["message"]
        assert raw.request("ping", {}) is None  # closed
    finally:
        raw.close()
    assert node_count(node) == 1
    wait_for(lambda: "refused peer from 127.0.0.1" in node.log(), 5, "the refusal in the log")


def test_forged_gossip_with_a_guessed_proof_changes_nothing(node: Ringd) -> None:
    raw = Raw(node.address)
    try:
        hello = raw.request("hello", {**PEER_HELLO, "nonce": os.urandom(32)})
        assert hello is not None and "proof" in hello["result"]
        # no verb but auth before the proof
        fake = {"states": {"10.9.9.9:7400": {"generation": 1, "version": 1, "states": {}}}}
        assert code(raw.request("gossip_ack2", fake)) == "UNAUTHORIZED"
        assert code(raw.request("auth", {"proof": os.urandom(32)})) == "UNAUTHORIZED"
        assert raw.request("ping", {}) is None
    finally:
        raw.close()
    assert node_count(node) == 1
    assert still_serving(node.address)


def test_node_without_the_secret_cannot_join(ringd_factory: Any) -> None:
    a = ringd_factory("a")
    b = ringd_factory("b", seeds=[a.address], cluster_secret_file=None)
    wait_for(lambda: "cannot join the cluster through" in b.log(), 15, "b's one-line reason")
    assert "cluster_secret_file" in b.log()
    assert node_count(a) == 1


def test_cluster_of_nodes_with_the_secret_forms(cluster_factory: Any) -> None:
    nodes = cluster_factory(2)
    assert node_count(nodes[1]) == 2


def test_quick_start_is_one_command_with_auth_on(tmp_path: Path) -> None:
    from cluster.kit import Ringctl, cluster_port

    ringctl = Ringctl(tmp_path / "home")
    try:
        port = str(cluster_port(3))
        ringctl.ok("cluster", "start", "-n", "3", "--rf", "3", "--port", port)
        cdir = tmp_path / "home" / "clusters" / "local"
        for name in ("cluster.secret", "admin.password"):
            assert (cdir / name).stat().st_mode & 0o777 == 0o600
        assert "cluster_secret_file" in (cdir / "node1" / "ringd.toml").read_text()
        ringctl.ok("put", "demo", "k", '{"v": 1}')
        assert ringctl.json("get", "demo", "k")["columns"] == {"v": 1}
        # a client without the cluster's credentials is refused, exit 4, one line
        (tmp_path / "wrong").write_text("not-the-password\n")
        wrong = ringctl(
            "--user", "admin", "--password-file", str(tmp_path / "wrong"), "get", "demo", "k"
        )
        assert wrong.returncode == 4, wrong
        assert "wrong user name or password" in wrong.stderr
        assert len(wrong.stderr.strip().splitlines()) == 1
        # test hooks of a ringctl cluster node are not reachable without the admin's password
        with pytest.raises(Exception) as refused:
            with Client(f"127.0.0.1:{port}", timeout=5) as db:
                db.admin("test_clock", offset_ms=86_400_000)
        assert "UNAUTHORIZED" in repr(refused.value) or "password" in str(refused.value)
    finally:
        ringctl.cleanup()


def _authenticated_peer(node: Ringd) -> Raw:
    from ringd.auth.peer import Initiator, load_secret_file

    raw = Raw(node.address)
    initiator = Initiator(load_secret_file(node.flags["cluster_secret_file"]), "ringd", "p")
    hello = raw.request("hello", {**PEER_HELLO, **initiator.hello_fields()})
    assert hello is not None and "result" in hello, hello
    assert raw.request("auth", initiator.auth_args(hello["result"])) == {"id": 1, "result": {}}
    return raw


def test_client_timestamp_far_in_the_future_is_invalid(node: Ringd) -> None:
    import time

    far = int(time.time() * 1e6) + 3_600_000_000
    with node.client() as db:
        with pytest.raises(Exception) as refused:
            db.put("demo", "k", {"v": 1}, timestamp=far)
        assert "max_future_timestamp_ms" in str(refused.value)
        assert db.get("demo", "k") is None or not db.get("demo", "k").get("columns")
        db.put("demo", "k", {"v": 2})  # a normal write still works


@pytest.mark.parametrize(
    "row",
    [
        {"c": {"v": [2**62, cbor2.dumps(1), None]}},  # far-future timestamp
        {"c": {"v": [-5, cbor2.dumps(1), None]}},  # negative timestamp
        b"\xff not a row",
    ],
)
def test_peer_mutate_with_a_bad_row_is_invalid_and_stores_nothing(node: Ringd, row: Any) -> None:
    raw = _authenticated_peer(node)
    try:
        reply = raw.request("mutate", {"ks": "demo", "key": b"bad", "row": row})
        assert code(reply) == "INVALID", reply
    finally:
        raw.close()
    with node.client() as db:
        got = db.get("demo", "bad")
        assert got is None or not got.get("columns"), got


def test_peer_mutate_with_an_integer_key_is_invalid(node: Ringd) -> None:
    raw = _authenticated_peer(node)
    try:
        reply = raw.request("mutate", {"ks": "demo", "key": 10**8, "row": {"c": {}}})
        assert code(reply) == "INVALID", reply
    finally:
        raw.close()


def test_peer_schema_push_stamped_in_the_future_is_invalid(node: Ringd) -> None:
    """The attack of a drop stamped 2**64-1 (it could never be overridden): refused, and the
    keyspace and its data stay."""
    with node.client() as db:
        db.put("demo", "k", {"v": 1})
        definition = next(k for k in db.keyspace_list()["keyspaces"] if k["name"] == "demo")
    raw = _authenticated_peer(node)
    try:
        for stamp in ((1 << 63) - 1, int(time.time() * 1e6) + 3_600_000_000):
            forged = {**definition, "dropped": True, "timestamp": stamp}
            reply = raw.request("schema_push", {"keyspaces": [forged]})
            assert code(reply) == "INVALID", reply
            assert "ahead of this node's clock" in reply["error"]["message"]
    finally:
        raw.close()
    with node.client() as db:
        assert "demo" in [k["name"] for k in db.keyspace_list()["keyspaces"]]
        assert db.get("demo", "k")["columns"] == {"v": 1}
