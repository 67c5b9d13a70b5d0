"""Framing: any split of the stream gives the same frames; oversize lengths fail before buffering."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringd.protocol import messages
from ringd.protocol.errors import ErrorCode, ProtocolError
from ringd.protocol.framing import FrameReader, frame


@given(st.lists(st.binary(max_size=300), max_size=10), st.lists(st.integers(1, 50), min_size=1))
def test_frames_survive_any_split(bodies: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(b) for b in bodies)
    reader = FrameReader(max_frame=1000)
    out: list[bytes] = []
    pos, i = 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        reader.feed(stream[pos : pos + step])
        pos += step
        i += 1
        while (body := reader.next_frame()) is not None:
            out.append(body)
    assert out == bodies
    assert reader.buffered() == 0


def test_length_over_limit_is_rejected_from_the_prefix_alone() -> None:
    reader = FrameReader(max_frame=100)
    reader.feed((101).to_bytes(4, "big"))
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        reader.next_frame()


def test_parse_request_requires_id_op_and_map_args() -> None:
    assert messages.parse_request({"id": 1, "op": "ping", "args": {}}) == (1, "ping", {})
    for bad in (
        {"op": "ping"},
        {"id": -1, "op": "ping"},
        {"id": 1},
        {"id": 1, "op": "x", "args": []},
    ):
        with pytest.raises(ProtocolError):
            messages.parse_request(bad)


def test_errors_round_trip_with_details() -> None:
    from ringd.protocol.errors import Unavailable

    exc = ProtocolError.from_wire(Unavailable("no", required=2, alive=1).to_wire())
    assert isinstance(exc, Unavailable)
    assert exc.code is ErrorCode.UNAVAILABLE
    assert exc.details == {"required": 2, "alive": 1}


def test_every_verb_has_a_positive_timeout_and_known_roles() -> None:
    for verb in messages.VERBS.values():
        assert verb.timeout > 0
        assert verb.roles <= {messages.CLIENT, messages.PEER}
