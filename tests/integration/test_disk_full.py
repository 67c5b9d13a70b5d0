"""A real node whose data directory fills up: an 80 MiB tmpfs mounted by the test (root only;
the test skips with the reason where mounting is not allowed). What it covers on a real file
system: the commit log's reserved segments (no SIGBUS), a flush that fails with ENOSPC, writes
refused with a clear OVERLOADED error while reads and ping go on, writes resuming by themselves
once space returns, a restart on a still-full disk, and a clean SIGTERM exit every time.

The same logic is covered on any machine by tests/db/test_disk_failure.py, which injects ENOSPC
and EMFILE at the engine's file layer.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from nodes import Ringd, wait_for

from ringctl.client import Client
from ringd.protocol.errors import ErrorCode, ProtocolError

VALUE = "x" * 10_000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=80m", "tmpfs", str(mnt)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a small tmpfs here ({exc}); tests/db covers the logic")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> None:
    """Write ``path`` until the file system is full."""
    chunk = b"\0" * (256 * 1024)
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def put_until_refused(db: Client) -> tuple[list[str], ProtocolError]:
    acked: list[str] = []
    for i in range(20_000):
        try:
            db.put("demo", f"k{i}", {"v": VALUE})
        except ProtocolError as exc:
            return acked, exc
        acked.append(f"k{i}")
    raise AssertionError("writes were never refused on a full disk")


def test_full_disk_stops_writes_keeps_reads_and_resumes(small_disk: Path, tmp_path: Path) -> None:
    node = Ringd(small_disk / "node1", memtable_flush_mb=1)
    node.log_path = tmp_path / "node1.log"  # not on the full disk
    filler = small_disk / "filler"
    try:
        node.start()
        with node.client(timeout=10) as db:
            db.keyspace_create("demo")
            fill(filler)
            acked, exc = put_until_refused(db)
            assert exc.code == ErrorCode.OVERLOADED, exc
            assert "No space left on device" in exc.message
            assert str(node.data_dir) in exc.message and " free" in exc.message
            assert acked  # the reserved segment took writes until the flush failed
            db.ping()
            assert all(db.get("demo", k)["columns"]["v"] == VALUE for k in acked)
            assert node.running

            filler.unlink()  # space returns; writes resume by themselves

            def writable() -> bool:
                db.put("demo", "after", {"v": "1"})
                return True

            wait_for(writable, 20, "writes to resume")
        assert node.stop() == 0

        # restart on a still-full disk: the node starts, serves reads, refuses writes, stops
        fill(filler)
        node.start()
        with node.client(timeout=10) as db:
            assert db.get("demo", "after")["columns"]["v"] == "1"
            assert all(db.get("demo", k)["columns"]["v"] == VALUE for k in acked)
            with pytest.raises(ProtocolError) as refused:
                db.put("demo", "more", {"v": "2"})
            assert refused.value.code == ErrorCode.OVERLOADED
        assert node.stop() == 0
        log = node.log()
        assert "Traceback" not in log and "writes stopped" in log, log
    finally:
        node.kill()
        if filler.exists():
            os.unlink(filler)
