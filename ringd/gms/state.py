"""What gossip knows about one node: Cassandra's ``EndpointState``.

An endpoint state is a heartbeat ``(generation, version)`` plus application states, each a
``VersionedValue(value, version)``. The generation is chosen by the node when it starts (larger at
every start, e.g. seconds since the epoch kept monotonic); the versions come from one counter per
node, shared by the heartbeat and the application states, that only goes up within a generation.
So ``(generation, max_version)`` orders every piece of news about a node: a higher generation
replaces the whole state (the node restarted), and within a generation a higher version wins per
key.

Application state keys are the ``AppState`` names (``STATUS``, ``TOKENS``, ``DC``, ``RACK``,
``ADDRESS``, ``HOST_ID``, ``LOAD``, ``SCHEMA``, ``RELEASE_VERSION``); their values are validated.
Other keys are accepted, for forward compatibility, with plain scalar values or lists of them.

Wire form (CBOR-friendly: maps with text keys, arrays, integers, text):

    {"heartbeat": [generation, version],
     "states": {"STATUS": ["NORMAL", 7], "TOKENS": [[-9151..., 42, ...], 3], ...}}

Every value on the wire is a ``[value, version]`` pair; ``TOKENS`` is an array of signed 64-bit
integers. ``from_wire`` validates everything and raises ``ValueError`` (and only that) on malformed
input. Objects in this module are immutable: sequences are held as tuples and become arrays again
on the wire.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple, cast

MIN_INT64 = -(2**63)
MAX_INT64 = 2**63 - 1

MAX_ID_LENGTH = 256
MAX_KEY_LENGTH = 64
MAX_TEXT_LENGTH = 65536
MAX_TOKENS = 1024  # a node's num_tokens may be at most this (ringd.config)
MAX_LIST_LENGTH = 65536
MAX_APP_STATES = 256


class AppState(enum.StrEnum):
    """The application state keys ringd gossips (a subset of Cassandra's ``ApplicationState``)."""

    STATUS = "STATUS"
    TOKENS = "TOKENS"
    DC = "DC"
    RACK = "RACK"
    ADDRESS = "ADDRESS"
    HOST_ID = "HOST_ID"
    LOAD = "LOAD"
    SCHEMA = "SCHEMA"
    RELEASE_VERSION = "RELEASE_VERSION"
    CLOCK_OFFSET_MS = "CLOCK_OFFSET_MS"  # this node's clock minus the cluster's, as it measures
    REPLACES = "REPLACES"  # the host id of the dead node this one replaces (takes its tokens)


class Status(enum.StrEnum):
    """Values of the ``STATUS`` application state."""

    NORMAL = "NORMAL"
    JOINING = "JOINING"
    LEAVING = "LEAVING"
    LEFT = "LEFT"
    SHUTDOWN = "SHUTDOWN"  # stopped cleanly; back with a new generation when it restarts


_STATUSES: frozenset[str] = frozenset(s.value for s in Status)

#: Statuses of nodes that said they are gone: gossip marks them down at once and never alive
#: again in this generation (a restart brings a new generation and a new status).
DEAD_STATES: frozenset[str] = frozenset({Status.LEFT.value, Status.SHUTDOWN.value})


# ---------------------------------------------------------------------------------------------
# validation helpers


def _check_int(value: object, what: str, *, lo: int = 0, hi: int = MAX_INT64) -> int:
    if type(value) is not int:  # bool is an int subclass and is not welcome here
        raise ValueError(f"{what} must be an integer, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{what} out of range: {value}")
    return value


def _check_text(value: object, what: str, *, max_len: int, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text, not {type(value).__name__}")
    value = str(value)  # a plain str, also for StrEnum members
    if not value and not allow_empty:
        raise ValueError(f"{what} must not be empty")
    if len(value) > max_len:
        raise ValueError(f"{what} is too long ({len(value)} > {max_len} characters)")
    return value


def check_host_id(value: object) -> str:
    """Validate a host id (non-empty text); return it."""
    return _check_text(value, "host id", max_len=MAX_ID_LENGTH)


_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]{2,45}(%[A-Za-z0-9_.-]{1,32})?")


def check_address(value: object) -> str:
    """Validate a ``host:port`` address (IPv6 hosts in brackets); return it."""
    text = _check_text(value, "address", max_len=MAX_ID_LENGTH)
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"address must be host:port, not {text!r}")
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) <= 65535:
        raise ValueError(f"address {text!r} has an invalid port")
    if any(c.isspace() for c in host):
        raise ValueError(f"address {text!r} contains whitespace")
    if host.startswith("["):
        if not host.endswith("]") or not _IPV6.fullmatch(host[1:-1]):
            raise ValueError(f"address {text!r} has an invalid IPv6 host")
    elif ":" in host:
        raise ValueError(f"address {text!r}: put an IPv6 host in brackets, as [::1]:7000")
    elif not _HOSTNAME.fullmatch(host):
        raise ValueError(f"address {text!r} has an invalid host (letters, digits, . and - only)")
    return text


def _check_scalar(value: object, what: str) -> object:
    if isinstance(value, str):
        return _check_text(value, what, max_len=MAX_TEXT_LENGTH, allow_empty=True)
    if value is None or type(value) is bool:
        return value
    if type(value) is int:
        return _check_int(value, what, lo=MIN_INT64)
    if type(value) is float:
        if not math.isfinite(value):
            raise ValueError(f"{what} must be a finite number")
        return value
    raise ValueError(f"{what} has an unsupported type {type(value).__name__}")


def _check_status(value: object) -> str:
    text = _check_text(value, "STATUS", max_len=MAX_KEY_LENGTH)
    if text not in _STATUSES:
        raise ValueError(f"unknown STATUS {text!r} (expected one of {', '.join(Status)})")
    return text


def _check_tokens(value: object) -> tuple[int, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"TOKENS must be a list of integers, not {type(value).__name__}")
    if len(value) > MAX_TOKENS:
        raise ValueError(f"too many TOKENS ({len(value)} > {MAX_TOKENS})")
    tokens = tuple(_check_int(t, "token", lo=MIN_INT64) for t in value)
    if len(set(tokens)) != len(tokens):
        raise ValueError("TOKENS must not repeat a token")
    return tokens


def _check_name(value: object, what: str) -> str:
    return _check_text(value, what, max_len=MAX_ID_LENGTH)


def _check_version_text(value: object, what: str) -> str:
    return _check_text(value, what, max_len=MAX_ID_LENGTH, allow_empty=True)


_VALIDATORS: dict[str, Any] = {
    AppState.STATUS: _check_status,
    AppState.TOKENS: _check_tokens,
    AppState.DC: lambda v: _check_name(v, "DC"),
    AppState.RACK: lambda v: _check_name(v, "RACK"),
    AppState.ADDRESS: check_address,
    AppState.HOST_ID: check_host_id,
    AppState.REPLACES: check_host_id,
    AppState.LOAD: lambda v: _check_int(v, "LOAD"),
    AppState.SCHEMA: lambda v: _check_version_text(v, "SCHEMA"),
    AppState.RELEASE_VERSION: lambda v: _check_version_text(v, "RELEASE_VERSION"),
    AppState.CLOCK_OFFSET_MS: lambda v: _check_int(v, "CLOCK_OFFSET_MS", lo=MIN_INT64),
}


def check_app_key(key: object) -> str:
    """Validate an application state key (non-empty text); return it as a plain str."""
    return _check_text(key, "application state key", max_len=MAX_KEY_LENGTH)


def check_app_value(key: str, value: object) -> Any:
    """Validate (and normalise: lists become tuples) the value of application state ``key``."""
    validator = _VALIDATORS.get(key)
    if validator is not None:
        return validator(value)
    if isinstance(value, list | tuple):
        if len(value) > MAX_LIST_LENGTH:
            raise ValueError(f"application state {key} is too long")
        return tuple(_check_scalar(v, f"element of {key}") for v in value)
    return _check_scalar(value, f"application state {key}")


def _value_to_wire(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# ---------------------------------------------------------------------------------------------
# the state classes


@dataclass(frozen=True, slots=True)
class HeartBeatState:
    """The generation a node started with and the version of its latest heartbeat."""

    generation: int
    version: int

    def __post_init__(self) -> None:
        _check_int(self.generation, "generation")
        _check_int(self.version, "heartbeat version")


@dataclass(frozen=True, slots=True)
class VersionedValue:
    """One application state value and the version it was set at."""

    value: Any
    version: int


class GossipDigest(NamedTuple):
    """``(host_id, generation, max_version)``: what a node knows about an endpoint.

    On the wire a digest is the array ``[host_id, generation, max_version]``.
    """

    host_id: str
    generation: int
    max_version: int

    def to_wire(self) -> list[Any]:
        return [self.host_id, self.generation, self.max_version]

    @classmethod
    def from_wire(cls, obj: object) -> GossipDigest:
        if not isinstance(obj, list) or len(obj) != 3:
            raise ValueError("a gossip digest must be an array [host_id, generation, max_version]")
        return cls(
            check_host_id(obj[0]),
            _check_int(obj[1], "generation"),
            _check_int(obj[2], "max version"),
        )


@dataclass(frozen=True, eq=True)
class EndpointState:
    """Heartbeat and application states of one endpoint (immutable; updates make new objects)."""

    heartbeat: HeartBeatState
    app_states: Mapping[str, VersionedValue]

    def __post_init__(self) -> None:
        states = {str(key): vv for key, vv in self.app_states.items()}
        object.__setattr__(self, "app_states", MappingProxyType(states))

    __hash__ = None  # type: ignore[assignment]

    # -- reading --------------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self.heartbeat.generation

    @property
    def max_version(self) -> int:
        """The highest version of the heartbeat and of every application state."""
        top = self.heartbeat.version
        for vv in self.app_states.values():
            if vv.version > top:
                top = vv.version
        return top

    def get(self, key: str, default: Any = None) -> Any:
        """The value of application state ``key``, or ``default``."""
        vv = self.app_states.get(key)
        return default if vv is None else vv.value

    @property
    def status(self) -> str | None:
        return cast("str | None", self.get(AppState.STATUS))

    @property
    def tokens(self) -> tuple[int, ...]:
        return cast("tuple[int, ...]", self.get(AppState.TOKENS, ()))

    @property
    def address(self) -> str | None:
        return cast("str | None", self.get(AppState.ADDRESS))

    @property
    def host_id(self) -> str | None:
        return cast("str | None", self.get(AppState.HOST_ID))

    @property
    def replaces(self) -> str | None:
        return cast("str | None", self.get(AppState.REPLACES))

    @property
    def dc(self) -> str | None:
        return cast("str | None", self.get(AppState.DC))

    @property
    def rack(self) -> str | None:
        return cast("str | None", self.get(AppState.RACK))

    @property
    def load(self) -> int | None:
        return cast("int | None", self.get(AppState.LOAD))

    @property
    def schema(self) -> str | None:
        return cast("str | None", self.get(AppState.SCHEMA))

    @property
    def release_version(self) -> str | None:
        return cast("str | None", self.get(AppState.RELEASE_VERSION))

    @property
    def is_dead_state(self) -> bool:
        """Whether the node announced it is gone (STATUS LEFT, or SHUTDOWN until it restarts)."""
        return self.status in DEAD_STATES

    def values(self) -> dict[str, Any]:
        """The application state values without their versions."""
        return {key: vv.value for key, vv in self.app_states.items()}

    # -- deriving -------------------------------------------------------------------------------

    def delta_since(self, version: int) -> EndpointState | None:
        """The heartbeat plus the application states newer than ``version``; None if none is.

        As Cassandra's ``getStateForVersionBiggerThan``, the (current) heartbeat is always part of
        a delta, so the receiver can tell the generation.
        """
        newer = {k: vv for k, vv in self.app_states.items() if vv.version > version}
        if not newer and self.heartbeat.version <= version:
            return None
        return EndpointState(self.heartbeat, newer)

    def merged(
        self, heartbeat: HeartBeatState, updates: Mapping[str, VersionedValue]
    ) -> EndpointState:
        """A copy with ``heartbeat`` and the application states in ``updates`` replaced."""
        states = dict(self.app_states)
        states.update(updates)
        return EndpointState(heartbeat, states)

    # -- wire -----------------------------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        return {
            "heartbeat": [self.heartbeat.generation, self.heartbeat.version],
            "states": {
                key: [_value_to_wire(vv.value), vv.version] for key, vv in self.app_states.items()
            },
        }

    @classmethod
    def from_wire(cls, obj: object) -> EndpointState:
        """Parse and validate a wire endpoint state; raise ValueError if it is malformed."""
        if not isinstance(obj, dict):
            raise ValueError("an endpoint state must be a map")
        if set(obj) != {"heartbeat", "states"}:
            raise ValueError("an endpoint state must have exactly the keys heartbeat and states")
        hb = obj["heartbeat"]
        if not isinstance(hb, list) or len(hb) != 2:
            raise ValueError("heartbeat must be an array [generation, version]")
        heartbeat = HeartBeatState(
            _check_int(hb[0], "generation"), _check_int(hb[1], "heartbeat version")
        )
        raw_states = obj["states"]
        if not isinstance(raw_states, dict):
            raise ValueError("states must be a map")
        if len(raw_states) > MAX_APP_STATES:
            raise ValueError(f"too many application states ({len(raw_states)})")
        states: dict[str, VersionedValue] = {}
        for raw_key, pair in raw_states.items():
            key = check_app_key(raw_key)
            if not isinstance(pair, list) or len(pair) != 2:
                raise ValueError(f"application state {key} must be an array [value, version]")
            value = check_app_value(key, pair[0])
            states[key] = VersionedValue(value, _check_int(pair[1], f"version of {key}"))
        return cls(heartbeat, states)


def states_to_wire(states: Mapping[str, EndpointState]) -> dict[str, Any]:
    """``{host_id: wire endpoint state}``."""
    return {host_id: state.to_wire() for host_id, state in states.items()}


def states_from_wire(obj: object, *, max_endpoints: int = 65536) -> dict[str, EndpointState]:
    """Parse ``{host_id: wire endpoint state}``; raise ValueError if anything is malformed.

    A ``HOST_ID`` application state, when present, must equal the host id it is filed under.
    """
    if not isinstance(obj, dict):
        raise ValueError("states must be a map of host id to endpoint state")
    if len(obj) > max_endpoints:
        raise ValueError(f"too many endpoint states ({len(obj)})")
    out: dict[str, EndpointState] = {}
    for raw_host_id, raw_state in obj.items():
        host_id = check_host_id(raw_host_id)
        state = EndpointState.from_wire(raw_state)
        claimed = state.host_id
        if claimed is not None and claimed != host_id:
            raise ValueError(f"endpoint state filed under {host_id!r} claims HOST_ID {claimed!r}")
        out[host_id] = state
    return out


def digests_to_wire(digests: Iterable[GossipDigest]) -> list[list[Any]]:
    return [d.to_wire() for d in digests]


def digests_from_wire(obj: object, *, max_endpoints: int = 65536) -> list[GossipDigest]:
    """Parse an array of digests; raise ValueError if malformed or a host id repeats."""
    if not isinstance(obj, list):
        raise ValueError("digests must be an array")
    if len(obj) > max_endpoints:
        raise ValueError(f"too many digests ({len(obj)})")
    digests = [GossipDigest.from_wire(item) for item in obj]
    if len({d.host_id for d in digests}) != len(digests):
        raise ValueError("digests name the same host id more than once")
    return digests
