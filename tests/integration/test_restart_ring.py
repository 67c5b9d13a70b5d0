"""A restarted node serves from the whole ring at once: its saved peers (``system/peers.cbor``)
and the gossip settle wait before it listens (docs/configuration.md, "Starting")."""

from __future__ import annotations

from collections.abc import Callable

from nodes import Ringd, create_keyspace, statuses, wait_for

ROWS = 60


def _write_everywhere(nodes: list[Ringd]) -> None:
    create_keyspace(nodes, "full", 3)
    create_keyspace(nodes, "half", 2)
    with nodes[0].client() as db:
        for ks in ("full", "half"):
            for i in range(ROWS):
                db.put(ks, f"k{i}", {"v": i}, consistency="ALL")


def test_a_restarted_node_reads_every_row_at_one_as_soon_as_it_answers(
    cluster_factory: Callable[..., list[Ringd]],
) -> None:
    """RF 3 of 3 nodes: every node holds every row. RF 2: a third of the rows are on the two
    other nodes only, so the restarted node must know them (and see them up) to find them."""
    nodes = cluster_factory(3)
    _write_everywhere(nodes)
    victim = nodes[2]
    wait_for(lambda: (victim.data_dir / "system" / "peers.cbor").exists(), 10, "peers saved")
    victim.kill()  # a crash: what it saved while running is all it has
    victim.start()  # returns as soon as it answers ping
    with victim.client() as db:
        for ks in ("full", "half"):
            missing = [i for i in range(ROWS) if db.get(ks, f"k{i}", consistency="ONE") is None]
            assert missing == [], f"{ks}: rows not found at ONE: {missing}\n{victim.log()}"
    assert "gossip settled" in victim.log()


def test_a_restarted_node_knows_every_node_before_gossip_does(
    cluster_factory: Callable[..., list[Ringd]],
) -> None:
    """Without the settle wait, the ring comes from the saved peers: complete at once, the
    peers DOWN until gossip hears from them."""
    nodes = cluster_factory(3, gossip_settle_s=0)
    victim = nodes[2]

    def saved_both() -> bool:
        path = victim.data_dir / "system" / "peers.cbor"
        return path.exists() and all(n.address.encode() in path.read_bytes() for n in nodes[:2])

    wait_for(saved_both, 10, "both peers saved")
    victim.stop()
    victim.start()
    seen = statuses(victim)
    assert set(seen) == {n.address for n in nodes}, seen
