"""Membership changes that move data, on real ringd processes (issue 15; docs/operations.md):
bootstrap streams a new node's ranges before it is NORMAL while writes go on; a bootstrap whose
needed replica is down fails (Cassandra's consistent_range_movement dtest) and one killed midway
resumes (resumable bootstrap)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from nodes import Ringd, create_keyspace, ringctl, wait_all_up, wait_for

from ringctl.client import Client
from ringd.protocol.errors import ProtocolError

RF3 = {"class": "SimpleStrategy", "replication_factor": 3}
RF2 = {"class": "SimpleStrategy", "replication_factor": 2}
FAST = {"gossip_interval_ms": 100, "phi_threshold": 6}


def create_keyspaces(nodes: list[Ringd]) -> None:
    create_keyspace(nodes, "rf3", RF3, timeout=15)
    create_keyspace(nodes, "rf2", RF2, timeout=15)


def load(node: Ringd, ks: str, keys: Iterable[str], consistency: str = "ALL") -> None:
    """Write ``{"v": key}`` for every key, 8 at a time."""
    local = threading.local()

    def put(key: str) -> None:
        if not hasattr(local, "db"):
            local.db = Client(node.address, timeout=20)
        local.db.put(ks, key, {"v": key}, consistency=consistency)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, keys))


class Writer:
    """Writes new keys at QUORUM through ``node`` until stopped; remembers the acknowledged."""

    def __init__(self, node: Ringd, keyspaces: list[str]) -> None:
        self.node, self.keyspaces = node, keyspaces
        self.acked: dict[str, list[str]] = {ks: [] for ks in keyspaces}
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        with Client(self.node.address, timeout=20) as db:
            while not self._stop.is_set():
                ks = self.keyspaces[i % len(self.keyspaces)]
                key = f"live{i}"
                try:
                    db.put(ks, key, {"v": key}, consistency="QUORUM")
                    self.acked[ks].append(key)
                except ProtocolError as exc:
                    self.failed.append(f"{ks} {key}: {exc}")
                i += 1

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(30)

    def count(self) -> int:
        return sum(len(v) for v in self.acked.values())


def states(node: Ringd) -> dict[str, str]:
    """address -> UN/DN/UJ/... as ``node`` sees the cluster."""
    with node.client() as db:
        rows = db.admin("status")["nodes"]
    return {r["address"]: ("U" if r["status"] == "UP" else "D") + r["state"][0] for r in rows}


def check_readable(nodes: list[Ringd], acked: dict[str, list[str]]) -> None:
    """Every acknowledged row reads back at ONE from each of its replicas (first, before any
    read could repair one), then at QUORUM."""
    by_address = {n.address: n for n in nodes}
    missing: list[tuple[str, str, str]] = []
    endpoints: dict[tuple[str, str], list[str]] = {}
    with nodes[0].client(timeout=20) as db:
        for ks, keys in acked.items():
            for key in keys:
                got = db.admin("getendpoints", keyspace=ks, key=key)["endpoints"]
                endpoints[(ks, key)] = got
    for address, node in by_address.items():
        with node.client(timeout=20) as db:
            for (ks, key), replicas in endpoints.items():
                if address in replicas:
                    row = db.get(ks, key, consistency="ONE")
                    if row is None or row["columns"] != {"v": key}:
                        missing.append((ks, key, address))
    with nodes[0].client(timeout=20) as db:
        for ks, keys in acked.items():
            for key in keys:
                row = db.get(ks, key, consistency="QUORUM")
                if row is None or row["columns"] != {"v": key}:
                    missing.append((ks, key, "QUORUM"))
    assert not missing, f"{len(missing)} acknowledged reads missing, e.g. {missing[:5]}"


def hints_delivered(nodes: list[Ringd]) -> bool:
    for node in nodes:
        with node.client() as db:
            if any(h["files"] for h in db.admin("hints_pending")["hosts"]):
                return False
    return True


def loads(node: Ringd) -> dict[str, int]:
    with node.client() as db:
        return {r["address"]: int(r["load"]) for r in db.admin("status")["nodes"]}


def start_cluster(
    ringd_factory: Callable[..., Ringd], n: int, **flags: Any
) -> tuple[list[Ringd], list[str]]:
    from nodes import free_port

    ports = [free_port() for _ in range(n)]
    seeds = [f"127.0.0.1:{ports[0]}"]
    nodes = [
        ringd_factory(
            f"node{i + 1}",
            port=ports[i],
            seeds=seeds,
            enable_test_hooks=True,
            commitlog_sync="batch",
            **FAST,
            **flags,
        )
        for i in range(n)
    ]
    wait_all_up(nodes)
    return nodes, seeds


def test_bootstrap_streams_under_writes_and_is_normal_only_after(
    ringd_factory: Callable[..., Ringd],
) -> None:
    nodes, seeds = start_cluster(ringd_factory, 3)
    create_keyspaces(nodes)
    base = [f"k{i}" for i in range(2000)]
    load(nodes[0], "rf3", base)
    load(nodes[0], "rf2", base)
    with nodes[0].client() as db:
        db.admin("flush")
    seen: set[str] = set()
    with Writer(nodes[0], ["rf3", "rf2"]) as writer:
        node4 = ringd_factory(
            "node4",
            seeds=seeds,
            enable_test_hooks=True,
            commitlog_sync="batch",
            stream_throughput_mb_per_s=0.25,
            wait=False,
            **FAST,
        )

        def normal() -> bool:
            seen.add(states(nodes[0]).get(node4.address, "--"))
            return seen and states(nodes[0]).get(node4.address) == "UN"

        wait_for(normal, 90, "node4 NORMAL")
        during = writer.count()
        wait_for(lambda: writer.count() > during + 50, 20, "writes after the join")
    assert "UJ" in seen, seen  # JOINING while it streamed
    assert writer.count() > 100 and not writer.failed, writer.failed[:5]
    log = node4.log()
    assert "bootstrap: streaming" in log and "bootstrap complete" in log
    with node4.client() as db:
        streams = db.admin("netstats")["streams"]
    assert streams and all(s["state"] == "COMPLETED" and s["plan"] == "bootstrap" for s in streams)
    assert sum(s["bytes"] for s in streams) > 0
    nodes.append(node4)
    acked = {ks: base + writer.acked[ks] for ks in ("rf3", "rf2")}
    check_readable(nodes, acked)
    assert loads(node4)[node4.address] > 0
    # cleanup on the others removes what node4 took over, and nothing they still replicate
    for node in nodes[:3]:
        with node.client() as db:
            db.admin("flush")
            before = {k: v["rows_on_disk"] for k, v in db.admin("tablestats")["keyspaces"].items()}
        done = ringctl(node, "cleanup")
        assert done.returncode == 0, done.stderr
        assert "rows removed" in done.stdout and "rf3" in done.stdout
        with node.client() as db:
            after = {k: v["rows_on_disk"] for k, v in db.admin("tablestats")["keyspaces"].items()}
        assert after["rf2"] < before["rf2"] and after["rf3"] <= before["rf3"], (before, after)
    assert sum(loads(nodes[0]).values()) > 0
    check_readable(nodes, acked)


def test_bootstrap_with_the_losing_replica_down_fails_unless_allowed(
    ringd_factory: Callable[..., Ringd],
) -> None:
    """Cassandra's consistent_range_movement dtest: the replica a new node's range comes from is
    down, so the bootstrap fails (the node exits naming it); it succeeds with
    --allow-inconsistent-bootstrap, from the other replicas."""
    nodes, seeds = start_cluster(ringd_factory, 3)
    create_keyspaces(nodes)
    base = [f"k{i}" for i in range(300)]
    load(nodes[0], "rf2", base)
    nodes[2].kill()
    wait_for(lambda: states(nodes[0])[nodes[2].address] == "DN", 20, "node3 down")
    node4 = ringd_factory("node4", seeds=seeds, wait=False, **FAST)
    assert node4.proc is not None
    assert node4.proc.wait(90) == 1
    assert "bootstrap failed: replica " + nodes[2].address in node4.log()
    assert "is down: a consistent bootstrap needs it" in node4.log()
    assert node4.address not in states(nodes[0])  # it never announced its tokens
    node4.flags["allow_inconsistent_bootstrap"] = True
    node4.start(wait=False)
    wait_for(lambda: states(nodes[0]).get(node4.address) == "UN", 90, "node4 NORMAL")
    nodes[2].start()
    nodes.append(node4)
    wait_all_up(nodes)
    check_readable(nodes, {"rf2": base})


def test_a_bootstrap_killed_midway_resumes_and_loses_nothing(
    ringd_factory: Callable[..., Ringd],
) -> None:
    """Resumable bootstrap: kill -9 the joining node mid-stream; started again it streams only
    the ranges it had not received, then is NORMAL with every acknowledged row."""
    nodes, seeds = start_cluster(ringd_factory, 3)
    create_keyspaces(nodes)
    base = [f"k{i}" for i in range(2000)]
    load(nodes[0], "rf3", base)
    load(nodes[0], "rf2", base)
    node4 = ringd_factory(
        "node4",
        seeds=seeds,
        commitlog_sync="batch",
        stream_throughput_mb_per_s=0.02,
        wait=False,
        **FAST,
    )

    def some_ranges_received() -> bool:
        with node4.client() as db:
            streams = db.admin("netstats")["streams"]
        return sum(s["ranges_done"] for s in streams) >= 4

    with Writer(nodes[0], ["rf3", "rf2"]) as writer:
        wait_for(some_ranges_received, 60, "node4 to receive some ranges")
        refused = ringctl(nodes[0], "cleanup")
        assert refused.returncode != 0 and "joining or leaving" in refused.stderr
        node4.kill()
        node4.flags["stream_throughput_mb_per_s"] = 0
        node4.start(wait=False)
        wait_for(lambda: states(nodes[0]).get(node4.address) == "UN", 90, "node4 NORMAL")
        during = writer.count()
        wait_for(lambda: writer.count() > during + 20, 20, "writes after the join")
    # writes time out while the killed pending node is not yet seen down: not acknowledged,
    # so not checked; every acknowledged one must be there
    assert writer.count() > 100
    with node4.client() as db:
        streams = db.admin("netstats")["streams"]
    assert sum(s["ranges_skipped"] for s in streams) >= 4, streams
    nodes.append(node4)
    # writes made while the killed node was seen down left hints for it (its replicas then)
    wait_for(lambda: hints_delivered(nodes), 60, "hints delivered")
    check_readable(nodes, {ks: base + writer.acked[ks] for ks in ("rf3", "rf2")})


def read_all(nodes: list[Ringd], acked: dict[str, list[str]]) -> None:
    """Every acknowledged row reads back at ALL through each of ``nodes``."""
    missing = []
    for node in nodes:
        with node.client(timeout=20) as db:
            for ks, keys in acked.items():
                for key in keys[node.port % 7 :: 7]:  # a different seventh through each node
                    row = db.get(ks, key, consistency="ALL")
                    if row is None or row["columns"] != {"v": key}:
                        missing.append((ks, key, node.address))
    assert not missing, f"{len(missing)} acknowledged rows missing at ALL, e.g. {missing[:5]}"


class Background:
    """Runs ``fn`` in a thread; ``result()`` is its value or raises its exception."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._value: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = fn()
            except BaseException as exc:
                self._error = exc

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def result(self, timeout: float = 120) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "still running"
        if self._error is not None:
            raise self._error
        return self._value


def decommission(node: Ringd) -> Any:
    with node.client(timeout=600) as db:
        return db.admin("decommission", timeout=600)


def test_decommission_under_writes_and_one_at_a_time(ringd_factory: Callable[..., Ringd]) -> None:
    nodes, _ = start_cluster(ringd_factory, 4)
    create_keyspaces(nodes)
    base = [f"k{i}" for i in range(1000)]
    load(nodes[0], "rf3", base)
    load(nodes[0], "rf2", base)
    leaving = nodes[1]
    seen: set[str] = set()
    with Writer(nodes[0], ["rf3", "rf2"]) as writer:
        job = Background(lambda: decommission(leaving))

        def is_leaving() -> bool:
            seen.add(states(nodes[0]).get(leaving.address, "--"))
            return "UL" in seen

        wait_for(is_leaving, 20, "node2 LEAVING")
        wait_for(lambda: states(nodes[2]).get(leaving.address) == "UL", 20, "node3 sees it")
        with nodes[2].client() as db:  # Cassandra's concurrent_decommission_not_allowed
            try:
                db.admin("decommission")
                raise AssertionError("a second decommission was accepted")
            except ProtocolError as exc:
                assert "one membership change at a time" in str(exc)
        result = job.result(300)
        assert leaving.proc is not None and leaving.proc.wait(60) == 0
        during = writer.count()
        wait_for(lambda: writer.count() > during + 50, 20, "writes after the decommission")
    assert result["state"] == "LEFT" and result["rows"] > 0, result
    assert not writer.failed, writer.failed[:5]
    rest = [nodes[0], nodes[2], nodes[3]]
    for node in rest:
        wait_for(lambda n=node: leaving.address not in states(n), 20, "node2 gone from status")
    acked = {ks: base + writer.acked[ks] for ks in ("rf3", "rf2")}
    check_readable(rest, acked)
    read_all(rest, acked)
    # refused below the replication factor: rf3 on 3 nodes
    with nodes[3].client() as db:
        try:
            db.admin("decommission")
            raise AssertionError("decommission below RF was accepted")
        except ProtocolError as exc:
            assert "would have 2 replicas instead of 3" in str(exc)
    # a decommissioned node cannot silently rejoin
    leaving.start(wait=False)
    assert leaving.proc is not None and leaving.proc.wait(30) == 1
    assert "this node was decommissioned" in leaving.log()


def test_a_decommission_killed_midway_resumes_and_loses_nothing(
    ringd_factory: Callable[..., Ringd],
) -> None:
    nodes, _ = start_cluster(ringd_factory, 4, stream_throughput_mb_per_s=0.02)
    create_keyspaces(nodes)
    base = [f"k{i}" for i in range(2000)]
    load(nodes[0], "rf3", base)
    load(nodes[0], "rf2", base)
    leaving, others = nodes[1], [nodes[0], nodes[2], nodes[3]]

    def received() -> int:
        total = 0
        for node in others:
            with node.client() as db:
                total += sum(s["ranges_done"] for s in db.admin("netstats")["streams"])
        return total

    with Writer(nodes[0], ["rf3", "rf2"]) as writer:
        job = Background(lambda: decommission(leaving))
        wait_for(lambda: received() >= 4, 60, "some ranges streamed")
        leaving.kill()
        try:
            job.result(60)
        except Exception:  # the connection to the killed node breaks
            pass
        leaving.start()  # it comes back LEAVING: writes of its ranges still reach the others
        wait_for(lambda: states(nodes[0]).get(leaving.address) == "UL", 30, "node2 LEAVING")
        result = decommission(leaving)
        assert leaving.proc is not None and leaving.proc.wait(60) == 0
    assert result["state"] == "LEFT"
    skipped = 0
    for node in others:
        with node.client() as db:
            skipped += sum(s["ranges_skipped"] for s in db.admin("netstats")["streams"])
    assert skipped >= 4
    acked = {ks: base + writer.acked[ks] for ks in ("rf3", "rf2")}
    check_readable(others, acked)
    read_all(others, acked)


def host_id(node: Ringd) -> str:
    with node.client() as db:
        return str(db.admin("info")["host_id"])


def test_removenode_re_replicates_a_dead_node(ringd_factory: Callable[..., Ringd]) -> None:
    nodes, _ = start_cluster(ringd_factory, 4)
    create_keyspaces(nodes)
    base = [f"k{i}" for i in range(1000)]
    load(nodes[0], "rf3", base)
    load(nodes[0], "rf2", base)
    dead = nodes[2]
    dead_id = host_id(dead)
    refused = ringctl(nodes[0], "removenode", host_id(nodes[1]))
    assert refused.returncode != 0 and "removenode is for dead nodes" in refused.stderr
    dead.kill()
    wait_for(lambda: states(nodes[0])[dead.address] == "DN", 20, "node3 down")
    done = ringctl(nodes[0], "removenode", dead_id, "--json")
    assert done.returncode == 0, done.stderr
    status = ringctl(nodes[0], "removenode", "status")
    assert "COMPLETED" in status.stdout, status.stdout
    rest = [nodes[0], nodes[1], nodes[3]]
    for node in rest:
        wait_for(lambda n=node: dead.address not in states(n), 20, "node3 gone from status")
    check_readable(rest, {"rf3": base, "rf2": base})  # each replica holds its copy
    read_all(rest, {"rf3": base, "rf2": base})  # RF 3 on 3 nodes: ALL works
    # started again with its old data, it refuses to rejoin
    dead.start(wait=False)
    assert dead.proc is not None and dead.proc.wait(30) == 1
    assert "this node was removed from the ring" in dead.log()


def rows_at(node: Ringd) -> list[tuple[str, str, str]]:
    """(address, host id, UN/DN/UJ/...) for every node ``node`` lists."""
    with node.client() as db:
        rows = db.admin("status")["nodes"]
    return [
        (r["address"], r["host_id"], ("U" if r["status"] == "UP" else "D") + r["state"][0])
        for r in rows
    ]


def test_replace_a_dead_node_on_its_address(ringd_factory: Callable[..., Ringd]) -> None:
    nodes, seeds = start_cluster(ringd_factory, 4)
    create_keyspaces(nodes)
    base = [f"k{i}" for i in range(1000)]
    load(nodes[0], "rf3", base)
    load(nodes[0], "rf2", base)
    # replacing a live node is refused (Cassandra's replace_active_node dtest)
    live = ringd_factory("impostor", seeds=seeds, replace=nodes[1].address, wait=False, **FAST)
    assert live.proc is not None and live.proc.wait(60) == 1
    assert f"cannot replace {nodes[1].address}" in live.log() and "it is alive" in live.log()
    dead = nodes[2]
    dead_id = host_id(dead)
    dead.kill()
    wait_for(lambda: states(nodes[0])[dead.address] == "DN", 20, "node3 down")
    with Writer(nodes[0], ["rf3", "rf2"]) as writer:
        new = ringd_factory(
            "node3-new",
            port=dead.port,
            seeds=seeds,
            commitlog_sync="batch",
            replace=dead.address,
            wait=False,
            **FAST,
        )

        def replaced() -> bool:
            rows = rows_at(nodes[0])
            mine = [r for r in rows if r[0] == dead.address]
            return len(mine) == 1 and mine[0][1] != dead_id and mine[0][2] == "UN"

        wait_for(replaced, 90, "the replacement NORMAL and node3's old host id gone")
        during = writer.count()
        wait_for(lambda: writer.count() > during + 50, 20, "writes after the replacement")
    # (rf2 writes with node3 as a replica fail at QUORUM until the replacement is NORMAL)
    assert writer.count() > 100
    assert f"replacing {dead.address} ({dead_id})" in new.log()
    with new.client() as db:
        streams = db.admin("netstats")["streams"]
    assert streams and all(s["plan"] == "replace" for s in streams)
    rest = [nodes[0], nodes[1], new, nodes[3]]
    for node in rest:
        assert dead_id not in {r[1] for r in rows_at(node)}
    acked = {ks: base + writer.acked[ks] for ks in ("rf3", "rf2")}
    check_readable(rest, acked)


def test_two_decommissions_started_at_once_let_one_through(
    ringd_factory: Callable[..., Ringd],
) -> None:
    nodes, _ = start_cluster(ringd_factory, 5)
    create_keyspaces(nodes)
    base = [f"k{i}" for i in range(200)]
    load(nodes[0], "rf3", base)
    jobs = [Background(lambda n=n: decommission(n)) for n in (nodes[1], nodes[2])]
    outcomes = []
    for job in jobs:
        try:
            outcomes.append(job.result(300)["state"])
        except ProtocolError as exc:
            assert "one membership change at a time" in str(exc)
            outcomes.append("refused")
    assert sorted(outcomes) == ["LEFT", "refused"], outcomes
    gone = nodes[1] if outcomes[0] == "LEFT" else nodes[2]
    stays = nodes[2] if gone is nodes[1] else nodes[1]
    wait_for(lambda: gone.address not in states(nodes[0]), 30, "the one that left gone")
    wait_for(lambda: states(nodes[0]).get(stays.address) == "UN", 30, "the other NORMAL again")
    rest = [n for n in nodes if n is not gone]
    check_readable(rest, {"rf3": base})
