"""Damaged files on a real node: corruption is reported with the file and offset, never served.

A flipped byte in the middle of the commit log stops the node at start; a flipped byte in an
sstable's data block fails the reads of that block (other rows are still served) and makes
``ringctl verify`` exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from nodes import Ringd

from ringd.protocol.errors import ServerError


def flip_byte_at(path: Path, needle: bytes) -> int:
    """Flip one byte inside the first occurrence of ``needle`` in ``path``; return its offset."""
    data = path.read_bytes()
    at = data.index(needle) + len(needle) // 2
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(bytes([data[at] ^ 0xFF]))
    return at


def test_corrupt_commit_log_stops_the_node_with_file_and_offset(
    ringd_factory: Callable[..., Ringd],
) -> None:
    node = ringd_factory(commitlog_sync="batch")
    with node.client() as db:
        db.keyspace_create("c")
        for i in range(200):
            db.put("c", f"k{i}", {"v": f"payload-{i:04d}"})
    node.kill()  # the commit log is not replayed into sstables: it holds every write
    segments = sorted((node.data_dir / "data" / "commitlog").glob("*.log"))
    assert segments
    flip_byte_at(segments[0], b"payload-0100")
    result = subprocess.run(node.argv(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    message = result.stderr.strip()
    assert segments[0].name in message and "offset" in message, message
    assert len(message.splitlines()) == 1


def test_corrupt_sstable_block_fails_reads_of_it_and_verify(
    ringd_factory: Callable[..., Ringd],
) -> None:
    node = ringd_factory()
    with node.client() as db:
        db.keyspace_create("c")
        for i in range(2000):
            db.put("c", f"k{i}", {"v": f"payload-{i:04d}"})
        db.admin("flush", keyspace="c")
    node.stop()
    tables = sorted((node.data_dir / "data" / "sstables").rglob("*.sst"))
    assert len(tables) == 1
    flip_byte_at(tables[0], b"payload-1000")
    node.start()  # index, bloom filter and metadata are intact: the node starts
    with node.client() as db:
        try:
            row = db.get("c", "k1000")
        except ServerError as exc:
            assert tables[0].name in exc.message and "offset" in exc.message, exc.message
        else:
            raise AssertionError(f"a damaged block was served: {row}")
        assert db.get("c", "k5")["columns"] == {"v": "payload-0005"}  # another block
    env = {**os.environ, "RINGCTL_HOST": node.address}
    verify = subprocess.run(
        [sys.executable, "-m", "ringctl", "verify", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert verify.returncode == 1
    report = json.loads(verify.stdout)
    assert not report["ok"]
    assert any(tables[0].name in p["file"] for p in report["problems"])
