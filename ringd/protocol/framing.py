"""Length-prefixed framing: a 4-byte big-endian unsigned length N, then N bytes of body.

``FrameReader`` is fed whatever bytes arrive and hands back complete bodies. A length over the
current limit is rejected as soon as its 4 bytes are seen, before anything is allocated for it.
"""

from __future__ import annotations

import struct

from ringd.protocol.errors import ProtocolError

HANDSHAKE_MAX_FRAME = 64 * 1024  # before hello completes
DEFAULT_MAX_FRAME = 16 * 1024 * 1024  # after, unless configured otherwise

_LEN = struct.Struct(">I")


def frame(body: bytes) -> bytes:
    """The bytes to send for one frame holding ``body``."""
    return _LEN.pack(len(body)) + body


class FrameReader:
    """Reassembles frames from a byte stream. ``max_frame`` may be raised after the handshake."""

    def __init__(self, max_frame: int = HANDSHAKE_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes | bytearray) -> None:
        self._buf += data

    def next_frame(self) -> bytes | None:
        """The next complete body, or ``None`` if more bytes are needed.

        Raises ``ProtocolError`` on a length over the limit; the stream is then unusable.
        """
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 4:
            self._compact()
            return None
        (length,) = _LEN.unpack_from(buf, pos)
        if length > self.max_frame:
            raise ProtocolError(f"frame of {length} bytes exceeds the limit of {self.max_frame}")
        end = pos + 4 + length
        if len(buf) < end:
            self._compact()
            return None
        body = bytes(buf[pos + 4 : end])
        self._pos = end
        return body

    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame (an incomplete frame at stream end)."""
        return len(self._buf) - self._pos

    def _compact(self) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
