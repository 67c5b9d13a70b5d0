"""Errors the storage engine raises."""

from __future__ import annotations

from pathlib import Path


class StorageCorruption(Exception):
    """Data on disk failed a checksum or could not be decoded.

    ``path`` and ``offset`` name the file and the byte offset of the damaged record, block or
    section, and both appear in the message, so an operator can find and quarantine the file.
    """

    def __init__(self, path: Path | str, offset: int, message: str) -> None:
        self.path = str(path)
        self.offset = offset
        self.detail = message
        super().__init__(f"{self.path}: {message} at byte offset {offset}")
