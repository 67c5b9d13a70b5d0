"""Repair sessions across three in-process replicas (real storage engines; the wire between them
is a dispatcher that round-trips every request and answer through CBOR): planning with -pr,
-st/-et and --hosts, previews, streaming only the differing rows, failures, refusals, history."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2
import pytest
import trio
import trio.lowlevel
import trio.testing

from ringd.db.cells import Cell, Row
from ringd.db.engine import EngineOptions, StorageEngine
from ringd.dht.murmur3 import token_for
from ringd.dht.ring import NodeInfo, Ring
from ringd.dht.tokens import Range, random_tokens
from ringd.locator.strategies import strategy_from_config
from ringd.protocol.errors import InvalidRequest, ProtocolError
from ringd.repair.antientropy import AntiEntropy, AntiEntropySettings
from ringd.repair.history import RepairHistory
from ringd.repair.participant import ReplicaRepair
from ringd.repair.service import RepairOptions, RepairService
from ringd.schema import Keyspace

HOSTS = ["h1", "h2", "h3"]
KS = Keyspace("ks", {"class": "SimpleStrategy", "replication_factor": 3})


@dataclass
class Cluster:
    ring: Ring
    local_host_id: str
    down: set[str] = field(default_factory=set)

    def strategy(self, keyspace: Keyspace) -> Any:
        return strategy_from_config(keyspace.replication)

    def is_alive(self, host_id: str) -> bool:
        return host_id not in self.down

    def address(self, host_id: str) -> str:
        return self.ring.node(host_id).address

    def dc(self, host_id: str) -> str:
        return self.ring.node(host_id).dc


class Keyspaces:
    def get(self, name: str) -> Keyspace | None:
        return KS if name == "ks" else None

    def live(self) -> list[Keyspace]:
        return [KS]


class Net:
    """Delivers repair verbs to the replica at an address, through CBOR, or fails like a dead
    node."""

    def __init__(self) -> None:
        self.replicas: dict[str, ReplicaRepair] = {}
        self.dead: set[str] = set()

    async def call(self, address: str, verb: str, args: dict[str, Any], timeout: float) -> Any:
        if address in self.dead:
            raise ProtocolError(f"cannot connect to {address}: connection refused")
        replica = self.replicas[address]
        args = cbor2.loads(cbor2.dumps(args))
        inline = {"repair_rows": replica.rows, "repair_release": replica.release_verb}.get(verb)
        tasks = {
            "repair_validate": replica.validate,
            "repair_leaves": replica.leaves,
            "repair_apply": replica.apply,
        }
        result = inline(args) if inline else await tasks[verb](args)
        await trio.lowlevel.checkpoint()
        return cbor2.loads(cbor2.dumps(result))


def row(value: bytes, ts: int = 10) -> Row:
    return Row({"v": Cell(ts, value, None)})


@pytest.fixture
async def three(tmp_path: Path) -> Any:
    rng = random.Random(3)
    ring = Ring(
        [
            NodeInfo(h, f"127.0.0.{i + 1}:7000", tokens=tuple(random_tokens(4, rng)))
            for i, h in enumerate(HOSTS)
        ]
    )
    net = Net()
    engines = {}
    services = {}
    async with trio.open_nursery() as nursery:
        for i, h in enumerate(HOSTS):
            engine = StorageEngine.open(tmp_path / h, EngineOptions(clock=lambda: 1e6))
            await nursery.start(engine.run)
            engines[h] = engine
            history = RepairHistory(tmp_path / f"{h}-history.cbor")
            replica = ReplicaRepair(engine, lambda ks: ks == "ks", history)
            address = f"127.0.0.{i + 1}:7000"
            net.replicas[address] = replica
            service = RepairService(
                replica,
                Cluster(ring, h),
                Keyspaces(),
                net.call,
                local_address=address,
            )
            await nursery.start(service.run)
            services[h] = service
        yield engines, services, net
        nursery.cancel_scope.cancel()
    for engine in engines.values():
        await engine.close()


async def finished(service: RepairService, session_id: str) -> dict[str, Any]:
    with trio.fail_after(30):
        while service.sessions[session_id].state == "RUNNING":  # noqa: ASYNC110
            await trio.sleep(0.01)
    return service.sessions[session_id].to_wire()


async def write_all(engines: dict[str, StorageEngine], n: int, skip: str | None = None) -> None:
    for i in range(n):
        for h, e in engines.items():
            if h != skip:
                await e.apply("ks", b"k%d" % i, row(b"v%d" % i))


async def test_the_repair_dtest(three: Any) -> None:
    engines, services, _ = three
    await write_all(engines, 1000)
    await engines["h1"].apply("ks", b"missed", row(b"x"))
    await engines["h2"].apply("ks", b"missed", row(b"x"))
    await write_all(engines, 1000)

    preview = await finished(
        services["h1"], services["h1"].start(RepairOptions(["ks"], preview=True)).id
    )
    pairs = preview["keyspaces"]["ks"]["out_of_sync"]
    assert set(pairs) == {"127.0.0.1:7000 <-> 127.0.0.3:7000", "127.0.0.2:7000 <-> 127.0.0.3:7000"}
    assert all(n == 1 for n in pairs.values())  # one range each
    assert preview["rows_streamed"] == 1
    assert engines["h3"].read("ks", b"missed") is None

    done = await finished(services["h1"], services["h1"].start(RepairOptions(["ks"])).id)
    assert done["state"] == "COMPLETED" and done["rows_streamed"] == 1
    assert engines["h3"].read("ks", b"missed") is not None
    again = await finished(services["h1"], services["h1"].start(RepairOptions(["ks"])).id)
    assert again["rows_streamed"] == 0 and again["keyspaces"]["ks"]["out_of_sync"] == {}


async def test_primary_range_on_every_node_validates_each_range_once(three: Any) -> None:
    engines, services, net = three
    await write_all(engines, 100)
    for h in HOSTS:
        await finished(services[h], services[h].start(RepairOptions(["ks"], primary_range=True)).id)
    ranges = len(services["h1"].cluster.ring.ranges())
    # each range once, on each of its three replicas
    assert sum(r.validations for r in net.replicas.values()) == 3 * ranges


async def test_a_token_range_touches_only_its_replicas(three: Any) -> None:
    engines, services, net = three
    ring = services["h1"].cluster.ring
    rng, _ = ring.ranges()[2]
    st, et = rng.start, rng.start + max(1, rng.width // 2)
    services["h1"].start(RepairOptions(["ks"], start_token=st, end_token=et))
    session = next(iter(services["h1"].sessions.values()))
    await finished(services["h1"], session.id)
    assert session.ranges_total == 1
    assert sum(r.validations for r in net.replicas.values()) == 3


async def test_hosts_and_refusals(three: Any) -> None:
    _, services, _ = three
    with pytest.raises(InvalidRequest, match="-pr cannot"):
        services["h1"].plan(RepairOptions(["ks"], primary_range=True, dc="dc1"))
    with pytest.raises(InvalidRequest, match="include the node"):
        services["h1"].plan(RepairOptions(["ks"], hosts=["127.0.0.2:7000", "127.0.0.3:7000"]))
    jobs = services["h1"].plan(RepairOptions(["ks"], hosts=["127.0.0.1:7000", "127.0.0.2:7000"]))
    assert jobs and all(job.hosts == ["h1", "h2"] for job in jobs)
    with pytest.raises(InvalidRequest, match="does not exist"):
        services["h1"].plan(RepairOptions(["nope"]))
    services["h1"].cluster.down.add("h3")
    with pytest.raises(ProtocolError, match="127.0.0.3:7000 is down"):
        services["h1"].start(RepairOptions(["ks"]))


async def test_a_dead_participant_fails_the_session_and_the_next_one_works(three: Any) -> None:
    engines, services, net = three
    await write_all(engines, 50, skip="h3")
    net.dead.add("127.0.0.3:7000")  # killed after the session was planned
    failed = await finished(services["h1"], services["h1"].start(RepairOptions(["ks"])).id)
    assert failed["state"] == "FAILED" and "127.0.0.3:7000" in failed["error"]
    net.dead.clear()
    ok = await finished(services["h1"], services["h1"].start(RepairOptions(["ks"])).id)
    assert ok["state"] == "COMPLETED" and ok["rows_streamed"] == 50


async def test_two_repairs_of_the_same_range_are_refused(three: Any) -> None:
    engines, services, net = three
    await write_all(engines, 10)
    first = services["h1"].start(RepairOptions(["ks"]))
    with pytest.raises(InvalidRequest, match="being repaired"):
        services["h1"].start(RepairOptions(["ks"]))  # by the same coordinator
    await finished(services["h1"], first.id)
    # by another coordinator: each participant refuses a range another session holds
    replica = net.replicas["127.0.0.3:7000"]
    args = {"ks": "ks", "range": [0, 1000], "depth": 0}
    await replica.validate({"session": "a", **args})
    with pytest.raises(InvalidRequest, match="being repaired by session a"):
        await replica.validate({"session": "b", **args})
    await replica.validate({"session": "b", "ks": "ks", "range": [1000, 2000], "depth": 0})
    replica.release_verb({"session": "a"})
    await replica.validate({"session": "b", **args})
    # a request of a released session that arrives after its release (queued behind it) takes
    # no lease: it would hold the range from the next session for minutes
    replica.release_verb({"session": "b"})
    with pytest.raises(InvalidRequest, match="session b has ended"):
        await replica.validate({"session": "b", **args})
    await replica.validate({"session": "c", **args})


async def test_status_reports_the_oldest_repair(three: Any) -> None:
    engines, services, _ = three
    status = services["h1"].status()["keyspaces"][0]
    assert status["never_repaired"] == status["ranges"] and status["stale"]
    await finished(services["h1"], services["h1"].start(RepairOptions(["ks"])).id)
    status = services["h1"].status()["keyspaces"][0]
    assert status["never_repaired"] == 0 and not status["stale"]
    assert status["oldest_repair"] is not None


async def test_history_is_written_off_the_event_loop_and_once_more_at_the_end(
    tmp_path: Path,
) -> None:
    """Recording a repaired range only marks the history changed; ``keep_history_saved``
    writes it (in a worker thread), and the changes still unsaved when it is cancelled at
    shutdown are written on the way out."""
    history = RepairHistory(tmp_path / "h.cbor")
    replica = ReplicaRepair(None, lambda ks: True, history, wall=lambda: 5.0)  # type: ignore[arg-type]
    replica.record([("ks", Range(0, 100))], ["a"])
    assert not history.path.exists()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(replica.keep_history_saved)
        with trio.fail_after(10):
            while not history.path.exists():  # noqa: ASYNC110
                await trio.sleep(0.01)
        assert RepairHistory(history.path).records == {"ks": [(0, 100, 5.0, ["a"])]}
        replica.record([("ks", Range(100, 200))], ["a"])
        nursery.cancel_scope.cancel()  # shutting down with a change not written yet
    assert len(RepairHistory(history.path).records["ks"]) == 2


def test_history_covers_ranges_from_pieces(tmp_path: Path) -> None:
    history = RepairHistory(tmp_path / "h.cbor")
    whole = Range(0, 1000)
    history.record("ks", Range(0, 400), 10.0, [])
    assert history.last_repaired("ks", whole) is None
    history.record("ks", Range(400, 1000), 20.0, [])
    assert history.last_repaired("ks", whole) == 10.0
    history.record("ks", Range(-5, 2000), 30.0, [])
    assert history.last_repaired("ks", whole) == 30.0
    history.save()
    assert RepairHistory(tmp_path / "h.cbor").last_repaired("ks", whole) == 30.0
    wrapping = Range(1 << 62, -(1 << 62))
    history.record("ks", Range(1 << 62, (1 << 63) - 1), 40.0, [])
    assert history.last_repaired("ks", wrapping) is None
    history.record("ks", Range((1 << 63) - 1, -(1 << 62)), 50.0, [])  # [MIN, -2**62]
    assert history.last_repaired("ks", wrapping) == 40.0
    assert token_for(b"x") is not None


async def test_background_anti_entropy_converges_within_the_interval(
    three: Any, autojump_clock: trio.testing.MockClock
) -> None:
    engines, services, _ = three
    await write_all(engines, 200, skip="h3")  # writes h3 never got, and nobody reads
    settings = AntiEntropySettings(interval_s=600.0, mb_per_s=1.0, first_delay_s=1.0)
    async with trio.open_nursery() as nursery:
        for h in HOSTS:
            await nursery.start(AntiEntropy(services[h], settings).run)
        start = trio.current_time()
        with trio.fail_after(700):
            while any(not s.status()["keyspaces"][0]["oldest_repair"] for s in services.values()):  # noqa: ASYNC110
                await trio.sleep(5)
        assert trio.current_time() - start <= settings.interval_s + settings.first_delay_s + 60
        nursery.cancel_scope.cancel()
    assert all(engines["h3"].read("ks", b"k%d" % i) is not None for i in range(200))
