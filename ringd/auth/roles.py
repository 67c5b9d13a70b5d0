"""Client roles: kinds, what each may do, the password store, and the failed-login limiter.

- Kinds: ``admin`` (everything a client may do), ``readwrite`` (data, views), ``readonly`` (reads,
  views). ``VERB_CLASSES`` gives every verb of ``ringd.protocol.messages.VERBS`` a class and
  ``allowed`` says whether a kind may use a verb; an unknown verb is refused.
- ``RoleStore``: roles in one CBOR file (``system/roles.cbor``), rewritten whole with
  ``atomic_write`` and mode 0600 on every change. A role holds its kind, an scrypt hash of its
  password with a per-role random salt and the scrypt parameters used (so they can change later),
  and its creation time (Unix seconds).
- ``LoginLimiter``: a token bucket per remote host for failed logins.

Names are 1-64 characters of ``[A-Za-z0-9_.-]``; passwords 1-1024 bytes (UTF-8 for text).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import cbor2

from ringd.fsutil import atomic_write
from ringd.protocol.errors import InvalidRequest

ADMIN = "admin"
READWRITE = "readwrite"
READONLY = "readonly"
KINDS = (ADMIN, READWRITE, READONLY)


class VerbClass(StrEnum):
    CONNECTION = "connection"  # hello, ping: any authenticated client
    DATA_READ = "data-read"
    DATA_WRITE = "data-write"
    SCHEMA = "schema"  # keyspace changes
    ADMIN_VIEW = "admin-view"  # read-only views of the node and cluster
    ADMIN_CHANGE = "admin-change"  # flush, compaction, verification
    ROLES = "roles"  # role management: admins only
    TEST_HOOK = "test-hook"  # fault injection; the node must also have been started with hooks
    INTERNODE = "internode"  # peer verbs: never a client's


_C = VerbClass
VERB_CLASSES: dict[str, VerbClass] = {
    "hello": _C.CONNECTION,
    "ping": _C.CONNECTION,
    "auth": _C.INTERNODE,
    "get": _C.DATA_READ,
    "scan": _C.DATA_READ,
    "put": _C.DATA_WRITE,
    "delete": _C.DATA_WRITE,
    "keyspace_create": _C.SCHEMA,
    "keyspace_alter": _C.SCHEMA,
    "keyspace_drop": _C.SCHEMA,
    "keyspace_list": _C.ADMIN_VIEW,
    "status": _C.ADMIN_VIEW,
    "info": _C.ADMIN_VIEW,
    "ring": _C.ADMIN_VIEW,
    "describecluster": _C.ADMIN_VIEW,
    "describering": _C.ADMIN_VIEW,
    "getendpoints": _C.ADMIN_VIEW,
    "gossipinfo": _C.ADMIN_VIEW,
    "proxyhistograms": _C.ADMIN_VIEW,
    "tpstats": _C.ADMIN_VIEW,
    "tablehistograms": _C.ADMIN_VIEW,
    "netstats": _C.ADMIN_VIEW,
    "staleness": _C.ADMIN_VIEW,
    "replica_latencies": _C.ADMIN_VIEW,
    "compactionstats": _C.ADMIN_VIEW,
    "tablestats": _C.ADMIN_VIEW,
    "setlogginglevel": _C.ADMIN_CHANGE,
    "getlogginglevels": _C.ADMIN_VIEW,
    "toppartitions": _C.ADMIN_VIEW,
    "flush": _C.ADMIN_CHANGE,
    "compact": _C.ADMIN_CHANGE,
    "cleanup": _C.ADMIN_CHANGE,
    "decommission": _C.ADMIN_CHANGE,
    "removenode": _C.ADMIN_CHANGE,
    "verify": _C.ADMIN_CHANGE,
    "hints_status": _C.ADMIN_VIEW,
    "hints_pending": _C.ADMIN_VIEW,
    "hints_set": _C.ADMIN_CHANGE,
    "hints_truncate": _C.ADMIN_CHANGE,
    "repair_start": _C.ADMIN_CHANGE,
    "repair_cancel": _C.ADMIN_CHANGE,
    "repair_session": _C.ADMIN_VIEW,
    "repair_sessions": _C.ADMIN_VIEW,
    "repair_state": _C.ADMIN_VIEW,
    "assassinate": _C.ADMIN_CHANGE,
    "role_create": _C.ROLES,
    "role_alter": _C.ROLES,
    "role_drop": _C.ROLES,
    "role_list": _C.ROLES,
    "test_filter": _C.TEST_HOOK,
    "test_clock": _C.TEST_HOOK,
    "test_apply_delay": _C.TEST_HOOK,
    "mutate": _C.INTERNODE,
    "mutate_batch": _C.INTERNODE,
    "mutate_hinted": _C.INTERNODE,
    "read_hinted": _C.INTERNODE,
    "read_local": _C.INTERNODE,
    "read_local_batch": _C.INTERNODE,
    "scan_local": _C.INTERNODE,
    "gossip_syn": _C.INTERNODE,
    "gossip_ack2": _C.INTERNODE,
    "schema_pull": _C.INTERNODE,
    "schema_push": _C.INTERNODE,
    "repair_validate": _C.INTERNODE,
    "repair_leaves": _C.INTERNODE,
    "repair_rows": _C.INTERNODE,
    "repair_apply": _C.INTERNODE,
    "repair_release": _C.INTERNODE,
    "stream_pull": _C.INTERNODE,
    "stream_request": _C.INTERNODE,
}

_VIEWER = frozenset({_C.CONNECTION, _C.DATA_READ, _C.ADMIN_VIEW})
KIND_CLASSES: dict[str, frozenset[VerbClass]] = {
    READONLY: _VIEWER,
    READWRITE: _VIEWER | {_C.DATA_WRITE},
    ADMIN: frozenset(VerbClass) - {_C.INTERNODE},
}


def allowed(role_kind: str, verb_name: str) -> bool:
    """Whether a client of ``role_kind`` may use ``verb_name`` (unknown kinds and verbs: no)."""
    verb_class = VERB_CLASSES.get(verb_name)
    return verb_class is not None and verb_class in KIND_CLASSES.get(role_kind, frozenset())


_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_PASSWORD_BYTES = 1024
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}  # parameters for new and altered passwords


class RoleStoreError(Exception):
    """The roles file cannot be read or is damaged; the message is one line naming it."""


def check_name(name: object) -> str:
    """``name`` if it is a valid role name, else ``InvalidRequest``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidRequest(
            f"role name {name!r} is invalid: use 1-64 characters of letters, digits, _ . -"
        )
    return name


def _password_bytes(password: str | bytes) -> bytes:
    raw = password.encode() if isinstance(password, str) else password
    if not isinstance(raw, bytes) or not 1 <= len(raw) <= MAX_PASSWORD_BYTES:
        raise InvalidRequest(f"a password must be 1-{MAX_PASSWORD_BYTES} bytes")
    return raw


def _scrypt(password: bytes, salt: bytes, params: dict[str, int]) -> bytes:
    n, r, p, dklen = params["n"], params["r"], params["p"], params["dklen"]
    return hashlib.scrypt(
        password, salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=128 * r * (n + p + 2) + (1 << 20)
    )


def _params_ok(params: object) -> bool:
    if not isinstance(params, dict) or set(params) != set(SCRYPT):
        return False
    if not all(type(v) is int for v in params.values()):
        return False
    n, r, p, dklen = params["n"], params["r"], params["p"], params["dklen"]
    return (
        2 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16 and 16 <= dklen <= 64
    )


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    kind: str
    salt: bytes
    hash: bytes
    scrypt: dict[str, int]
    created: float

    def to_record(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "salt": self.salt,
            "hash": self.hash,
            "scrypt": self.scrypt,
            "created": self.created,
        }


def _make_role(name: str, kind: str, password: bytes, created: float) -> Role:
    salt = secrets.token_bytes(16)
    params = dict(SCRYPT)
    return Role(name, kind, salt, _scrypt(password, salt, params), params, created)


class RoleStore:
    """Roles kept in one file; every change is written before it returns."""

    FILE_NAME = "roles.cbor"

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._roles: dict[str, Role] = self._load() if path.exists() else {}
        self._dummy_salt = secrets.token_bytes(16)

    def create(self, name: str, kind: str, password: str | bytes) -> None:
        """Add a role; ``InvalidRequest`` if the name is taken or anything is malformed."""
        check_name(name)
        if kind not in KINDS:
            raise InvalidRequest(f"role kind must be one of {', '.join(KINDS)}, not {kind!r}")
        raw = _password_bytes(password)
        if name in self._roles:
            raise InvalidRequest(f"role {name!r} already exists")
        self._roles[name] = _make_role(name, kind, raw, self._clock())
        self._save()

    def alter(self, name: str, password: str | bytes) -> None:
        """Give a role a new password (hashed with the current parameters and a new salt)."""
        role = self._get(name)
        raw = _password_bytes(password)
        self._roles[name] = _make_role(name, role.kind, raw, role.created)
        self._save()

    def drop(self, name: str) -> None:
        """Remove a role; the last admin cannot be dropped (nobody could manage roles after)."""
        role = self._get(name)
        if role.kind == ADMIN and sum(r.kind == ADMIN for r in self._roles.values()) == 1:
            raise InvalidRequest(f"role {name!r} is the last admin; create another admin first")
        del self._roles[name]
        self._save()

    def list(self) -> list[dict[str, Any]]:
        """Every role's name, kind and creation time, by name (never a hash)."""
        return [
            {"name": r.name, "kind": r.kind, "created": r.created}
            for r in sorted(self._roles.values(), key=lambda r: r.name)
        ]

    def verify(self, name: str, password: str | bytes) -> str | None:
        """The role's kind if the password is right, else None; always costs one scrypt."""
        role = self._roles.get(name) if isinstance(name, str) else None
        try:
            raw = _password_bytes(password)
        except InvalidRequest:
            raw, role = b"\0", None
        if role is None:
            _scrypt(raw, self._dummy_salt, SCRYPT)
            return None
        ok = hmac.compare_digest(_scrypt(raw, role.salt, role.scrypt), role.hash)
        return role.kind if ok else None

    def _get(self, name: str) -> Role:
        role = self._roles.get(check_name(name))
        if role is None:
            raise InvalidRequest(f"role {name!r} does not exist")
        return role

    def _save(self) -> None:
        records = {name: role.to_record() for name, role in self._roles.items()}
        atomic_write(self.path, cbor2.dumps({"version": 1, "roles": records}), mode=0o600)

    def _load(self) -> dict[str, Role]:
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise RoleStoreError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            doc = cbor2.loads(raw)
        except Exception as exc:  # cbor2 raises several kinds on garbage
            raise RoleStoreError(f"{self.path} is damaged (not CBOR: {exc})") from None
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise RoleStoreError(f"{self.path} is damaged or of an unknown version")
        records = doc.get("roles")
        if not isinstance(records, dict):
            raise RoleStoreError(f"{self.path} is damaged (no roles map)")
        roles = {}
        for name, rec in records.items():
            if not (
                isinstance(name, str)
                and _NAME.fullmatch(name)
                and isinstance(rec, dict)
                and rec.get("kind") in KINDS
                and isinstance(rec.get("salt"), bytes)
                and isinstance(rec.get("hash"), bytes)
                and _params_ok(rec.get("scrypt"))
                and len(rec["hash"]) == rec["scrypt"]["dklen"]
                and isinstance(rec.get("created"), int | float)
            ):
                raise RoleStoreError(f"{self.path} is damaged (bad role {name!r})")
            roles[name] = Role(
                name, rec["kind"], rec["salt"], rec["hash"], rec["scrypt"], rec["created"]
            )
        return roles


class LoginLimiter:
    """Failed logins per remote host: ``burst`` at once, then one per ``1/refill_per_s`` seconds.

    Key it by host only (not host:port), or every new connection would get a fresh bucket. At most
    ``max_hosts`` hosts are tracked; hosts whose bucket is full again are forgotten first.
    """

    def __init__(
        self,
        *,
        burst: int = 5,
        refill_per_s: float = 1.0,
        max_hosts: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.refill_per_s = refill_per_s
        self.max_hosts = max_hosts
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # host -> (tokens, at)

    def retry_after(self, host: str) -> float:
        """Seconds until ``host`` may try a login again; 0.0 if it may now."""
        tokens = self._tokens(host)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.refill_per_s

    def allow(self, host: str) -> bool:
        """Whether ``host`` may try a login now (check before verifying the password)."""
        return self.retry_after(host) == 0.0

    def failed(self, host: str) -> None:
        """Count one failed login from ``host``."""
        tokens = max(self._tokens(host) - 1.0, 0.0)
        self._buckets.pop(host, None)
        if len(self._buckets) >= self.max_hosts:
            self._prune()
        self._buckets[host] = (tokens, self._clock())

    def _tokens(self, host: str) -> float:
        entry = self._buckets.get(host)
        if entry is None:
            return float(self.burst)
        tokens, at = entry
        return min(float(self.burst), tokens + (self._clock() - at) * self.refill_per_s)

    def _prune(self) -> None:
        for host in [h for h in self._buckets if self._tokens(h) >= self.burst]:
            del self._buckets[host]
        while len(self._buckets) >= self.max_hosts:  # the oldest failures go first
            del self._buckets[next(iter(self._buckets))]
