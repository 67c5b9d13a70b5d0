"""``ringctl assassinate``: a dead endpoint is removed from gossip on every node, from every
node's ring and status, and from every node's saved peers (docs/security.md)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from nodes import Ringd, run_ringctl, wait_for, wait_status

from ringd.gms import peers


def status_addresses(node: Ringd) -> set[str]:
    with node.client(timeout=5) as db:
        return {n["address"] for n in db.admin("status")["nodes"]}


def saved_addresses(node: Ringd) -> set[str]:
    saved = peers.load(node.data_dir / "system" / "peers.cbor")
    return {states.get("ADDRESS") for _, states in saved.values()}


def ringctl(*args: str) -> subprocess.CompletedProcess[str]:
    return run_ringctl(*args, timeout=60)


def test_assassinate_removes_a_dead_node_everywhere(
    cluster_factory: Callable[..., list[Ringd]],
) -> None:
    n1, n2, n3 = cluster_factory(3)
    wait_for(lambda: n3.address in saved_addresses(n1), 20, "node 1 to save its peers")
    # a node that is up cannot be assassinated
    up = ringctl("assassinate", n3.address, "--host", n1.address)
    assert up.returncode != 0 and "is UP" in up.stderr, up
    n3.kill()
    wait_status(n1, n3.address, "DOWN")
    wait_status(n2, n3.address, "DOWN")

    done = ringctl("assassinate", n3.address, "--host", n1.address)
    assert done.returncode == 0, done
    assert "Assassinated" in done.stdout

    for node in (n1, n2):  # gossip spreads it: every node forgets the endpoint
        wait_for(lambda node=node: status_addresses(node) == {n1.address, n2.address}, 20)
        wait_for(lambda node=node: n3.address not in saved_addresses(node), 20, "peers file")
    with n2.client(timeout=5) as db:
        db.keyspace_create("demo")
        db.put("demo", b"k", {"v": b"1"}, consistency="ALL")  # RF 1: only live nodes own it
    unknown = ringctl("assassinate", "127.0.0.9:1", "--host", n1.address)
    assert unknown.returncode != 0 and "no endpoint" in unknown.stderr, unknown
