"""The typed peer messages: wire round trips, and INVALID with a clear message for bad input."""

from __future__ import annotations

from typing import Any

import pytest

from ringd.db.cells import Cell, Row, RowTombstone
from ringd.protocol.errors import ErrorCode, InvalidRequest
from ringd.schema import Keyspace
from ringd.service.messages import (
    MutateRequest,
    MutateResponse,
    ReadLocalRequest,
    ReadLocalResponse,
    ScanLocalRequest,
    ScanLocalResponse,
    SchemaPullResponse,
    SchemaPushRequest,
)
from ringd.service.requests import MAX_KEY_BYTES

ROW = Row({"v": Cell(5, b"\x01", None), "old": Cell(4, None, 100)}, RowTombstone(3, 90))


def test_mutate_round_trip_keeps_the_documented_wire_form() -> None:
    req = MutateRequest("demo", b"k", ROW, 7)
    wire = req.to_wire()
    assert wire == {"ks": "demo", "key": b"k", "row": ROW.to_wire(), "hlc": 7}
    assert list(wire) == ["ks", "key", "row", "hlc"]
    assert MutateRequest.from_wire(wire) == req
    # hlc is optional (0)
    assert MutateRequest.from_wire({"ks": "demo", "key": b"k", "row": {"c": {}}}).hlc == 0
    assert MutateResponse.from_wire({"hlc": 9}) == MutateResponse(9)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "malformed mutation: arguments must be a map"),
        ({"key": b"k", "row": {}}, "malformed mutation: ks must be text"),
        ({"ks": "d", "key": "k", "row": {}}, "malformed mutation: key must be bytes"),
        ({"ks": "d", "key": b"k" * (MAX_KEY_BYTES + 1), "row": {}}, "key must be bytes of at"),
        (
            {"ks": "d", "key": b"k", "row": {"c": {"v": [1, None, None]}}},
            "malformed mutation: a tombstone cell needs a deletion time",
        ),
        ({"ks": "d", "key": b"k", "row": {}, "hlc": -1}, "hlc must be a non-negative integer"),
        ({"ks": "d", "key": b"k", "row": {}, "hlc": 1 << 63}, "below 2**63"),
        ({"ks": "d", "key": b"k", "row": {}, "hlc": True}, "hlc must be"),
    ],
)
def test_bad_mutations_are_invalid(args: Any, message: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        MutateRequest.from_wire(args)
    assert exc.value.code == ErrorCode.INVALID and message in exc.value.message


def test_read_local_round_trips() -> None:
    req = ReadLocalRequest("demo", b"k", True)
    assert ReadLocalRequest.from_wire(req.to_wire()) == req
    assert ReadLocalRequest.from_wire({"ks": "demo", "key": b"k"}).digest is False
    data = ReadLocalResponse(ROW, None, 3)
    assert data.to_wire() == {"row": ROW.to_wire(), "hlc": 3}
    assert ReadLocalResponse.from_wire(data.to_wire(), False) == data
    assert ReadLocalResponse(None, None, 3).to_wire() == {"row": None, "hlc": 3}
    digest = ReadLocalResponse(None, b"\x00" * 16, 4)
    assert digest.to_wire() == {"digest": b"\x00" * 16, "hlc": 4}
    assert ReadLocalResponse.from_wire(digest.to_wire(), True) == digest


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"ks": "d", "key": b"k", "digest": 1}, "malformed read: digest must be true or false"),
        ({"ks": 3, "key": b"k"}, "malformed read: ks must be text"),
        ({"ks": "d"}, "malformed read: key must be bytes"),
    ],
)
def test_bad_reads_are_invalid(args: Any, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        ReadLocalRequest.from_wire(args)


def test_scan_local_round_trips_and_defaults_full_for_older_nodes() -> None:
    req = ScanLocalRequest("demo", (-(1 << 63), None), (1 << 63) - 1, 2)
    wire = req.to_wire()
    assert wire == {"ks": "demo", "after": [-(1 << 63), None], "end": (1 << 63) - 1, "limit": 2}
    assert ScanLocalRequest.from_wire(wire) == req
    page = ScanLocalResponse([(5, b"k", ROW)], True)
    assert ScanLocalResponse.from_wire(page.to_wire(), 10) == page
    assert ScanLocalResponse.from_wire({"rows": [[5, b"k", ROW.to_wire()]]}, 1).full is True
    assert ScanLocalResponse.from_wire({"rows": []}, 1).full is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"ks": "d", "after": [0], "end": 1, "limit": 1}, "after must be \\[token, key\\]"),
        (
            {"ks": "d", "after": [1 << 63, None], "end": 1, "limit": 1},
            "after token must be a 64-bit token",
        ),
        ({"ks": "d", "after": [0, "k"], "end": 1, "limit": 1}, "key must be bytes"),
        ({"ks": "d", "after": [0, None], "end": 1, "limit": 0}, "limit must be a positive"),
        ({"ks": "d", "after": [0, None], "end": "1", "limit": 1}, "end must be a 64-bit"),
    ],
)
def test_bad_scans_are_invalid(args: Any, message: str) -> None:
    with pytest.raises(InvalidRequest, match="malformed scan: " + message):
        ScanLocalRequest.from_wire(args)


def test_schema_messages() -> None:
    ks = Keyspace.from_wire(
        {"name": "demo", "replication": {"class": "SimpleStrategy", "replication_factor": 1}}
    )
    push = SchemaPushRequest((ks,))
    assert SchemaPushRequest.from_wire(push.to_wire()) == push
    assert SchemaPullResponse.from_wire({"keyspaces": [ks.to_wire()]}).keyspaces == (ks,)
    with pytest.raises(InvalidRequest, match="keyspaces must be a list"):
        SchemaPushRequest.from_wire({"keyspaces": {}})
