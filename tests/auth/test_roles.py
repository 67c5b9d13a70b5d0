"""Client roles: every verb has a class, each kind may do what it should and nothing more, the
store keeps only scrypt hashes across reopening, and failed logins are rate-limited per host."""

from __future__ import annotations

import stat
from pathlib import Path

import cbor2
import pytest

from ringd.auth import roles
from ringd.auth.roles import (
    ADMIN,
    READONLY,
    READWRITE,
    VERB_CLASSES,
    LoginLimiter,
    RoleStore,
    RoleStoreError,
    VerbClass,
    allowed,
)
from ringd.protocol.errors import InvalidRequest
from ringd.protocol.messages import PEER, VERBS

# -- verbs and kinds --


def test_every_verb_has_a_class_and_the_table_names_no_other_verbs() -> None:
    assert set(VERB_CLASSES) == set(VERBS)


def test_peer_only_verbs_are_internode_and_no_client_may_use_them() -> None:
    for name, verb in VERBS.items():
        peer_only = verb.roles == {PEER}
        assert (VERB_CLASSES[name] is VerbClass.INTERNODE) == peer_only, name
        if peer_only:
            assert not any(allowed(kind, name) for kind in roles.KINDS), name


@pytest.mark.parametrize(
    ("verb", "admin", "readwrite", "readonly"),
    [
        ("hello", True, True, True),
        ("ping", True, True, True),
        ("get", True, True, True),
        ("scan", True, True, True),
        ("status", True, True, True),
        ("keyspace_list", True, True, True),
        ("put", True, True, False),
        ("delete", True, True, False),
        ("keyspace_create", True, False, False),
        ("keyspace_alter", True, False, False),
        ("keyspace_drop", True, False, False),
        ("flush", True, False, False),
        ("compact", True, False, False),
        ("test_clock", True, False, False),
        ("test_filter", True, False, False),
        ("mutate", False, False, False),
        ("gossip_ack2", False, False, False),
    ],
)
def test_what_each_kind_may_do(verb: str, admin: bool, readwrite: bool, readonly: bool) -> None:
    assert (allowed(ADMIN, verb), allowed(READWRITE, verb), allowed(READONLY, verb)) == (
        admin,
        readwrite,
        readonly,
    )


def test_unknown_kinds_and_verbs_are_refused() -> None:
    assert not allowed("superuser", "get")
    assert not allowed(ADMIN, "drop_everything")


# -- the store --


def test_roles_survive_reopening_and_verify(tmp_path: Path) -> None:
    path = tmp_path / "roles.cbor"
    store = RoleStore(path, clock=lambda: 1_700_000_000.0)
    store.create("ops", ADMIN, "correct horse")
    store.create("app", READWRITE, b"\x00binary\xff")
    store.create("viewer", READONLY, "ünïcode")
    again = RoleStore(path)
    assert again.verify("ops", "correct horse") == ADMIN
    assert again.verify("app", b"\x00binary\xff") == READWRITE
    assert again.verify("viewer", "ünïcode") == READONLY
    assert again.list() == [
        {"name": "app", "kind": READWRITE, "created": 1_700_000_000.0},
        {"name": "ops", "kind": ADMIN, "created": 1_700_000_000.0},
        {"name": "viewer", "kind": READONLY, "created": 1_700_000_000.0},
    ]


def test_wrong_passwords_and_unknown_roles_verify_to_none(tmp_path: Path) -> None:
    store = RoleStore(tmp_path / "roles.cbor")
    store.create("ops", ADMIN, "correct horse")
    assert store.verify("ops", "correct horsf") is None
    assert store.verify("ops", "") is None
    assert store.verify("ops", "x" * 2000) is None
    assert store.verify("nobody", "correct horse") is None
    assert store.verify("bad name!", "correct horse") is None


def test_only_salted_scrypt_hashes_are_stored(tmp_path: Path) -> None:
    path = tmp_path / "roles.cbor"
    store = RoleStore(path)
    store.create("a", ADMIN, "same password")
    store.create("b", ADMIN, "same password")
    raw = path.read_bytes()
    assert b"same password" not in raw
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = cbor2.loads(raw)
    a, b = doc["roles"]["a"], doc["roles"]["b"]
    assert a["scrypt"] == {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
    assert a["salt"] != b["salt"] and a["hash"] != b["hash"]
    import hashlib

    assert a["hash"] == hashlib.scrypt(
        b"same password", salt=a["salt"], n=2**14, r=8, p=1, dklen=32
    )


def test_stored_parameters_are_used_so_they_can_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "roles.cbor"
    monkeypatch.setattr(roles, "SCRYPT", {"n": 2**10, "r": 4, "p": 1, "dklen": 24})
    RoleStore(path).create("old", READONLY, "pw")
    monkeypatch.undo()
    store = RoleStore(path)
    assert store.verify("old", "pw") == READONLY
    store.alter("old", "pw2")  # re-hashed with today's parameters
    assert cbor2.loads(path.read_bytes())["roles"]["old"]["scrypt"] == roles.SCRYPT
    assert RoleStore(path).verify("old", "pw2") == READONLY
    assert store.verify("old", "pw") is None


def test_alter_and_drop(tmp_path: Path) -> None:
    path = tmp_path / "roles.cbor"
    store = RoleStore(path)
    store.create("ops", ADMIN, "one")
    store.create("app", READWRITE, "two")
    store.alter("app", "three")
    store.drop("app")
    again = RoleStore(path)
    assert [r["name"] for r in again.list()] == ["ops"]
    assert again.verify("app", "three") is None
    with pytest.raises(InvalidRequest, match="role 'app' does not exist"):
        again.drop("app")
    with pytest.raises(InvalidRequest, match="does not exist"):
        again.alter("app", "x")


def test_the_last_admin_cannot_be_dropped(tmp_path: Path) -> None:
    store = RoleStore(tmp_path / "roles.cbor")
    store.create("ops", ADMIN, "pw")
    with pytest.raises(InvalidRequest, match="last admin"):
        store.drop("ops")
    store.create("ops2", ADMIN, "pw")
    store.drop("ops")
    assert [r["name"] for r in store.list()] == ["ops2"]


@pytest.mark.parametrize(
    ("name", "kind", "password", "message"),
    [
        ("", ADMIN, "pw", "role name '' is invalid"),
        ("a" * 65, ADMIN, "pw", "is invalid"),
        ("has space", ADMIN, "pw", "is invalid"),
        ("semi;colon", ADMIN, "pw", "is invalid"),
        ("ok", "root", "pw", "role kind must be one of admin, readwrite, readonly"),
        ("ok", ADMIN, "", "a password must be 1-1024 bytes"),
        ("ok", ADMIN, "é" * 513, "a password must be 1-1024 bytes"),
    ],
)
def test_bad_roles_are_refused_with_one_line(
    tmp_path: Path, name: str, kind: str, password: str, message: str
) -> None:
    store = RoleStore(tmp_path / "roles.cbor")
    with pytest.raises(InvalidRequest, match=message):
        store.create(name, kind, password)
    assert store.list() == []
    assert not (tmp_path / "roles.cbor").exists()


def test_boundary_names_and_passwords_are_accepted(tmp_path: Path) -> None:
    store = RoleStore(tmp_path / "roles.cbor")
    store.create("A" * 64, READONLY, "x" * 1024)
    store.create("a.b-c_9", READONLY, "x")
    assert store.verify("A" * 64, "x" * 1024) == READONLY


def test_a_duplicate_role_is_refused(tmp_path: Path) -> None:
    store = RoleStore(tmp_path / "roles.cbor")
    store.create("ops", ADMIN, "one")
    with pytest.raises(InvalidRequest, match="role 'ops' already exists"):
        store.create("ops", READONLY, "two")
    assert store.verify("ops", "one") == ADMIN


def test_a_missing_role_costs_one_scrypt_like_a_present_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RoleStore(tmp_path / "roles.cbor")
    store.create("ops", ADMIN, "pw")
    calls: list[dict[str, int]] = []
    real = roles._scrypt

    def counting(password: bytes, salt: bytes, params: dict[str, int]) -> bytes:
        calls.append(params)
        return real(password, salt, params)

    monkeypatch.setattr(roles, "_scrypt", counting)
    for name, password in [("ops", "pw"), ("ops", "no"), ("nobody", "pw"), ("ops", "")]:
        calls.clear()
        store.verify(name, password)
        assert calls == [roles.SCRYPT], (name, password)


@pytest.mark.parametrize(
    "doc",
    [
        b"not cbor at all \xff",
        cbor2.dumps([1, 2]),
        cbor2.dumps({"version": 2, "roles": {}}),
        cbor2.dumps({"version": 1}),
        cbor2.dumps({"version": 1, "roles": {"ops": {"kind": "root"}}}),
        cbor2.dumps(
            {
                "version": 1,
                "roles": {
                    "ops": {
                        "kind": ADMIN,
                        "salt": b"s",
                        "hash": b"h" * 32,
                        "scrypt": {"n": 2**30, "r": 8, "p": 1, "dklen": 32},  # would eat memory
                        "created": 0,
                    }
                },
            }
        ),
    ],
)
def test_a_damaged_roles_file_stops_with_one_line(tmp_path: Path, doc: bytes) -> None:
    path = tmp_path / "roles.cbor"
    path.write_bytes(doc)
    with pytest.raises(RoleStoreError) as info:
        RoleStore(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


# -- the login limiter --


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_failures_then_one_per_second() -> None:
    clock = FakeClock()
    limiter = LoginLimiter(clock=clock)
    for _ in range(5):
        assert limiter.allow("10.0.0.1")
        limiter.failed("10.0.0.1")
    assert not limiter.allow("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == pytest.approx(1.0)
    assert limiter.allow("10.0.0.2")  # other hosts are not affected
    clock.now += 0.5
    assert not limiter.allow("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.allow("10.0.0.1")
    limiter.failed("10.0.0.1")
    assert not limiter.allow("10.0.0.1")
    clock.now += 5.0  # the bucket refills to the burst, no further
    for _ in range(5):
        assert limiter.allow("10.0.0.1")
        limiter.failed("10.0.0.1")
    assert not limiter.allow("10.0.0.1")


def test_the_limiter_tracks_a_bounded_number_of_hosts() -> None:
    clock = FakeClock()
    limiter = LoginLimiter(clock=clock, max_hosts=100)
    for i in range(10_000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._buckets) <= 100
    # the most recent offender is still limited after the churn
    for _ in range(5):
        limiter.failed("192.0.2.1")
    for i in range(99):
        limiter.failed(f"10.1.0.{i}")
    assert not limiter.allow("192.0.2.1")


def test_hosts_with_full_buckets_are_forgotten_first() -> None:
    clock = FakeClock()
    limiter = LoginLimiter(clock=clock, max_hosts=3)
    limiter.failed("old")
    clock.now += 10  # "old" has recovered
    for _ in range(5):
        limiter.failed("attacker")
    limiter.failed("b")
    limiter.failed("c")  # over the bound: "old" goes, "attacker" stays
    assert "old" not in limiter._buckets
    assert not limiter.allow("attacker")
