"""Request tracing: how a trace collects events (bounded), checks what a peer returns before
using it, rides on the peer messages, and renders for people in 80 columns."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from ringctl import tracing as render
from ringd.db.cells import Cell, Row, RowTombstone
from ringd.protocol.errors import InvalidRequest, Timeout
from ringd.service import tracing
from ringd.service.messages import MutateRequest, ReadLocalRequest
from ringd.service.tracing import MAX_PEER_EVENTS, Trace, peer_events


def test_events_are_timed_from_the_start_in_order_with_their_fields() -> None:
    trace = Trace("127.0.0.1:7001")
    trace.add("plan", "plan: replicas a, b", block_for=2)
    trace.add("done", "answering")
    first, second = trace.to_wire()
    assert first == {
        "node": "127.0.0.1:7001",
        "elapsed_us": first["elapsed_us"],
        "kind": "plan",
        "event": "plan: replicas a, b",
        "block_for": 2,
    }
    assert 0 <= first["elapsed_us"] <= second["elapsed_us"]


def test_a_trace_keeps_at_most_its_limit_and_says_how_many_it_left_out() -> None:
    trace = Trace("n", limit=3)
    for i in range(10):
        trace.add("send", f"event {i}")
    events = trace.to_wire()
    assert [e["event"] for e in events[:3]] == ["event 0", "event 1", "event 2"]
    assert events[3]["kind"] == "truncated" and "7 more events" in events[3]["event"]
    assert len(events) == 4


def test_event_text_is_cut_to_its_bound() -> None:
    trace = Trace("n")
    trace.add("failed", "x" * 10_000)
    assert len(trace.to_wire()[0]["event"]) == tracing.MAX_TEXT


def test_a_replicas_events_are_filed_under_its_address_with_its_own_times() -> None:
    replica = tracing.replica_trace("")
    replica.add("received", "mutation received: 1 cell")
    replica.add("apply", "applied")
    wire = replica.peer_wire()
    assert [w[1:] for w in wire] == [
        ["received", "mutation received: 1 cell"],
        ["apply", "applied"],
    ]
    coordinator = Trace("a:1")
    coordinator.add_peer("b:2", wire)
    coordinator.add_peer("c:3", None)  # an untraced answer: nothing
    assert [(e["node"], e["kind"], e["elapsed_us"]) for e in coordinator.to_wire()] == [
        ("b:2", "received", wire[0][0]),
        ("b:2", "apply", wire[1][0]),
    ]


def test_a_replica_keeps_few_events() -> None:
    replica = tracing.replica_trace("")
    for _ in range(MAX_PEER_EVENTS + 5):
        replica.add("read", "r")
    assert len(replica.peer_wire()) == MAX_PEER_EVENTS
    peer_events(replica.peer_wire())  # what a replica returns is always acceptable


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ({"a": 1}, "must be a list"),
        ([[1, "read", "x"]] * (MAX_PEER_EVENTS + 1), "at most 16"),
        ([[1, "read"]], "must be [elapsed_us, kind, text]"),
        (["event"], "must be [elapsed_us, kind, text]"),
        ([[-1, "read", "x"]], "elapsed_us"),
        ([[1 << 40, "read", "x"]], "elapsed_us"),
        ([[True, "read", "x"]], "elapsed_us"),
        ([[1.5, "read", "x"]], "elapsed_us"),
        ([[1, "READ", "x"]], "kind"),
        ([[1, "", "x"]], "kind"),
        ([[1, "a" * 33, "x"]], "kind"),
        ([[1, 7, "x"]], "kind"),
        ([[1, "read", b"x"]], "text"),
        ([[1, "read", "x" * 301]], "text"),
        ([[1, "read", ["nested"]]], "text"),
    ],
)
def test_malformed_peer_events_are_refused(raw: Any, why: str) -> None:
    with pytest.raises(ValueError, match=why.replace("[", r"\[").replace("]", r"\]")):
        peer_events(raw)


@pytest.mark.parametrize("raw", [{"a": 1}, [[1 << 62, "x", "y"]], [[1, "read", "x"]] * 1000, 7])
def test_a_peers_bad_trace_is_left_out_and_said_so_never_raised(raw: Any) -> None:
    coordinator = Trace("a:1")
    coordinator.add_peer("b:2", raw)
    [event] = coordinator.to_wire()
    assert event["kind"] == "malformed_trace" and event["node"] == "a:1"
    assert event["replica"] == "b:2" and "left out the trace b:2 returned" in event["event"]


def test_attach_wraps_a_result_and_gives_an_error_the_events() -> None:
    assert tracing.attach(None, {"acks": 2}) == {"acks": 2}
    assert tracing.attach(None, None) is None
    trace = Trace("a:1")
    trace.add("done", "answering")
    assert tracing.attach(trace, None) == {"result": None, "trace": trace.to_wire()}
    error = Timeout("write timed out", received=1, required=2)
    assert tracing.attach(trace, error) is error
    assert error.to_wire()["trace"] == trace.to_wire() and error.to_wire()["received"] == 1


def test_rows_are_described_by_their_cells_and_tombstone() -> None:
    assert tracing.describe_row(None) == "no row"
    assert tracing.describe_row(Row({})) == "0 cells"
    assert tracing.describe_row(Row({"v": Cell(1, b"\x01", None)})) == "1 cell"
    assert tracing.describe_row(Row({}, RowTombstone(1, 2))) == "a row tombstone"
    two = Row({"a": Cell(1, b"\x01", None), "b": Cell(1, None, 5)}, RowTombstone(1, 2))
    assert tracing.describe_row(two) == "2 cells and a row tombstone"


def test_the_trace_flag_travels_on_peer_requests_only_when_set() -> None:
    row = Row({"v": Cell(5, b"\x01", None)})
    plain = MutateRequest("demo", b"k", row, 7)
    assert "trace" not in plain.to_wire()  # untraced requests are byte for byte as before
    traced = MutateRequest("demo", b"k", row, 7, True)
    assert traced.to_wire()["trace"] is True
    assert MutateRequest.from_wire(traced.to_wire()) == traced
    assert MutateRequest.from_wire(plain.to_wire()).trace is False
    read = ReadLocalRequest("demo", b"k", True, True)
    assert ReadLocalRequest.from_wire(read.to_wire()) == read
    assert "trace" not in ReadLocalRequest("demo", b"k").to_wire()


@pytest.mark.parametrize("bad", ["yes", 1, None, [True]])
def test_a_trace_flag_that_is_not_a_boolean_is_malformed(bad: Any) -> None:
    row = Row({"v": Cell(5, b"\x01", None)}).to_wire()
    with pytest.raises(InvalidRequest, match="malformed mutation: trace must be true or false"):
        MutateRequest.from_wire({"ks": "demo", "key": b"k", "row": row, "trace": bad})
    with pytest.raises(InvalidRequest, match="malformed read: trace must be true or false"):
        ReadLocalRequest.from_wire({"ks": "demo", "key": b"k", "trace": bad})


def test_the_table_fits_80_columns() -> None:
    events = [
        {
            "node": "127.0.0.1:40001",
            "elapsed_us": 12,
            "kind": "plan",
            "event": "plan: " + "x" * 200,
        },
        {
            "node": "[2001:db8::1234:5678]:40001",
            "elapsed_us": 1_234_567,
            "kind": "apply",
            "event": "applied to commit log and memtable (periodic sync)",
        },
    ]
    out = io.StringIO()
    Console(file=out, width=80).print(render.table(events, "Tracing get demo/k"))
    lines = out.getvalue().splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    text = out.getvalue()
    assert "1,234,567" in text and "127.0.0.1:40001" in text and "applied to commit" in text


async def test_a_coordinator_keeps_going_when_replicas_return_bad_traces() -> None:
    """A write whose replicas answer with malformed traces is acknowledged as usual; their
    events are left out, each with a malformed_trace event."""
    from types import SimpleNamespace

    from ringd.locator.consistency import ConsistencyLevel, ReplicaPlan, RequestKind
    from ringd.metrics import CoordinatorMetrics
    from ringd.service.coordination import Consistency
    from ringd.service.writes import _Write

    topology = SimpleNamespace(address=lambda h: f"127.0.0.1:{h}", local_host_id="9")
    writes = SimpleNamespace(
        topology=topology,
        clock=SimpleNamespace(observe=lambda hlc: None),
        metrics=CoordinatorMetrics(),
        hints=None,
        timeout=2.0,
    )
    plan = ReplicaPlan(
        RequestKind.WRITE,
        ConsistencyLevel.ALL,
        3,
        ("1", "2", "3"),
        ("1", "2", "3"),
        {"1": "dc1", "2": "dc1", "3": "dc1"},
    )
    answers: list[Any] = []
    trace = Trace("127.0.0.1:9")
    write = _Write(writes, plan, Consistency("ALL"), 0.0, answers.append, trace=trace)  # type: ignore[arg-type]
    write.traced_remote_done("1", {"hlc": 5, "trace": [[1, "apply", "x"]] * 10_000}, None)
    write.traced_remote_done("2", {"hlc": 5, "trace": {"nested": [[[[]]]]}}, None)
    write.traced_remote_done("3", {"hlc": 5, "trace": [[1, "apply", "applied"]]}, None)
    assert answers == [3]
    events = trace.to_wire()
    bad = [e["replica"] for e in events if e["kind"] == "malformed_trace"]
    assert bad == ["127.0.0.1:1", "127.0.0.1:2"]
    assert [e["node"] for e in events if e["kind"] == "apply"] == ["127.0.0.1:3"]
    assert events[-1]["kind"] == "done" and len(events) < 20
