"""The hint store: durable, append-only files of hints, one series of files per target host.

A hint is a mutation a replica missed: keyspace, key, the row with its original timestamps, and
when the hint was made. Hints for a host are appended to its *open* file; the dispatcher seals
that file (new hints start a new one) and replays sealed files oldest first, recording how far it
got, so delivery resumes where it stopped after a failure or a restart. A file whose hints were
all delivered is deleted.

File ``<host_id>-<first hint ms>-<seq>.hints`` holds records::

    length u32 | crc32(length) u32 | payload (CBOR [keyspace, key, row, created_us]) | crc32(payload) u32

Every append is one ``write`` to the file, so a killed process loses no hint; ``sync`` (run
periodically and at close) makes them survive a machine crash too. A record cut short at the end
of a file is a torn tail (a crash mid-append) and is ignored; a checksum mismatch anywhere else
marks the file *corrupted*: the hints before the damage are delivered, the file is kept and
listed until it is truncated, and the store carries on with the others.
"""

from __future__ import annotations

import logging
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from zlib import crc32

import cbor2

from ringd.db.cells import Row
from ringd.fsutil import atomic_write, fsync_dir

log = logging.getLogger(__name__)

_HEAD = struct.Struct(">II")
_CRC = struct.Struct(">I")
_NAME = re.compile(r"^(?P<host>[0-9A-Za-z-]+?)-(?P<ms>\d{13,})-(?P<seq>\d+)\.hints$")
_HOST_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z-]{0,63}$")
POSITIONS = "positions.cbor"
MAX_RECORD = 64 * 1024 * 1024


class Hint(NamedTuple):
    keyspace: str
    key: bytes
    row: Row
    created_us: int


class Position(NamedTuple):
    """Where replay of one file continues: the file's name and the byte offset."""

    file: str
    offset: int


def encode_hint(hint: Hint) -> bytes:
    payload = cbor2.dumps([hint.keyspace, hint.key, hint.row.to_wire(), hint.created_us])
    n = _CRC.pack(len(payload))
    return _HEAD.pack(len(payload), crc32(n)) + payload + _CRC.pack(crc32(payload))


def _decode_payload(payload: bytes) -> Hint:
    ks, key, row, created = cbor2.loads(payload)
    if not isinstance(ks, str) or not isinstance(key, bytes) or type(created) is not int:
        raise ValueError("hint fields have the wrong types")
    return Hint(ks, key, Row.from_wire(row), created)


@dataclass
class HintFile:
    name: str
    host_id: str
    created_ms: int
    seq: int
    size: int = 0
    delivered: int = 0  # bytes from the start already replayed
    sealed: bool = False
    corrupted: str | None = None  # why, once found damaged
    fd: int | None = None

    @property
    def pending(self) -> int:
        return self.size - self.delivered


@dataclass
class HostHints:
    """The files of one target host, oldest first; the last may be open for appends."""

    host_id: str
    files: list[HintFile] = field(default_factory=list)
    newest_ms: int = 0

    @property
    def pending_bytes(self) -> int:
        return sum(f.pending for f in self.files if f.corrupted is None)


class HintStore:
    """Hints on disk under ``directory``. Not thread-safe: used from the node's event loop."""

    def __init__(self, directory: Path, *, max_file_bytes: int = 128 * 1024 * 1024) -> None:
        self.directory = directory
        self.max_file_bytes = max_file_bytes
        self.hosts: dict[str, HostHints] = {}
        self._seq = 0
        self._dirty: set[int] = set()
        self.corrupted_files = 0
        directory.mkdir(parents=True, exist_ok=True)
        self._load()

    # -- opening ------------------------------------------------------------------------------

    def _load(self) -> None:
        positions: dict[str, int] = {}
        path = self.directory / POSITIONS
        if path.exists():
            try:
                raw = cbor2.loads(path.read_bytes())
                positions = {str(k): int(v) for k, v in dict(raw).items()}
            except Exception as exc:  # a damaged positions file costs re-delivery, not hints
                log.warning("ignoring damaged %s (hints will be replayed again): %s", path, exc)
        for entry in sorted(os.scandir(self.directory), key=lambda e: e.name):
            m = _NAME.match(entry.name)
            if m is None:
                if entry.name.endswith(".tmp"):
                    os.unlink(entry.path)
                continue
            seq = int(m["seq"])
            self._seq = max(self._seq, seq)
            hint_file = HintFile(
                entry.name,
                m["host"],
                int(m["ms"]),
                seq,
                size=entry.stat().st_size,
                delivered=positions.get(entry.name, 0),
                sealed=True,  # files of an earlier run take no more appends
            )
            host = self.hosts.setdefault(m["host"], HostHints(m["host"]))
            host.files.append(hint_file)
            host.newest_ms = max(host.newest_ms, int(entry.stat().st_mtime * 1000))
        for host in self.hosts.values():
            host.files.sort(key=lambda f: (f.created_ms, f.seq))

    # -- writing ------------------------------------------------------------------------------

    def add(self, host_id: str, hint: Hint) -> int:
        """Append ``hint`` for ``host_id``; returns the bytes written."""
        if not _HOST_ID.match(host_id):
            raise ValueError(f"not a host id: {host_id!r}")
        record = encode_hint(hint)
        host = self.hosts.get(host_id)
        if host is None:
            host = self.hosts[host_id] = HostHints(host_id)
        hint_file = host.files[-1] if host.files else None
        if (
            hint_file is None
            or hint_file.sealed
            or hint_file.size + len(record) > self.max_file_bytes
        ):
            if hint_file is not None and not hint_file.sealed:
                self._seal(hint_file)
            hint_file = self._new_file(host, hint.created_us // 1000)
        assert hint_file.fd is not None
        os.write(hint_file.fd, record)
        hint_file.size += len(record)
        self._dirty.add(hint_file.fd)
        host.newest_ms = max(host.newest_ms, hint.created_us // 1000)
        return len(record)

    def _new_file(self, host: HostHints, created_ms: int) -> HintFile:
        self._seq += 1
        name = f"{host.host_id}-{max(created_ms, 0):013d}-{self._seq}.hints"
        fd = os.open(self.directory / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        hint_file = HintFile(name, host.host_id, created_ms, self._seq, fd=fd)
        host.files.append(hint_file)
        fsync_dir(self.directory)
        return hint_file

    def _seal(self, hint_file: HintFile) -> None:
        hint_file.sealed = True
        if hint_file.fd is not None:
            self._dirty.discard(hint_file.fd)
            os.fsync(hint_file.fd)
            os.close(hint_file.fd)
            hint_file.fd = None

    def sync(self) -> None:
        """Make every hint appended so far durable."""
        for fd in list(self._dirty):
            os.fsync(fd)
        self._dirty.clear()

    def close(self) -> None:
        for host in self.hosts.values():
            for hint_file in host.files:
                if hint_file.fd is not None:
                    try:
                        self._seal(hint_file)
                    except OSError as exc:  # e.g. a full disk: what was written stays
                        log.warning("cannot sync hint file %s: %s", hint_file.name, exc.strerror)
        self._save_positions()

    # -- replay -------------------------------------------------------------------------------

    def seal(self, host_id: str) -> None:
        """Close the host's open file so that everything written so far can be replayed."""
        host = self.hosts.get(host_id)
        if host and host.files and not host.files[-1].sealed:
            self._seal(host.files[-1])

    def replayable(self, host_id: str) -> list[HintFile]:
        """The host's sealed, undamaged files that still hold undelivered hints, oldest first."""
        host = self.hosts.get(host_id)
        if host is None:
            return []
        return [f for f in host.files if f.sealed and f.corrupted is None and f.pending > 0]

    def read(self, hint_file: HintFile, max_bytes: int) -> Iterator[tuple[int, Hint]]:
        """Hints of ``hint_file`` from its delivered offset, as ``(end offset, hint)``, up to
        about ``max_bytes``. Stops (marking the file corrupted) at damage."""
        path = self.directory / hint_file.name
        offset = hint_file.delivered
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(max(max_bytes, 1))
            pos = 0
            while pos < len(data):
                if len(data) - pos < _HEAD.size:
                    more = f.read(_HEAD.size)
                    data += more
                    if len(data) - pos < _HEAD.size:
                        self._torn(hint_file, offset + pos)
                        return
                n, n_crc = _HEAD.unpack_from(data, pos)
                if crc32(_CRC.pack(n)) != n_crc or n > MAX_RECORD:
                    self._damaged(hint_file, offset + pos, "record length fails its checksum")
                    return
                end = pos + _HEAD.size + n + _CRC.size
                if end > len(data):
                    data += f.read(end - len(data))
                    if end > len(data):
                        self._torn(hint_file, offset + pos)
                        return
                payload = bytes(data[pos + _HEAD.size : end - _CRC.size])
                (crc,) = _CRC.unpack_from(data, end - _CRC.size)
                if crc32(payload) != crc:
                    self._damaged(hint_file, offset + pos, "hint fails its checksum")
                    return
                try:
                    hint = _decode_payload(payload)
                except Exception as exc:
                    self._damaged(hint_file, offset + pos, f"hint does not decode: {exc}")
                    return
                pos = end
                yield offset + pos, hint
                if pos >= max_bytes:
                    return

    def _torn(self, hint_file: HintFile, at: int) -> None:
        log.warning(
            "hint file %s ends in a torn record at %d; ignoring the tail", hint_file.name, at
        )
        hint_file.size = at

    def _damaged(self, hint_file: HintFile, at: int, why: str) -> None:
        hint_file.corrupted = f"{why} at offset {at}"
        self.corrupted_files += 1
        log.error(
            "hint file %s is corrupted (%s); skipping it", hint_file.name, hint_file.corrupted
        )

    def delivered(self, hint_file: HintFile, offset: int) -> None:
        """Record that ``hint_file`` was delivered up to ``offset``; delete it when done."""
        hint_file.delivered = offset
        if hint_file.delivered >= hint_file.size:
            self._delete(hint_file)
        self._save_positions()

    def _delete(self, hint_file: HintFile) -> None:
        if hint_file.fd is not None:
            self._dirty.discard(hint_file.fd)
            os.close(hint_file.fd)
            hint_file.fd = None
        try:
            os.unlink(self.directory / hint_file.name)
        except FileNotFoundError:
            pass
        host = self.hosts.get(hint_file.host_id)
        if host is not None:
            host.files = [f for f in host.files if f is not hint_file]
            if not host.files:
                del self.hosts[hint_file.host_id]

    def _save_positions(self) -> None:
        """Record the delivery positions; if that fails (a full disk), the hints past the last
        saved positions are delivered again after a restart, which is harmless."""
        positions = {
            f.name: f.delivered
            for host in self.hosts.values()
            for f in host.files
            if f.delivered > 0
        }
        try:
            atomic_write(self.directory / POSITIONS, cbor2.dumps(positions))
        except OSError as exc:
            log.warning(
                "cannot save hint delivery positions (%s); some hints may be delivered twice",
                exc.strerror,
            )

    # -- management ---------------------------------------------------------------------------

    def truncate(self, host_id: str | None = None) -> int:
        """Delete every hint (of one host, or of all); returns the files deleted."""
        hosts = [host_id] if host_id is not None else list(self.hosts)
        deleted = 0
        for h in hosts:
            host = self.hosts.get(h)
            for hint_file in list(host.files) if host else []:
                self._delete(hint_file)
                deleted += 1
        self._save_positions()
        return deleted

    def describe(self) -> list[dict[str, Any]]:
        """Per host: files, pending bytes, oldest and newest hint times, corrupted files."""
        out = []
        for host in self.hosts.values():
            out.append(
                {
                    "host_id": host.host_id,
                    "files": len(host.files),
                    "total_bytes": host.pending_bytes,
                    "oldest_ms": min(f.created_ms for f in host.files) if host.files else None,
                    "newest_ms": host.newest_ms or None,
                    "corrupted": [f.name for f in host.files if f.corrupted is not None],
                }
            )
        return out
