"""The client library against a real node: the trio API with many requests in flight, and the
blocking API's errors."""

from __future__ import annotations

import pytest
import trio
from nodes import Ringd

from ringctl.client import AsyncClient, Client, ConnectError
from ringd.protocol.errors import InvalidRequest


async def test_async_client_pipelines_on_one_connection(node: Ringd) -> None:
    async with AsyncClient(node.address) as db:
        assert db.server_info["host_id"]

        async def write(i: int) -> None:
            result = await db.put("demo", f"a{i}", {"i": i, "blob": b"\x00\x01"})
            assert result["acks"] == 1

        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(write, i)
        rows = []

        async def read(i: int) -> None:
            rows.append(await db.get("demo", f"a{i}"))

        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(read, i)
        assert sorted(r["columns"]["i"] for r in rows) == list(range(200))
        assert all(r["columns"]["blob"] == b"\x00\x01" for r in rows)
        with pytest.raises(InvalidRequest, match="does not exist"):
            await db.get("nope", "k")
        # the connection survives an error answer
        assert (await db.get("demo", "a1"))["columns"]["i"] == 1


async def test_async_client_cannot_connect() -> None:
    with pytest.raises(ConnectError, match="cannot connect"):
        async with AsyncClient("127.0.0.1:1"):
            pass


def test_blocking_client_reconnects_after_the_node_restarts(node: Ringd) -> None:
    with Client(node.address) as db:
        db.put("demo", "k", {"v": 1})
        node.stop()
        with pytest.raises(ConnectError):
            db.get("demo", "k")
        node.start()
        assert db.get("demo", "k")["columns"] == {"v": 1}


def test_restart_keeps_host_id_and_tokens(node: Ringd) -> None:
    with Client(node.address) as db:
        before = db.admin("info")["host_id"], [t["token"] for t in db.admin("ring")["tokens"]]
    node.stop()
    node.start()
    with Client(node.address) as db:
        after = db.admin("info")["host_id"], [t["token"] for t in db.admin("ring")["tokens"]]
    assert before == after
