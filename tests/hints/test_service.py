"""The hints service in one trio run on a mock clock: which hints are kept, and delivery when the
target is alive (paged, resumable, throttled, pausable, dropping expired hints)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
import trio.testing

from ringd.db.cells import Cell, Row
from ringd.hints.service import HintSettings, HintsService
from ringd.hints.store import HintStore
from ringd.net.channel import CallTimeout

A = "aaaaaaaa-0000-4000-8000-000000000001"
B = "bbbbbbbb-0000-4000-8000-000000000002"
C = "cccccccc-0000-4000-8000-000000000003"


@dataclass
class Cluster:
    """The membership and schema a coordinator sees, and what each replica received."""

    alive: set[str] = field(default_factory=lambda: {A, B, C})
    ring: set[str] = field(default_factory=lambda: {A, B, C})
    down_for: dict[str, float] = field(default_factory=dict)
    dcs: dict[str, str] = field(default_factory=lambda: {A: "dc1", B: "dc1", C: "dc2"})
    gc_grace: dict[str, int] = field(default_factory=lambda: {"demo": 864000})
    received: dict[str, list[tuple[bytes, dict[str, Any]]]] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)
    slow: set[str] = field(default_factory=set)

    def is_alive(self, host_id: str) -> bool:
        return host_id in self.alive

    def in_ring(self, host_id: str) -> bool:
        return host_id in self.ring

    def address_of(self, host_id: str) -> str | None:
        return f"addr-{host_id}"

    def dc_of(self, host_id: str) -> str | None:
        return self.dcs.get(host_id)

    def down_seconds(self, host_id: str) -> float | None:
        return self.down_for.get(host_id)

    def replicas_for(self, keyspace: str, key: bytes) -> list[str]:
        return sorted(self.ring)

    def node_count(self) -> int:
        return 2  # one other node: the whole throttle goes to it

    def gc_grace_of(self, keyspace: str) -> int | None:
        return self.gc_grace.get(keyspace)

    async def send(self, address: str, verb: str, args: dict[str, Any], timeout: float) -> Any:
        host = address.removeprefix("addr-")
        if host in self.failing:
            raise CallTimeout(f"no response from {address}")
        await trio.sleep(0.001)
        self.received.setdefault(host, []).append((args["key"], args["row"]))
        return {}


def row(i: int) -> Row:
    return Row({"v": Cell(1000 + i, b"x" * 100, None)})


def make(tmp_path: Path, cluster: Cluster, **settings: Any) -> HintsService:
    return HintsService(
        HintStore(tmp_path),
        membership=cluster,
        schema=cluster,
        send=cluster.send,
        settings=HintSettings(**settings),
        wall=trio.current_time,
    )


async def delivered(service: HintsService) -> None:
    """Poll until no host has hints left (the mock clock makes the deadline cheap)."""
    with trio.fail_after(600):
        while service.pending_hosts():  # noqa: ASYNC110 - polling another task's progress
            await trio.sleep(0.1)


def hint_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.hints"))


def keys(cluster: Cluster, host: str) -> list[bytes]:
    return [k for k, _ in cluster.received.get(host, [])]


async def test_hints_are_delivered_when_the_target_comes_back(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    cluster = Cluster(alive={A, B})
    service = make(tmp_path, cluster, throttle_kb=0)
    for i in range(30):
        assert service.submit(C, "demo", f"k{i}".encode(), row(i))
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        await trio.sleep(5)
        assert keys(cluster, C) == []  # not while it is down
        cluster.alive.add(C)
        service.wake()
        await delivered(service)
        nursery.cancel_scope.cancel()
    assert keys(cluster, C) == [f"k{i}".encode() for i in range(30)]
    assert service.counters[C]["delivered"] == 30
    assert not hint_files(tmp_path)


async def test_window_counts_from_the_oldest_hint_across_a_gossip_flap(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    cluster = Cluster(alive={A, B})
    service = make(tmp_path, cluster, max_hint_window_ms=10_000)
    await trio.sleep(100)
    cluster.down_for[C] = 1.0
    assert service.submit(C, "demo", b"k1", row(1))
    await trio.sleep(20)
    cluster.down_for[C] = 2.0  # gossip flapped: its downtime restarted
    assert not service.submit(C, "demo", b"k2", row(2))  # the oldest hint is 20 s old
    assert service.counters[C]["not_stored_window"] == 1
    # a restarted coordinator (new service, same store) remembers it through the hint files
    service.store.close()
    again = make(tmp_path, cluster, max_hint_window_ms=10_000)
    assert not again.submit(C, "demo", b"k3", row(3))


async def test_size_cap_and_disabled_datacenters(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    cluster = Cluster(alive={A})
    service = make(tmp_path, cluster, max_hints_size_per_host=1000)
    stored = sum(service.submit(B, "demo", f"k{i}".encode(), row(i)) for i in range(50))
    assert 0 < stored < 50
    assert service.counters[B]["not_stored_size"] == 50 - stored
    service.settings.disabled_dcs.add("dc2")
    assert not service.submit(C, "demo", b"k", row(1))
    service.settings.enabled = False
    assert not service.submit(B, "demo", b"k", row(1))
    assert service.counters[C]["not_stored_disabled"] == 1


async def test_expired_hints_and_dropped_keyspaces_are_not_replayed(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    cluster = Cluster(alive={A, B})
    cluster.gc_grace["short"] = 10
    service = make(tmp_path, cluster, throttle_kb=0)
    service.submit(C, "short", b"old", row(1))
    service.submit(C, "gone", b"dropped", row(2))
    await trio.sleep(60)  # past the short keyspace's gc_grace
    service.submit(C, "demo", b"fresh", row(3))
    cluster.gc_grace.pop("gone", None)
    cluster.alive.add(C)
    assert await service.dispatch(C)
    assert keys(cluster, C) == [b"fresh"]
    assert service.counters[C]["expired"] == 1
    assert service.counters[C]["dropped_keyspace"] == 1


async def test_failed_delivery_resumes_where_it_stopped(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    cluster = Cluster()
    service = make(tmp_path, cluster, throttle_kb=0, page_bytes=500)
    for i in range(20):
        service.submit(C, "demo", f"k{i}".encode(), row(i))
    calls = 0
    real_send = cluster.send

    async def flaky(address: str, verb: str, args: dict[str, Any], timeout: float) -> Any:
        nonlocal calls
        calls += 1
        if calls == 9:
            raise CallTimeout("lost")
        return await real_send(address, verb, args, timeout)

    service.send = flaky
    assert not await service.dispatch(C)
    assert service.counters[C]["timed_out"] == 1
    # a restart in between: delivery continues from the last recorded page
    service.store.close()
    again = make(tmp_path, cluster, throttle_kb=0, page_bytes=500)
    assert await again.dispatch(C)
    got = keys(cluster, C)
    assert set(got) == {f"k{i}".encode() for i in range(20)}
    assert len(got) < 28  # only the unrecorded page was sent twice


async def test_throttle_holds_the_delivery_rate(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    cluster = Cluster()
    service = make(tmp_path, cluster, throttle_kb=4, page_bytes=1024)
    for i in range(100):
        service.submit(C, "demo", f"k{i}".encode(), row(i))
    total = service.store.hosts[C].pending_bytes
    start = trio.current_time()
    assert await service.dispatch(C)
    elapsed = trio.current_time() - start
    assert service.counters[C]["delivered_bytes"] == total
    # N KB at T KB/s takes at least N/T seconds (less the last page, which is not waited out)
    assert elapsed >= (total - 1024) / (4 * 1024)


async def test_pause_stops_delivery_and_resume_continues(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    cluster = Cluster(alive={A, B})
    service = make(tmp_path, cluster, throttle_kb=0, paused=True)
    service.submit(C, "demo", b"k", row(1))
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        cluster.alive.add(C)
        service.wake()
        await trio.sleep(10)
        assert keys(cluster, C) == []
        service.settings.paused = False
        service.wake()
        await delivered(service)
        nursery.cancel_scope.cancel()
    assert keys(cluster, C) == [b"k"]


async def test_hints_for_a_host_that_left_go_to_the_current_replicas(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    cluster = Cluster()
    service = make(tmp_path, cluster, throttle_kb=0)
    service.submit(C, "demo", b"k", row(1))
    cluster.ring = {A, B}
    assert await service.dispatch(C)
    assert keys(cluster, A) == [b"k"] and keys(cluster, B) == [b"k"]
    assert keys(cluster, C) == []


def flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


async def test_corrupted_file_is_listed_and_others_delivered(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    cluster = Cluster()
    service = make(tmp_path, cluster, throttle_kb=0)
    service.submit(C, "demo", b"k1", row(1))
    service.store.seal(C)
    service.submit(C, "demo", b"k2", row(2))
    service.store.close()
    first = hint_files(tmp_path)[0]
    flip_middle_byte(first)
    again = make(tmp_path, cluster, throttle_kb=0)
    assert not await again.dispatch(C)  # not everything could be delivered
    assert keys(cluster, C) == [b"k2"]
    (entry,) = again.pending()
    assert entry["corrupted"] == [first.name]


async def test_decommission_hands_every_hint_to_another_node(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    cluster = Cluster(alive={A, B})
    sent: list[tuple[str, str, dict[str, Any]]] = []

    async def send(address: str, verb: str, args: dict[str, Any], timeout: float) -> Any:
        sent.append((address, verb, args))
        return {}

    service = make(tmp_path, cluster, throttle_kb=0)
    service.send = send
    for i in range(40):
        assert service.submit(C, "demo", f"k{i}".encode(), row(i))
    assert service.submit(A, "demo", b"a0", row(0))
    handed = await service.hand_over("addr-" + B)
    assert handed == 41
    assert {(a, v) for a, v, _ in sent} == {("addr-" + B, "mutate_hinted")}
    for_c = [args["key"] for _, _, args in sent if args["for_host"] == C]
    assert for_c == [f"k{i}".encode() for i in range(40)]
    assert not service.pending_hosts() and not hint_files(tmp_path)
