"""Sessions in-process: the real client session tracking (``ringctl.client._Api``) and the real
coordinator stamping (``sessions`` + ``HybridClock``) over coordinators with skewed clocks."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringctl.client import _Api
from ringd.protocol.errors import InvalidRequest
from ringd.service import sessions
from ringd.service.hlc import HybridClock

BOUND_MS = 25_000  # every skew within ±25 s: two clocks differ by less than the 60 s bound


class Wall:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Cluster:
    """Coordinators with skewed clocks over one last-write-wins store, stamping as put and
    get do in ``client_verbs`` (observe the session, then stamp)."""

    def __init__(self, skews_ms: list[int]) -> None:
        self.wall = Wall()
        self.clocks = [HybridClock(self.wall, offset_ms=s) for s in skews_ms]
        self.cells: dict[str, tuple[int, Any]] = {}

    def put(self, node: int, args: dict[str, Any]) -> dict[str, Any]:
        clock = self.clocks[node]
        sessions.observe(clock, sessions.session_us(args), stamps=True)
        ts = clock.now()
        old = self.cells.get(args["key"])
        if old is None or old[0] < ts:
            self.cells[args["key"]] = (ts, args["columns"]["v"])
        return {"timestamp": ts, "acks": 1}

    def get(self, node: int, args: dict[str, Any]) -> dict[str, Any] | None:
        sessions.observe(self.clocks[node], sessions.session_us(args), stamps=False)
        cell = self.cells.get(args["key"])
        if cell is None:
            return None
        return {"key": args["key"], "columns": {"v": cell[1]}, "writetime": {"v": cell[0]}}


class Session(_Api):
    """The client library's session logic, each request through the coordinator chosen."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.via = 0

    def _call(self, op: str, args: dict[str, Any], timeout: float | None = None) -> Any:
        return getattr(self.cluster, op)(self.via, args)


step = st.tuples(
    st.sampled_from(["put", "get", "other"]),
    st.integers(0, 4),  # coordinator
    st.floats(0, 2),  # real time passing, seconds
)


@given(
    st.lists(st.integers(-BOUND_MS, BOUND_MS), min_size=2, max_size=5),
    st.lists(step, min_size=1, max_size=60),
)
def test_the_last_acknowledged_write_of_a_session_wins(
    skews_ms: list[int], steps: list[tuple[str, int, float]]
) -> None:
    cluster = Cluster(skews_ms)
    session = Session(cluster)
    stamps: list[int] = []
    last = None
    for i, (op, node, elapsed) in enumerate(steps):
        cluster.wall.now += elapsed
        session.via = node % len(skews_ms)
        if op == "put":
            stamps.append(session.put("demo", "k", {"v": i})["timestamp"])
            last = i
        elif op == "get":
            row = session.get("demo", "k")
            assert (row is None) == (last is None)
            assert row is None or row["columns"]["v"] == last
        else:  # another client's unrelated write through that node moves its clock only
            cluster.clocks[session.via].now()
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    if last is not None:
        assert cluster.cells["k"][1] == last


def test_without_the_session_a_coordinator_behind_loses_the_overwrite() -> None:
    """The property above fails without ``session_us``: the guard against a vacuous test."""
    cluster = Cluster([0, -3000])
    first = cluster.put(0, {"key": "k", "columns": {"v": 1}})
    second = cluster.put(1, {"key": "k", "columns": {"v": 2}})
    assert second["timestamp"] < first["timestamp"] and cluster.cells["k"][1] == 1


def test_a_session_beyond_the_forward_bound_is_refused_for_stamping_only() -> None:
    cluster = Cluster([0])
    clock = cluster.clocks[0]
    far = int(cluster.wall.now * 1e6) + clock.max_forward_us + 1_000_000
    with pytest.raises(InvalidRequest, match=r"session timestamp is 61000 ms ahead"):
        sessions.observe(clock, far, stamps=True)
    sessions.observe(clock, far, stamps=False)
    assert clock.now() < far and clock.ignored == 1
