"""The hint store: appends survive reopening, replay resumes from the recorded position,
delivered files are deleted, torn tails are ignored and damage is reported, not fatal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringd.db.cells import Cell, Row, RowTombstone
from ringd.hints.store import Hint, HintStore, encode_hint

HOST_A = "6f1c2a9e-0000-4000-8000-00000000000a"
HOST_B = "6f1c2a9e-0000-4000-8000-00000000000b"


def hint(i: int, ks: str = "demo") -> Hint:
    row = Row({"v": Cell(1_000 + i, f"value-{i}".encode(), None)})
    return Hint(ks, f"k{i}".encode(), row, 1_700_000_000_000_000 + i)


def replay_all(store: HintStore, host: str, page: int = 1 << 20) -> list[Hint]:
    """Deliver everything replayable for ``host`` in pages, as a dispatcher would."""
    store.seal(host)
    out = []
    for hint_file in store.replayable(host):
        while hint_file.pending > 0 and hint_file.corrupted is None:
            batch = list(store.read(hint_file, page))
            if not batch:
                break
            out.extend(h for _, h in batch)
            store.delivered(hint_file, batch[-1][0])
    return out


def test_hints_survive_reopen_and_are_replayed_in_order(tmp_path: Path) -> None:
    store = HintStore(tmp_path)
    for i in range(50):
        store.add(HOST_A, hint(i))
    store.add(HOST_B, hint(99))
    store.close()

    again = HintStore(tmp_path)
    assert {d["host_id"] for d in again.describe()} == {HOST_A, HOST_B}
    assert replay_all(again, HOST_A) == [hint(i) for i in range(50)]
    assert HOST_A not in again.hosts  # delivered files are deleted
    assert not any(HOST_A in p.name for p in tmp_path.iterdir())
    assert replay_all(again, HOST_B) == [hint(99)]


def test_replay_resumes_from_recorded_position_after_restart(tmp_path: Path) -> None:
    store = HintStore(tmp_path)
    for i in range(20):
        store.add(HOST_A, hint(i))
    store.seal(HOST_A)
    (hint_file,) = store.replayable(HOST_A)
    record = len(encode_hint(hint(0)))
    batch = list(store.read(hint_file, record * 5))
    assert [h for _, h in batch] == [hint(i) for i in range(5)]
    store.delivered(hint_file, batch[-1][0])
    store.close()  # a restart after delivering one page

    again = HintStore(tmp_path)
    assert replay_all(again, HOST_A, page=record * 3) == [hint(i) for i in range(5, 20)]


def test_new_hints_after_a_seal_go_to_a_new_file(tmp_path: Path) -> None:
    store = HintStore(tmp_path)
    store.add(HOST_A, hint(1))
    store.seal(HOST_A)
    store.add(HOST_A, hint(2))
    assert [len(store.replayable(HOST_A))] == [1]
    assert replay_all(store, HOST_A) == [hint(1), hint(2)]


def test_files_roll_over_at_the_size_limit(tmp_path: Path) -> None:
    record = len(encode_hint(hint(0)))
    store = HintStore(tmp_path, max_file_bytes=record * 4)
    for i in range(10):
        store.add(HOST_A, hint(i))
    assert len(store.hosts[HOST_A].files) == 3
    assert store.hosts[HOST_A].pending_bytes == record * 10
    assert replay_all(store, HOST_A) == [hint(i) for i in range(10)]


def test_torn_tail_is_ignored(tmp_path: Path) -> None:
    store = HintStore(tmp_path)
    for i in range(3):
        store.add(HOST_A, hint(i))
    store.close()
    (path,) = [p for p in tmp_path.glob("*.hints")]
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 5)  # the last append was cut short by a crash
    again = HintStore(tmp_path)
    assert replay_all(again, HOST_A) == [hint(0), hint(1)]
    assert again.corrupted_files == 0


def test_a_flipped_byte_marks_the_file_corrupted_and_the_rest_are_delivered(
    tmp_path: Path,
) -> None:
    record = len(encode_hint(hint(0)))
    store = HintStore(tmp_path, max_file_bytes=record * 3)
    for i in range(9):  # three files of three hints
        store.add(HOST_A, hint(i))
    store.close()
    damaged = sorted(tmp_path.glob("*.hints"))[1]
    data = bytearray(damaged.read_bytes())
    data[record + 20] ^= 0xFF  # inside the second hint of the second file
    damaged.write_bytes(bytes(data))

    again = HintStore(tmp_path)
    delivered = replay_all(again, HOST_A)
    assert delivered == [hint(i) for i in (0, 1, 2, 3, 6, 7, 8)]
    assert again.corrupted_files == 1
    (desc,) = again.describe()
    assert desc["corrupted"] == [damaged.name]
    assert damaged.exists()  # kept for inspection until truncated
    assert again.truncate(HOST_A) == 1
    assert not damaged.exists()


def test_truncate_one_host_or_all(tmp_path: Path) -> None:
    store = HintStore(tmp_path)
    store.add(HOST_A, hint(1))
    store.add(HOST_B, hint(2))
    assert store.truncate(HOST_A) == 1
    assert set(store.hosts) == {HOST_B}
    assert store.truncate() == 1
    assert store.hosts == {}
    assert list(tmp_path.glob("*.hints")) == []


def test_a_damaged_positions_file_means_redelivery_not_loss(tmp_path: Path) -> None:
    store = HintStore(tmp_path)
    for i in range(4):
        store.add(HOST_A, hint(i))
    store.seal(HOST_A)
    (hint_file,) = store.replayable(HOST_A)
    first = next(iter(store.read(hint_file, 1)))
    store.delivered(hint_file, first[0])
    store.close()
    (tmp_path / "positions.cbor").write_bytes(b"\xff\x00garbage")
    assert replay_all(HintStore(tmp_path), HOST_A) == [hint(i) for i in range(4)]


def test_host_ids_cannot_name_paths(tmp_path: Path) -> None:
    store = HintStore(tmp_path)
    with pytest.raises(ValueError):
        store.add("../../etc", hint(1))


rows = st.builds(
    lambda cells, tomb: Row(cells, tomb),
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(
            st.builds(  # live, perhaps with a TTL
                Cell,
                st.integers(0, 1 << 62),
                st.binary(max_size=64),
                st.one_of(st.none(), st.integers(0, 1 << 40)),
            ),
            st.builds(Cell, st.integers(0, 1 << 62), st.none(), st.integers(0, 1 << 40)),
        ),
        max_size=4,
    ),
    st.one_of(st.none(), st.builds(RowTombstone, st.integers(0, 1 << 62), st.integers(0, 1 << 40))),
)
hints = st.builds(
    Hint,
    st.text(min_size=1, max_size=12),
    st.binary(min_size=1, max_size=40),
    rows,
    st.integers(0, 1 << 60),
)


@settings(max_examples=50, deadline=None)
@given(st.lists(hints, max_size=30), st.integers(1, 4096))
def test_round_trip_in_any_page_size(
    tmp_path_factory: pytest.TempPathFactory, written: list[Hint], page: int
) -> None:
    directory = tmp_path_factory.mktemp("hints")
    store = HintStore(directory, max_file_bytes=2048)
    for h in written:
        store.add(HOST_A, h)
    assert replay_all(store, HOST_A, page=page) == written
    assert not [p for p in os.listdir(directory) if p.endswith(".hints")]
