"""The sans-IO wire protocol shared by ringd and ringctl (the contract is docs/protocol.md).

Parts:
  errors    the error codes (as Cassandra's) and the one exception family, ``ProtocolError``
  codec     strict CBOR encoding and decoding of one frame's body
  framing   4-byte big-endian length prefix; ``FrameReader`` turns bytes in into bodies out
  messages  the verb table (every request type, who may send it, its timeout, how its handler
            runs) and the shapes of hello, requests, results and errors
  connection  the connection state machine (hello -> ready -> closed, ids and matching, frame
            limits) that the server, the internode channel and the blocking client drive

Nothing here imports trio or touches a socket: bytes in, typed values out, bytes to send back.
"""

from ringd.protocol.errors import ErrorCode, ProtocolError

PROTOCOL_VERSION = 1

__all__ = ["PROTOCOL_VERSION", "ErrorCode", "ProtocolError"]
