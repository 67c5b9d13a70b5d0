"""SSTables: round trip, seeks, bloom filter, and checksums on every part of the file."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from ringd.db.cells import Cell, Row, RowTombstone
from ringd.db.engine import StorageEngine
from ringd.db.errors import StorageCorruption
from ringd.db.sstable import FOOTER_SIZE, SSTableReader, key_hash, write_sstable
from ringd.dht.murmur3 import token_for

from .conftest import put

Opener = Callable[..., StorageEngine]


def sample_rows(n: int) -> list[tuple[int, bytes, Row]]:
    rows = []
    for i in range(n):
        key = b"key-%d" % i
        if i % 7 == 0:
            row = Row({"a": Cell(i, None, 100)}, RowTombstone(i, 50))
        else:
            row = Row({"a": Cell(i, b"value-%d" % i), "b": Cell(i + 1, b"", 999)})
        rows.append((token_for(key), key, row))
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows


@pytest.fixture
def table(tmp_path: Path) -> tuple[Path, list[tuple[int, bytes, Row]]]:
    rows = sample_rows(600)
    path = write_sstable(tmp_path, "ks", 1, iter(rows), (3, 1234), now=5.0)
    assert path is not None
    return path, rows


def sections(path: Path) -> dict[str, tuple[int, int]]:
    data = path.read_bytes()
    v = struct.unpack_from("<QQIQQIQQI", data, len(data) - FOOTER_SIZE)
    return {"index": (v[0], v[1]), "bloom": (v[3], v[4]), "metadata": (v[6], v[7])}


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_round_trip(table: tuple[Path, list[tuple[int, bytes, Row]]]) -> None:
    path, rows = table
    r = SSTableReader(path)
    assert r.rows == len(rows) and r.keyspace == "ks" and r.commitlog_position == (3, 1234)
    assert r.tombstone_cells == 2 * len([x for x in rows if x[2].tombstone is not None])
    for _tok, key, row in rows:
        assert r.get(key, key_hash(key)) == row
    assert r.get(b"absent", key_hash(b"absent")) is None
    assert list(r.iter_rows()) == rows
    assert len(r.block_offsets) > 5  # several blocks


def test_iter_rows_bounds(table: tuple[Path, list[tuple[int, bytes, Row]]]) -> None:
    path, rows = table
    r = SSTableReader(path)
    for i in (0, 1, 77, 300, len(rows) - 2, len(rows) - 1):
        after = (rows[i][0], rows[i][1])
        assert list(r.iter_rows(after)) == rows[i + 1 :]
        end = rows[i][0]
        assert list(r.iter_rows(None, end)) == [x for x in rows if x[0] <= end]
        assert list(r.iter_rows((rows[0][0], rows[0][1]), end)) == [
            x for x in rows[1:] if x[0] <= end
        ]
    assert list(r.iter_rows((rows[-1][0], rows[-1][1]))) == []
    assert list(r.iter_rows(None, rows[0][0] - 1)) == []


def test_bloom_filter_rejects_most_absent_keys(tmp_path: Path) -> None:
    rows = sample_rows(5000)
    path = write_sstable(tmp_path, "ks", 2, iter(rows), (0, 0))
    r = SSTableReader(path)  # type: ignore[arg-type]
    assert all(r.may_contain(key_hash(k)) for _t, k, _r in rows)
    false_positives = sum(r.may_contain(key_hash(b"missing-%d" % i)) for i in range(20000))
    assert false_positives < 20000 * 0.04


def test_empty_sstable(tmp_path: Path) -> None:
    path = write_sstable(tmp_path, "ks", 3, iter([]), (1, 2))
    r = SSTableReader(path)  # type: ignore[arg-type]
    assert r.rows == 0 and list(r.iter_rows()) == [] and r.get(b"x", key_hash(b"x")) is None
    assert r.verify() == []


@pytest.mark.parametrize("section", ["index", "bloom", "metadata"])
def test_damaged_section_is_caught_at_open(
    table: tuple[Path, list[tuple[int, bytes, Row]]], section: str
) -> None:
    path, _rows = table
    off, length = sections(path)[section]
    flip(path, off + length // 2)
    with pytest.raises(StorageCorruption) as info:
        SSTableReader(path)
    assert info.value.path == str(path) and info.value.offset == off
    assert str(path) in str(info.value) and f"offset {off}" in str(info.value)


def test_damaged_footer_is_caught_at_open(
    table: tuple[Path, list[tuple[int, bytes, Row]]],
) -> None:
    path, _rows = table
    size = path.stat().st_size
    flip(path, size - 10)
    with pytest.raises(StorageCorruption) as info:
        SSTableReader(path)
    assert info.value.offset == size - FOOTER_SIZE


def test_damaged_data_block_fails_reads_of_that_block_only(
    table: tuple[Path, list[tuple[int, bytes, Row]]],
) -> None:
    path, rows = table
    r = SSTableReader(path)
    b = 3
    start = r.block_offsets[b]
    end = start + r.block_lengths[b]
    flip(path, (start + end) // 2)
    r = SSTableReader(path)  # index is fine, so opening works
    first, last = r.block_first_ord[b], r.block_first_ord[b + 1]
    for o, (_tok, key, row) in enumerate(rows):
        if first <= o < last:
            with pytest.raises(StorageCorruption) as info:
                r.get(key, key_hash(key))
            assert info.value.path == str(path) and info.value.offset == start
        else:
            assert r.get(key, key_hash(key)) == row
    with pytest.raises(StorageCorruption):
        list(r.iter_rows())
    problems = r.verify()
    assert problems == [
        {"file": str(path), "offset": start, "message": "data block checksum mismatch"}
    ]


async def test_engine_open_fails_on_a_damaged_index(open_engine: Opener, tmp_path: Path) -> None:
    e = open_engine()
    for i in range(100):
        await e.apply("ks", b"k%d" % i, put(1, v=b"x"))
    await e.close()
    [path] = list((tmp_path / "data" / "sstables" / "ks").glob("*.sst"))
    off, length = sections(path)["index"]
    flip(path, off + length // 3)
    with pytest.raises(StorageCorruption) as info:
        open_engine()
    assert info.value.path == str(path) and info.value.offset == off


async def test_engine_read_and_verify_report_a_damaged_block(
    open_engine: Opener, tmp_path: Path
) -> None:
    e = open_engine()
    for i in range(300):
        await e.apply("ks", b"k%d" % i, put(1, v=b"value-%d" % i))
    await e.close()
    [path] = list((tmp_path / "data" / "sstables" / "ks").glob("*.sst"))
    r = SSTableReader(path)
    victim_ord = r.block_first_ord[1]
    start = r.block_offsets[1]
    keys = [k for _t, k, _r in r.iter_rows()]
    victim, healthy = keys[victim_ord], keys[0]
    r.close()
    flip(path, start + 5)
    e = open_engine()
    assert e.verify() == [
        {"file": str(path), "offset": start, "message": "data block checksum mismatch"}
    ]
    with pytest.raises(StorageCorruption) as info:
        e.read("ks", victim)
    assert info.value.path == str(path) and info.value.offset == start
    assert e.read("ks", healthy) is not None  # other blocks still serve
