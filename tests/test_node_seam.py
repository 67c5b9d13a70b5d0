"""The in-process seam: a Node with an injected messaging object and wall clock runs its
services without a listener, and its merged handler table serves requests by verb mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from ringd.config import Config
from ringd.net.server import Session
from ringd.node import Node
from ringd.protocol.errors import ProtocolError
from ringd.protocol.messages import DEFERRED, PEER, TASK, VERBS

WALL = 1_800_000_000.0


class NoPeers:
    """Messaging for a node alone: every call fails as an unreachable peer would."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def call(self, address: str, verb: str, args: dict[str, Any], timeout: Any = None) -> Any:
        self.calls.append(verb)
        raise OSError("no network in this test")

    def send(self, address: str, verb: str, args: Any, callback: Any, timeout: Any = None) -> None:
        self.calls.append(verb)
        callback(None, ProtocolError("no network in this test"))


async def _serve(node: Node, op: str, args: dict[str, Any], role: str = "client") -> Any:
    """Run one request through ``node.handlers`` the way the server would, by verb mode."""
    handler: Any = node.handlers[op]
    session = Session("test", role)
    mode = VERBS[op].mode
    if mode == TASK:
        return await handler(session, args)
    if mode == DEFERRED:
        out: list[Any] = []
        done = trio.Event()

        def reply(value: Any) -> None:
            out.append(value)
            done.set()

        handler(session, args, reply)
        await done.wait()
        if isinstance(out[0], ProtocolError):
            raise out[0]
        return out[0]
    return handler(session, args)


async def test_a_node_runs_in_process_without_a_listener(tmp_path: Path) -> None:
    messaging = NoPeers()
    config = Config(listen="127.0.0.1:1", data_dir=str(tmp_path))
    node = Node(config, messaging=messaging, wall=lambda: WALL)  # type: ignore[arg-type]
    assert node.started_at == WALL and node.generation >= int(WALL)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: node.run(listen=False, task_status=task_status))
        assert node.listeners == []
        await _serve(
            node,
            "keyspace_create",
            {"name": "demo", "replication": {"class": "SimpleStrategy", "replication_factor": 1}},
        )
        put = await _serve(node, "put", {"keyspace": "demo", "key": "k", "columns": {"v": 1}})
        assert put["acks"] == 1 and put["timestamp"] >= int(WALL * 1e6)
        got = await _serve(node, "get", {"keyspace": "demo", "key": "k"})
        assert got["columns"] == {"v": 1}
        local = await _serve(node, "read_local", {"ks": "demo", "key": b"k"}, PEER)
        assert local["row"]["c"]["v"][0] == put["timestamp"]
        nursery.cancel_scope.cancel()
    assert "mutate" not in messaging.calls  # one replica: written in-process
