"""A node's first start chooses tokens that balance ownership against the ring a seed reports,
and keeps them across restarts."""

from __future__ import annotations

from collections.abc import Callable

import cbor2
from nodes import Ringd, free_port, wait_all_up, wait_for


def owning(node: Ringd) -> list[str]:
    """The nodes ``node`` reports as UP and owning some of the ring."""
    with node.client() as db:
        nodes = db.admin("status")["nodes"]
    return [n["address"] for n in nodes if n["status"] == "UP" and n["owns"] > 0]


def test_joining_nodes_balance_ownership_and_keep_their_tokens(
    ringd_factory: Callable[..., Ringd],
) -> None:
    ports = [free_port() for _ in range(4)]
    seeds = [f"127.0.0.1:{ports[0]}"]
    nodes: list[Ringd] = []
    for i in range(4):
        # one at a time, as docs/operations.md asks: the next node balances against the ring
        # the seed reports, so the seed must know this one's tokens first
        nodes.append(ringd_factory(f"node{i + 1}", port=ports[i], seeds=seeds))
        wait_for(
            lambda: len(owning(nodes[0])) == len(nodes),
            30,
            f"the seed to report the tokens of all {len(nodes)} nodes",
        )
    wait_all_up(nodes)
    with nodes[0].client() as db:
        status = db.admin("status")  # no keyspace with a replication: raw token share
    shares = [n["owns"] for n in status["nodes"]]
    assert len(shares) == 4 and abs(sum(shares) - 1) < 1e-3
    assert max(shares) / min(shares) <= 1.3, shares
    assert "to balance ownership with 3 nodes" in nodes[3].log()
    local = nodes[3].data_dir / "system" / "local.cbor"
    tokens = cbor2.loads(local.read_bytes())["tokens"]
    assert len(tokens) == 16
    nodes[3].stop()
    nodes[3].start()
    assert cbor2.loads(local.read_bytes())["tokens"] == tokens
