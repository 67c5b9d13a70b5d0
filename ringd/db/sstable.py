"""SSTables: immutable, sorted, checksummed files of rows, one keyspace each.

One file, ``<generation>.sst`` in the keyspace's directory, written once (to ``.sst.tmp``, then
fsync, rename, fsync of the directory) and never changed::

    "RDSST001"
    data blocks     each: payload | crc32 of the payload (u32 LE)
    index section   CBOR map of packed little-endian arrays (see below)
    bloom section   CBOR [word count, packed u64 words]
    metadata        CBOR map (counts, timestamps, tokens, commit-log position, replaced gens)
    footer          (offset u64, length u64, crc32 u32) for index, bloom and metadata,
                    "RDSSTEND", crc32 of the footer so far

Rows are sorted by ``(token, key)``. A block payload is a run of row entries, each one CBOR array
``[token, key, tombstone timestamp, tombstone ldt, name, timestamp, value, ldt, ...]`` (four
items per cell; the tombstone pair is null without a row tombstone). Blocks hold about
``block_size`` bytes; a row is never split.

The index section holds, per block, its offset, payload length, first row ordinal, first token
and first key (for seeking scans), and, per row, the absolute offset of its entry. Point reads do
not need the token (pure-Python Murmur3 costs microseconds): a *hash index* of
``crc32(key) << 32 | ordinal`` values, sorted, finds the row, and a blocked bloom filter (one
64-bit word per key hash, five bits set in it) keyed by the same hash rejects most absent keys.

Index, bloom and metadata are verified when the file is opened; a data block's checksum is
verified every time the block is read, and a failure raises :class:`StorageCorruption` naming
the file and the block's offset: a damaged block is never decoded into wrong data.
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from zlib import crc32

import cbor2

from ringd.db.cells import Cell, Row, RowTombstone
from ringd.db.errors import StorageCorruption
from ringd.fsutil import fsync_dir

MAGIC = b"RDSST001"
END_MAGIC = b"RDSSTEND"
_SECTIONS = struct.Struct("<QQIQQIQQI")
FOOTER_SIZE = _SECTIONS.size + len(END_MAGIC) + 4
BLOCK_SIZE = 2048
BLOOM_BITS_PER_KEY = 10
_MASK64 = 0xFFFFFFFFFFFFFFFF
_GOLDEN = 0x9E3779B97F4A7C15
_BIG = sys.byteorder == "big"

_dumps = cbor2.dumps
_loads = cbor2.loads


def sstable_name(generation: int) -> str:
    return f"{generation:010d}.sst"


def parse_generation(name: str) -> int | None:
    if name.endswith(".sst") and name[:-4].isdigit():
        return int(name[:-4])
    return None


def key_hash(key: bytes) -> int:
    """The 32-bit hash point lookups use (hash index and bloom filter)."""
    return crc32(key)


def _bloom_slot(h: int, nwords: int) -> tuple[int, int]:
    y = ((h ^ (h >> 16)) * _GOLDEN) & _MASK64
    mask = (
        (1 << (y >> 58))
        | (1 << ((y >> 52) & 63))
        | (1 << ((y >> 46) & 63))
        | (1 << ((y >> 40) & 63))
        | (1 << ((y >> 34) & 63))
    )
    return h % nwords, mask


def _pack(arr: array) -> bytes:
    if _BIG:
        arr = array(arr.typecode, arr)
        arr.byteswap()
    return arr.tobytes()


def _unpack(typecode: str, data: bytes) -> array:
    arr = array(typecode)
    arr.frombytes(data)
    if _BIG:
        arr.byteswap()
    return arr


def encode_entry(token: int, key: bytes, row: Row) -> bytes:
    t = row.tombstone
    e: list[Any] = [token, key, None, None] if t is None else [token, key, t[0], t[1]]
    for name, c in row.cells.items():
        e += (name, c[0], c[1], c[2])
    return _dumps(e)


def decode_row(e: list[Any]) -> Row:
    """The ``Row`` of a decoded row entry."""
    t = e[2]
    if len(e) == 8:
        cells = {e[4]: Cell(e[5], e[6], e[7])}
    else:
        cells = {e[i]: Cell(e[i + 1], e[i + 2], e[i + 3]) for i in range(4, len(e), 4)}
    return Row(cells, None if t is None else RowTombstone(t, e[3]))


class SSTableWriter:
    """Writes one sstable from rows given in ``(token, key)`` order; :meth:`finish` makes it
    durable and renames it into place. Safe to use from a worker thread."""

    def __init__(self, directory: Path, keyspace: str, generation: int, block_size: int = 0):
        self.directory = directory
        self.keyspace = keyspace
        self.generation = generation
        self.path = directory / sstable_name(generation)
        self.tmp = directory / (sstable_name(generation) + ".tmp")
        self.block_size = block_size or BLOCK_SIZE
        self._f = open(self.tmp, "xb", buffering=1 << 20)  # noqa: SIM115
        self._f.write(MAGIC)
        self._off = len(MAGIC)
        self._block = bytearray()
        self._block_offsets = array("Q")
        self._block_lengths = array("I")
        self._block_first_ord = array("Q")
        self._block_first_tok = array("q")
        self._block_first_keys: list[bytes] = []
        self._row_offsets = array("Q")
        self._hashes = array("Q")
        self.rows = 0
        self.live_cells = 0
        self.tombstone_cells = 0
        self.min_timestamp: int | None = None
        self.max_timestamp: int | None = None
        self.min_token: int | None = None
        self.max_token: int | None = None
        self._last: tuple[int, bytes] | None = None

    def add(self, token: int, key: bytes, row: Row) -> None:
        entry = encode_entry(token, key, row)
        if self._block and len(self._block) + len(entry) > self.block_size:
            self._finish_block()
        if not self._block:
            self._block_first_ord.append(self.rows)
            self._block_first_tok.append(token)
            self._block_first_keys.append(key)
        self._row_offsets.append(self._off + len(self._block))
        self._hashes.append((crc32(key) << 32) | self.rows)
        self._block += entry
        self.rows += 1
        if self.min_token is None:
            self.min_token = token
        self.max_token = token
        live = tomb = 0
        lo = hi = None
        for c in row.cells.values():
            if c[1] is None:
                tomb += 1
            else:
                live += 1
            ts = c[0]
            if lo is None or ts < lo:
                lo = ts
            if hi is None or ts > hi:
                hi = ts
        if row.tombstone is not None:
            tomb += 1
            ts = row.tombstone.timestamp
            if lo is None or ts < lo:
                lo = ts
            if hi is None or ts > hi:
                hi = ts
        self.live_cells += live
        self.tombstone_cells += tomb
        if lo is not None:
            if self.min_timestamp is None or lo < self.min_timestamp:
                self.min_timestamp = lo
            if self.max_timestamp is None or hi > self.max_timestamp:  # type: ignore[operator]
                self.max_timestamp = hi

    def _finish_block(self) -> None:
        data = self._block
        self._f.write(data)
        self._f.write(crc32(data).to_bytes(4, "little"))
        self._block_offsets.append(self._off)
        self._block_lengths.append(len(data))
        self._off += len(data) + 4
        self._block = bytearray()

    def _write_section(self, data: bytes) -> tuple[int, int, int]:
        off = self._off
        self._f.write(data)
        self._off += len(data)
        return off, len(data), crc32(data)

    def finish(
        self, commitlog_position: tuple[int, int], replaces: Iterable[int] = (), now: float = 0.0
    ) -> Path:
        """Write index, bloom filter, metadata and footer, fsync, rename into place, fsync the
        directory. Returns the final path."""
        if self._block:
            self._finish_block()
        data_bytes = self._off
        hashes = array("Q", sorted(self._hashes))
        index = _dumps(
            {
                "block_offsets": _pack(self._block_offsets),
                "block_lengths": _pack(self._block_lengths),
                "block_first_ord": _pack(self._block_first_ord),
                "block_first_tok": _pack(self._block_first_tok),
                "block_first_keys": self._block_first_keys,
                "row_offsets": _pack(self._row_offsets),
                "hash_index": _pack(hashes),
            }
        )
        nwords = max(1, (self.rows * BLOOM_BITS_PER_KEY + 63) // 64)
        words = [0] * nwords
        for hv in hashes:
            i, mask = _bloom_slot(hv >> 32, nwords)
            words[i] |= mask
        bloom = _dumps([nwords, _pack(array("Q", words))])
        meta = _dumps(
            {
                "format": 1,
                "keyspace": self.keyspace,
                "generation": self.generation,
                "rows": self.rows,
                "live_cells": self.live_cells,
                "tombstone_cells": self.tombstone_cells,
                "min_timestamp": self.min_timestamp,
                "max_timestamp": self.max_timestamp,
                "min_token": self.min_token,
                "max_token": self.max_token,
                "data_bytes": data_bytes,
                "commitlog_position": list(commitlog_position),
                "replaces": sorted(replaces),
                "created": now,
            }
        )
        sections = (
            self._write_section(index) + self._write_section(bloom) + self._write_section(meta)
        )
        footer = _SECTIONS.pack(*sections) + END_MAGIC
        self._f.write(footer + crc32(footer).to_bytes(4, "little"))
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.rename(self.tmp, self.path)
        fsync_dir(self.directory)
        return self.path

    def abort(self) -> None:
        try:
            self._f.close()
        finally:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass


class SSTableReader:
    """An open sstable: index, bloom filter and metadata in memory, data blocks read on demand
    with ``os.pread`` (thread-safe: compaction reads from a worker thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.generation = parse_generation(path.name) or 0
        self._fd = os.open(path, os.O_RDONLY)
        try:
            self._load()
        except BaseException:
            self.close()
            raise
        self._firsts: list[tuple[int, bytes]] | None = None

    def _corrupt(self, offset: int, message: str) -> StorageCorruption:
        return StorageCorruption(self.path, offset, message)

    def _read_sections(self) -> tuple[list[tuple[int, int, int]], int]:
        size = os.fstat(self._fd).st_size
        if size < len(MAGIC) + FOOTER_SIZE:
            raise self._corrupt(0, "sstable too short")
        if os.pread(self._fd, len(MAGIC), 0) != MAGIC:
            raise self._corrupt(0, "bad sstable header")
        foot_off = size - FOOTER_SIZE
        foot = os.pread(self._fd, FOOTER_SIZE, foot_off)
        body = foot[:-4]
        if crc32(body) != int.from_bytes(foot[-4:], "little") or not body.endswith(END_MAGIC):
            raise self._corrupt(foot_off, "sstable footer checksum mismatch")
        v = _SECTIONS.unpack_from(foot, 0)
        sections = [(v[0], v[1], v[2]), (v[3], v[4], v[5]), (v[6], v[7], v[8])]
        for off, length, _crc in sections:
            if off < len(MAGIC) or off + length > foot_off:
                raise self._corrupt(foot_off, "sstable footer points outside the file")
        return sections, size

    def _section(self, off: int, length: int, crc: int, what: str) -> Any:
        data = os.pread(self._fd, length, off)
        if len(data) != length or crc32(data) != crc:
            raise self._corrupt(off, f"sstable {what} checksum mismatch")
        try:
            return _loads(data)
        except Exception as exc:
            raise self._corrupt(off, f"sstable {what} undecodable: {exc}") from None

    def _load(self) -> None:
        sections, size = self._read_sections()
        self.file_size = size
        (ioff, ilen, icrc), (boff, blen, bcrc), (moff, mlen, mcrc) = sections
        meta = self._section(moff, mlen, mcrc, "metadata")
        idx = self._section(ioff, ilen, icrc, "index")
        bloom = self._section(boff, blen, bcrc, "bloom filter")
        try:
            self.meta: dict[str, Any] = meta
            self.keyspace: str = meta["keyspace"]
            self.rows: int = meta["rows"]
            self.live_cells: int = meta["live_cells"]
            self.tombstone_cells: int = meta["tombstone_cells"]
            self.min_timestamp: int | None = meta["min_timestamp"]
            self.max_timestamp: int | None = meta["max_timestamp"]
            self.data_bytes: int = meta["data_bytes"]
            pos = meta["commitlog_position"]
            self.commitlog_position: tuple[int, int] = (int(pos[0]), int(pos[1]))
            self.replaces: list[int] = list(meta["replaces"])
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise self._corrupt(moff, f"sstable metadata malformed: {exc}") from None
        try:
            self.block_offsets = _unpack("Q", idx["block_offsets"])
            self.block_lengths = _unpack("I", idx["block_lengths"])
            self.block_first_ord = _unpack("Q", idx["block_first_ord"])
            self.block_first_tok = _unpack("q", idx["block_first_tok"])
            self.block_first_keys: list[bytes] = idx["block_first_keys"]
            self.row_offsets = _unpack("Q", idx["row_offsets"])
            self.hash_index = _unpack("Q", idx["hash_index"])
            self.nwords = int(bloom[0])
            self.bloom = _unpack("Q", bloom[1])
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise self._corrupt(ioff, f"sstable index malformed: {exc}") from None
        #: the largest encoded row (``cbor2.dumps(row.to_wire())``) this sstable can hold: a row
        #: entry lies within one block, and its wire form adds at most one byte per cell (4+
        #: bytes each) and a few header bytes to the entry
        self.max_row_bytes = (max(self.block_lengths, default=0) * 5) // 4 + 32
        nblocks = len(self.block_offsets)
        if not (
            len(self.block_lengths) == len(self.block_first_ord) == nblocks
            and len(self.block_first_tok) == len(self.block_first_keys) == nblocks
            and len(self.row_offsets) == len(self.hash_index) == self.rows
            and len(self.bloom) == self.nwords >= 1
        ):
            raise self._corrupt(ioff, "sstable index sizes disagree with its metadata")

    # -- reading ---------------------------------------------------------------------------

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def may_contain(self, h: int) -> bool:
        i, mask = _bloom_slot(h, self.nwords)
        return self.bloom[i] & mask == mask

    def read_block(self, b: int) -> bytes:
        off = self.block_offsets[b]
        length = self.block_lengths[b]
        data = os.pread(self._fd, length + 4, off)
        if len(data) != length + 4:
            raise self._corrupt(off, "data block truncated")
        payload = data[:length]
        if crc32(payload) != int.from_bytes(data[length:], "little"):
            raise self._corrupt(off, "data block checksum mismatch")
        return payload

    def _entry(self, b: int, payload: bytes, o: int, ord_end: int) -> list[Any]:
        boff = self.block_offsets[b]
        start = self.row_offsets[o] - boff
        end = self.row_offsets[o + 1] - boff if o + 1 < ord_end else len(payload)
        try:
            e = _loads(payload[start:end])
            if not isinstance(e, list) or len(e) < 4 or (len(e) - 4) % 4:
                raise ValueError("row entry is not a row")
        except Exception as exc:
            raise self._corrupt(boff, f"undecodable row in data block: {exc}") from None
        return e

    def _block_end_ord(self, b: int) -> int:
        return self.block_first_ord[b + 1] if b + 1 < len(self.block_first_ord) else self.rows

    def get(self, key: bytes, h: int) -> Row | None:
        """The row stored for ``key`` (whose :func:`key_hash` is ``h``), or ``None``. (The hot
        path of reads: block lookup, checksum and decoding are inlined.)"""
        word, mask = _bloom_slot(h, self.nwords)
        if self.bloom[word] & mask != mask:
            return None
        hidx = self.hash_index
        j = bisect_left(hidx, h << 32)
        n = len(hidx)
        first_ord = self.block_first_ord
        row_offsets = self.row_offsets
        while j < n:
            v = hidx[j]
            if v >> 32 != h:
                return None
            o = v & 0xFFFFFFFF
            b = bisect_right(first_ord, o) - 1
            boff = self.block_offsets[b]
            length = self.block_lengths[b]
            data = os.pread(self._fd, length + 4, boff)
            view = memoryview(data)
            if len(data) != length + 4 or crc32(view[:length]) != int.from_bytes(
                view[length:], "little"
            ):
                raise self._corrupt(boff, "data block checksum mismatch")
            start = row_offsets[o] - boff
            end = (
                row_offsets[o + 1] - boff
                if o + 1 < self.rows and (b + 1 == len(first_ord) or o + 1 < first_ord[b + 1])
                else length
            )
            try:
                e = _loads(view[start:end])
                if e[1] == key:
                    return decode_row(e)
            except Exception as exc:
                raise self._corrupt(boff, f"undecodable row in data block: {exc}") from None
            j += 1
        return None

    def _block_firsts(self) -> list[tuple[int, bytes]]:
        firsts = self._firsts
        if firsts is None:
            firsts = self._firsts = list(
                zip(self.block_first_tok, self.block_first_keys, strict=True)
            )
        return firsts

    def iter_rows(
        self,
        after: tuple[int, bytes] | None = None,
        end_token: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[tuple[int, bytes, Row]]:
        """``(token, key, row)`` in order, strictly after ``after``, up to ``end_token``;
        reads one block at a time."""
        nblocks = len(self.block_offsets)
        start = 0
        if after is not None:
            start = max(bisect_right(self._block_firsts(), after) - 1, 0)
        first_tok = self.block_first_tok
        for b in range(start, nblocks):
            if end_token is not None and first_tok[b] > end_token:
                return
            payload = self.read_block(b)
            ord_end = self._block_end_ord(b)
            for o in range(self.block_first_ord[b], ord_end):
                e = self._entry(b, payload, o, ord_end)
                tok = e[0]
                if after is not None and (tok, e[1]) <= after:
                    continue
                if end_token is not None and tok > end_token:
                    return
                yield tok, e[1], decode_row(e)
            if progress is not None:
                progress(len(payload) + 4)

    def verify(self) -> list[dict[str, Any]]:
        """Re-read the whole file and check every checksum and the row order."""
        problems: list[dict[str, Any]] = []

        def report(exc: StorageCorruption) -> None:
            problems.append({"file": exc.path, "offset": exc.offset, "message": exc.detail})

        try:
            sections, _size = self._read_sections()
            for (off, length, crc), what in zip(
                sections, ("index", "bloom filter", "metadata"), strict=True
            ):
                try:
                    self._section(off, length, crc, what)
                except StorageCorruption as exc:
                    report(exc)
        except StorageCorruption as exc:
            report(exc)
            return problems
        last: tuple[int, bytes] | None = None
        for b in range(len(self.block_offsets)):
            try:
                payload = self.read_block(b)
                ord_end = self._block_end_ord(b)
                for o in range(self.block_first_ord[b], ord_end):
                    e = self._entry(b, payload, o, ord_end)
                    here = (e[0], e[1])
                    if last is not None and here <= last:
                        raise self._corrupt(self.block_offsets[b], "rows out of order")
                    last = here
            except StorageCorruption as exc:
                report(exc)
        return problems


def write_sstable(
    directory: Path,
    keyspace: str,
    generation: int,
    rows: Iterable[tuple[int, bytes, Row]],
    commitlog_position: tuple[int, int],
    replaces: Iterable[int] = (),
    now: float = 0.0,
    should_stop: Callable[[], bool] | None = None,
) -> Path | None:
    """Write ``rows`` (sorted) to a new sstable and rename it into place; ``None`` (and no file)
    if ``should_stop`` turned true on the way."""
    writer = SSTableWriter(directory, keyspace, generation)
    try:
        for n, (tok, key, row) in enumerate(rows):
            writer.add(tok, key, row)
            if should_stop is not None and n & 1023 == 0 and should_stop():
                writer.abort()
                return None
        if should_stop is not None and should_stop():
            writer.abort()
            return None
        return writer.finish(commitlog_position, replaces, now)
    except BaseException:
        writer.abort()
        raise


__all__ = [
    "SSTableReader",
    "SSTableWriter",
    "decode_row",
    "encode_entry",
    "key_hash",
    "parse_generation",
    "sstable_name",
    "write_sstable",
]
