"""Error codes and the ``ProtocolError`` family: every error that crosses the wire is one of these."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    PROTOCOL_ERROR = "PROTOCOL_ERROR"  # malformed frame or message; the connection may close
    INVALID = "INVALID"  # well-formed request that cannot be served as asked (bad argument)
    UNAUTHORIZED = "UNAUTHORIZED"  # not allowed: bad credentials, or a disabled operation
    UNAVAILABLE = "UNAVAILABLE"  # too few live replicas: details required, alive
    WRITE_TIMEOUT = "WRITE_TIMEOUT"  # details received, required
    READ_TIMEOUT = "READ_TIMEOUT"  # details received, required
    OVERLOADED = "OVERLOADED"  # the node sheds load; retry later or elsewhere
    SERVER_ERROR = "SERVER_ERROR"  # a bug or local failure (e.g. storage corruption)


class ProtocolError(Exception):
    """An error with a wire code. ``details`` are extra fields of the error map."""

    code: ErrorCode = ErrorCode.PROTOCOL_ERROR

    def __init__(self, message: str, code: ErrorCode | None = None, **details: Any) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details = details

    def to_wire(self) -> dict[str, Any]:
        return {"code": str(self.code), "message": self.message, **self.details}

    @classmethod
    def from_wire(cls, err: object) -> ProtocolError:
        if not isinstance(err, dict):
            return cls("malformed error from server", ErrorCode.PROTOCOL_ERROR)
        try:
            code = ErrorCode(str(err.get("code")))
        except ValueError:
            code = ErrorCode.SERVER_ERROR
        details = {k: v for k, v in err.items() if k not in ("code", "message")}
        sub = _BY_CODE.get(code, cls)
        exc = sub(str(err.get("message", "")), code, **details)
        return exc

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}: {self.message!r}, {self.details!r})"


class InvalidRequest(ProtocolError):
    code = ErrorCode.INVALID


class Unauthorized(ProtocolError):
    code = ErrorCode.UNAUTHORIZED


class Unavailable(ProtocolError):
    code = ErrorCode.UNAVAILABLE


class Timeout(ProtocolError):
    code = ErrorCode.WRITE_TIMEOUT


class Overloaded(ProtocolError):
    code = ErrorCode.OVERLOADED


class ServerError(ProtocolError):
    code = ErrorCode.SERVER_ERROR


_BY_CODE: dict[ErrorCode, type[ProtocolError]] = {
    ErrorCode.INVALID: InvalidRequest,
    ErrorCode.UNAUTHORIZED: Unauthorized,
    ErrorCode.UNAVAILABLE: Unavailable,
    ErrorCode.WRITE_TIMEOUT: Timeout,
    ErrorCode.READ_TIMEOUT: Timeout,
    ErrorCode.OVERLOADED: Overloaded,
    ErrorCode.SERVER_ERROR: ServerError,
}
