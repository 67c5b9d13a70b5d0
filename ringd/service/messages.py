"""Typed peer messages of the data and schema verbs (their wire forms are in docs/protocol.md).

Each is a small frozen class: ``from_wire`` validates what a peer sent (types, keys of at most
``MAX_KEY_BYTES``, rows through ``Row.from_wire``, clocks and tokens as 64-bit integers) and
raises ``InvalidRequest`` with the verb's message prefix (``malformed mutation: ...``);
``to_wire`` gives the map that goes on the wire. The verb table (``ringd.protocol.messages``)
names the request and response class of each verb.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ringd.db.cells import Row
from ringd.protocol.errors import InvalidRequest
from ringd.schema import Keyspace
from ringd.service.requests import MAX_KEY_BYTES

Cursor = tuple[int, bytes | None]
_MAX_U63 = 1 << 63


def _malformed(what: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"malformed {what}: {why}")


def _map(args: object, what: str) -> dict[str, Any]:
    if not isinstance(args, dict):
        raise _malformed(what, "arguments must be a map")
    return args


def _text(m: dict[str, Any], name: str, what: str) -> str:
    value = m.get(name)
    if type(value) is not str:
        raise _malformed(what, f"{name} must be text")
    return value


def _key(value: object, what: str) -> bytes:
    if type(value) is not bytes or len(value) > MAX_KEY_BYTES:
        raise _malformed(what, f"key must be bytes of at most {MAX_KEY_BYTES}")
    return value


def _clock(m: dict[str, Any], name: str, what: str) -> int:
    """An optional non-negative 64-bit clock reading (µs); 0 when absent."""
    value = m.get(name, 0)
    if type(value) is not int or not 0 <= value < _MAX_U63:
        raise _malformed(what, f"{name} must be a non-negative integer below 2**63")
    return value


def _token(value: object, what: str, name: str) -> int:
    if type(value) is not int or not -_MAX_U63 <= value < _MAX_U63:
        raise _malformed(what, f"{name} must be a 64-bit token")
    return value


def _flag(m: dict[str, Any], name: str, what: str) -> bool:
    """An optional boolean; False when absent."""
    value = m.get(name, False)
    if type(value) is not bool:
        raise _malformed(what, f"{name} must be true or false")
    return value


def _row(raw: object, what: str) -> Row:
    try:
        return Row.from_wire(raw)
    except ValueError as exc:
        raise _malformed(what, str(exc)) from None


# ---- mutate -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MutateRequest:
    ks: str
    key: bytes
    row: Row
    hlc: int = 0
    trace: bool = False  # a traced request: the response carries the replica's events

    @classmethod
    def from_wire(cls, args: object) -> MutateRequest:
        m = _map(args, "mutation")
        return cls(
            _text(m, "ks", "mutation"),
            _key(m.get("key"), "mutation"),
            _row(m.get("row"), "mutation"),
            _clock(m, "hlc", "mutation"),
            "trace" in m and _flag(m, "trace", "mutation"),
        )

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"ks": self.ks, "key": self.key, "row": self.row.to_wire()}
        wire["hlc"] = self.hlc
        if self.trace:
            wire["trace"] = True
        return wire


@dataclass(frozen=True, slots=True)
class MutateHintedRequest:
    """Sloppy quorum: a write for ``for_host`` (a down replica) that a live node past it holds
    as a hint, to hand off when it is back. The answer is ``{}``."""

    ks: str
    key: bytes
    row: Row
    for_host: str

    @classmethod
    def from_wire(cls, args: object) -> MutateHintedRequest:
        m = _map(args, "hinted mutation")
        host = _text(m, "for_host", "hinted mutation")
        if not 0 < len(host) <= 64:
            raise _malformed("hinted mutation", "for_host must be a host id")
        return cls(
            _text(m, "ks", "hinted mutation"),
            _key(m.get("key"), "hinted mutation"),
            _row(m.get("row"), "hinted mutation"),
            host,
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "ks": self.ks,
            "key": self.key,
            "row": self.row.to_wire(),
            "for_host": self.for_host,
        }


@dataclass(frozen=True, slots=True)
class MutateResponse:
    hlc: int

    @classmethod
    def from_wire(cls, value: object) -> MutateResponse:
        return cls(_clock(_map(value, "mutate response"), "hlc", "mutate response"))

    def to_wire(self) -> dict[str, Any]:
        return {"hlc": self.hlc}


# ---- read_local -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadLocalRequest:
    ks: str
    key: bytes
    digest: bool = False
    trace: bool = False  # a traced request: the response carries the replica's events

    @classmethod
    def from_wire(cls, args: object) -> ReadLocalRequest:
        m = _map(args, "read")
        return cls(
            _text(m, "ks", "read"),
            _key(m.get("key"), "read"),
            _flag(m, "digest", "read"),
            "trace" in m and _flag(m, "trace", "read"),
        )

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"ks": self.ks, "key": self.key, "digest": self.digest}
        if self.trace:
            wire["trace"] = True
        return wire


@dataclass(frozen=True, slots=True)
class ReadLocalResponse:
    """The row (``digest`` None), or only its digest (``row`` None)."""

    row: Row | None
    digest: bytes | None
    hlc: int

    @classmethod
    def from_wire(cls, value: object, digest_only: bool) -> ReadLocalResponse:
        what = "read_local response"
        m = _map(value, what)
        hlc = _clock(m, "hlc", what)
        if digest_only:
            digest = m.get("digest")
            if type(digest) is not bytes:
                raise _malformed(what, "digest must be bytes")
            return cls(None, digest, hlc)
        raw = m.get("row")
        return cls(None if raw is None else _row(raw, what), None, hlc)

    def to_wire(self) -> dict[str, Any]:
        if self.digest is not None:
            return {"digest": self.digest, "hlc": self.hlc}
        return {"row": None if self.row is None else self.row.to_wire(), "hlc": self.hlc}


# ---- scan_local -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScanLocalRequest:
    ks: str
    after: Cursor  # (token, key): rows strictly after it; key None: after every row of token
    end: int
    limit: int

    @classmethod
    def from_wire(cls, args: object) -> ScanLocalRequest:
        m = _map(args, "scan")
        after = m.get("after")
        if not isinstance(after, list) or len(after) != 2:
            raise _malformed("scan", "after must be [token, key]")
        key = None if after[1] is None else _key(after[1], "scan")
        limit = m.get("limit")
        if type(limit) is not int or limit < 1:
            raise _malformed("scan", "limit must be a positive integer")
        return cls(
            _text(m, "ks", "scan"),
            (_token(after[0], "scan", "after token"), key),
            _token(m.get("end"), "scan", "end"),
            limit,
        )

    def to_wire(self) -> dict[str, Any]:
        return {"ks": self.ks, "after": list(self.after), "end": self.end, "limit": self.limit}


@dataclass(frozen=True, slots=True)
class ScanLocalResponse:
    rows: list[tuple[int, bytes, Row]]
    full: bool  # stopped at the limit or the byte budget: more rows may follow

    @classmethod
    def from_wire(cls, value: object, limit: int) -> ScanLocalResponse:
        what = "scan_local response"
        m = _map(value, what)
        raw = m.get("rows")
        if not isinstance(raw, list):
            raise _malformed(what, "rows must be a list")
        rows = []
        for item in raw:
            if not isinstance(item, list) or len(item) != 3:
                raise _malformed(what, "a row must be [token, key, row]")
            rows.append((_token(item[0], what, "token"), _key(item[1], what), _row(item[2], what)))
        full = m.get("full", len(rows) >= limit)  # an older node sends no "full"
        if type(full) is not bool:
            raise _malformed(what, "full must be true or false")
        return cls(rows, full)

    def to_wire(self) -> dict[str, Any]:
        return {"rows": [[t, k, r.to_wire()] for t, k, r in self.rows], "full": self.full}


# ---- schema -----------------------------------------------------------------------------------


def _keyspaces(raw: object) -> tuple[Keyspace, ...]:
    if not isinstance(raw, list):
        raise InvalidRequest("keyspaces must be a list")
    return tuple(Keyspace.from_wire(d) for d in raw)


@dataclass(frozen=True, slots=True)
class SchemaPushRequest:
    """Keyspace definitions to merge; a definition that fails validation fails them all."""

    keyspaces: tuple[Keyspace, ...]

    @classmethod
    def from_wire(cls, args: object) -> SchemaPushRequest:
        return cls(_keyspaces(_map(args, "schema push").get("keyspaces", [])))

    def to_wire(self) -> dict[str, Any]:
        return {"keyspaces": [k.to_wire() for k in self.keyspaces]}


@dataclass(frozen=True, slots=True)
class SchemaPushResponse:
    version: str

    @classmethod
    def from_wire(cls, value: object) -> SchemaPushResponse:
        version = _map(value, "schema_push response").get("version")
        if type(version) is not str:
            raise _malformed("schema_push response", "version must be text")
        return cls(version)

    def to_wire(self) -> dict[str, Any]:
        return {"version": self.version}


@dataclass(frozen=True, slots=True)
class SchemaPullRequest:
    """No arguments."""

    @classmethod
    def from_wire(cls, args: object) -> SchemaPullRequest:
        _map(args, "schema pull")
        return cls()

    def to_wire(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class SchemaPullResponse:
    """Every definition the node holds, dropped ones included."""

    keyspaces: tuple[Keyspace, ...]

    @classmethod
    def from_wire(cls, value: object) -> SchemaPullResponse:
        return cls(_keyspaces(_map(value, "schema_pull response").get("keyspaces", [])))

    def to_wire(self) -> dict[str, Any]:
        return {"keyspaces": [k.to_wire() for k in self.keyspaces]}
