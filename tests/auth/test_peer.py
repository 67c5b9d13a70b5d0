"""Peer challenge–response: the right secret passes both ways, anything else fails on the side
that checks it, proofs do not carry over between sessions, and the secret file is guarded."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from ringd.auth.peer import (
    Acceptor,
    Initiator,
    SecretFileError,
    generate_secret_file,
    load_secret_file,
)
from ringd.protocol import codec
from ringd.protocol.errors import Unauthorized

SECRET = b"s" * 32 + b"-cluster-secret\n"
OTHER = b"o" * 32 + b"-another-secret\n"
CLUSTER = "prod"


def pair(
    i_secret: bytes = SECRET, a_secret: bytes = SECRET, cluster: str = CLUSTER
) -> tuple[Initiator, Acceptor]:
    return Initiator(i_secret, cluster, "node-a"), Acceptor(a_secret, CLUSTER, "node-b")


def wire(fields: dict[str, Any]) -> dict[str, Any]:
    """Through the real codec, as the fields would cross the network."""
    return codec.decode_map(codec.encode(fields))


def test_the_right_secret_authenticates_both_sides() -> None:
    initiator, acceptor = pair()
    answer = wire(acceptor.answer_hello(wire(initiator.hello_fields())))
    auth = wire(initiator.auth_args(answer))
    assert acceptor.check_auth(auth) == "node-a"
    assert acceptor.peer_id == "node-a"


def test_the_secret_never_crosses_the_wire() -> None:
    initiator, acceptor = pair()
    hello = codec.encode(initiator.hello_fields())
    answer = acceptor.answer_hello(codec.decode_map(hello))
    auth = codec.encode(initiator.auth_args(answer))
    for frame in (hello, codec.encode(answer), auth):
        assert SECRET not in frame and SECRET[:32] not in frame


def test_initiator_refuses_an_acceptor_with_a_wrong_secret() -> None:
    initiator, acceptor = pair(a_secret=OTHER)
    answer = acceptor.answer_hello(initiator.hello_fields())
    with pytest.raises(Unauthorized, match="node-b failed to prove"):
        initiator.auth_args(answer)


def test_acceptor_refuses_an_initiator_with_a_wrong_secret() -> None:
    initiator, acceptor = pair(i_secret=OTHER)
    answer = acceptor.answer_hello(initiator.hello_fields())
    # the impostor cannot check the acceptor's proof, so it sends whatever it computes
    forged = Initiator(OTHER, CLUSTER, "node-a", nonce=initiator.nonce)
    auth = _initiator_proof_unchecked(forged, answer)
    with pytest.raises(Unauthorized, match="failed to prove"):
        acceptor.check_auth(auth)
    assert acceptor.peer_id is None


def _initiator_proof_unchecked(initiator: Initiator, answer: dict[str, Any]) -> dict[str, Any]:
    from ringd.auth.peer import proof

    mine = proof(
        initiator.secret,
        "initiator",
        CLUSTER,
        initiator.host_id,
        answer["host_id"],
        initiator.nonce,
        answer["nonce"],
    )
    return {"proof": mine}


def test_a_hello_without_a_nonce_is_refused_with_the_reason() -> None:
    acceptor = Acceptor(SECRET, CLUSTER, "node-b")
    with pytest.raises(Unauthorized, match="requires peer authentication.*cluster_secret_file"):
        acceptor.answer_hello({"cluster": CLUSTER, "host_id": "node-a"})


def test_a_hello_for_another_cluster_is_refused() -> None:
    initiator, acceptor = pair(cluster="staging")
    with pytest.raises(Unauthorized, match="cluster 'staging'"):
        acceptor.answer_hello(initiator.hello_fields())


@pytest.mark.parametrize("field", ["nonce", "proof", "host_id"])
def test_a_tampered_acceptor_answer_fails_at_the_initiator(field: str) -> None:
    initiator, acceptor = pair()
    answer = acceptor.answer_hello(initiator.hello_fields())
    answer[field] = _flip(answer[field])
    with pytest.raises(Unauthorized):
        initiator.auth_args(answer)


def test_a_tampered_initiator_nonce_fails_at_the_initiator() -> None:
    initiator, acceptor = pair()
    hello = initiator.hello_fields()
    hello["nonce"] = _flip(hello["nonce"])  # a man in the middle changes the challenge
    answer = acceptor.answer_hello(hello)
    with pytest.raises(Unauthorized, match="failed to prove"):
        initiator.auth_args(answer)


def test_a_tampered_initiator_proof_fails_at_the_acceptor() -> None:
    initiator, acceptor = pair()
    auth = initiator.auth_args(acceptor.answer_hello(initiator.hello_fields()))
    auth["proof"] = _flip(auth["proof"])
    with pytest.raises(Unauthorized):
        acceptor.check_auth(auth)


@pytest.mark.parametrize(
    "fields",
    [
        {"proof": b"short"},
        {"proof": "text, not bytes"},
        {},
    ],
)
def test_a_malformed_proof_is_unauthorized(fields: dict[str, Any]) -> None:
    initiator, acceptor = pair()
    acceptor.answer_hello(initiator.hello_fields())
    with pytest.raises(Unauthorized, match="32 bytes"):
        acceptor.check_auth(fields)


@pytest.mark.parametrize(
    "change",
    [{"nonce": b"x" * 31}, {"nonce": 7}, {"host_id": ""}, {"host_id": "h" * 129}, {"host_id": 1}],
)
def test_a_malformed_hello_is_unauthorized(change: dict[str, Any]) -> None:
    initiator, acceptor = pair()
    with pytest.raises(Unauthorized):
        acceptor.answer_hello({**initiator.hello_fields(), **change})


def test_a_recorded_initiator_proof_is_refused_in_a_new_session() -> None:
    initiator, acceptor = pair()
    hello = initiator.hello_fields()
    old_auth = initiator.auth_args(acceptor.answer_hello(hello))
    assert acceptor.check_auth(old_auth) == "node-a"
    # an eavesdropper replays the same hello and the recorded proof to the same node
    fresh = Acceptor(SECRET, CLUSTER, "node-b")
    fresh.answer_hello(hello)
    with pytest.raises(Unauthorized):
        fresh.check_auth(old_auth)


def test_a_recorded_acceptor_answer_is_refused_in_a_new_session() -> None:
    initiator, acceptor = pair()
    old_answer = acceptor.answer_hello(initiator.hello_fields())
    # an impostor replays an answer it recorded to a new connection from the same node
    again = Initiator(SECRET, CLUSTER, "node-a")
    with pytest.raises(Unauthorized):
        again.auth_args(old_answer)


def test_an_acceptor_proof_cannot_be_reflected_as_an_initiator_proof() -> None:
    initiator, acceptor = pair()
    answer = acceptor.answer_hello(initiator.hello_fields())
    with pytest.raises(Unauthorized):
        acceptor.check_auth({"proof": answer["proof"]})


def test_each_exchange_is_single_use() -> None:
    initiator, acceptor = pair()
    hello = initiator.hello_fields()
    answer = acceptor.answer_hello(hello)
    with pytest.raises(Unauthorized, match="already answered"):
        acceptor.answer_hello(hello)
    auth = initiator.auth_args(answer)
    with pytest.raises(Unauthorized, match="already completed"):
        initiator.auth_args(answer)
    acceptor.check_auth(auth)
    with pytest.raises(Unauthorized, match="once"):
        acceptor.check_auth(auth)


def test_a_failed_proof_cannot_be_retried_on_the_same_exchange() -> None:
    initiator, acceptor = pair()
    auth = initiator.auth_args(acceptor.answer_hello(initiator.hello_fields()))
    with pytest.raises(Unauthorized):
        acceptor.check_auth({"proof": _flip(auth["proof"])})
    with pytest.raises(Unauthorized):
        acceptor.check_auth(auth)
    assert acceptor.peer_id is None


def test_auth_before_hello_is_refused() -> None:
    with pytest.raises(Unauthorized, match="must follow"):
        Acceptor(SECRET, CLUSTER, "node-b").check_auth({"proof": b"p" * 32})


def test_nonces_are_fresh_for_every_exchange() -> None:
    nonces = {Initiator(SECRET, CLUSTER, "a").nonce for _ in range(50)}
    nonces |= {Acceptor(SECRET, CLUSTER, "b").nonce for _ in range(50)}
    assert len(nonces) == 100 and all(len(n) == 32 for n in nonces)


def _flip(value: Any) -> Any:
    if isinstance(value, bytes):
        return bytes([value[0] ^ 1]) + value[1:]
    return value + "x"


# -- the secret file --


def test_a_generated_secret_file_is_private_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "cluster.secret"
    secret = generate_secret_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(secret) >= 32 and load_secret_file(path) == secret
    assert generate_secret_file(tmp_path / "other.secret") != secret
    assert not list(tmp_path.glob("*.tmp"))


def test_a_generated_secret_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        generate_secret_file(tmp_path / "s")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o600


def test_a_leftover_temporary_file_cannot_widen_the_mode(tmp_path: Path) -> None:
    leftover = tmp_path / "cluster.secret.tmp"  # from a crash, with a careless mode
    leftover.write_bytes(b"old")
    leftover.chmod(0o644)
    generate_secret_file(tmp_path / "cluster.secret")
    assert stat.S_IMODE((tmp_path / "cluster.secret").stat().st_mode) == 0o600


def test_generating_never_replaces_an_existing_secret(tmp_path: Path) -> None:
    path = tmp_path / "cluster.secret"
    first = generate_secret_file(path)
    with pytest.raises(SecretFileError, match="already exists"):
        generate_secret_file(path)
    assert load_secret_file(path) == first


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o602])
def test_a_secret_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "cluster.secret"
    path.write_bytes(SECRET)
    path.chmod(mode)
    with pytest.raises(SecretFileError) as info:
        load_secret_file(path)
    assert str(info.value) == (
        f"cluster secret file {path} is open to group or others (mode {mode:04o}); "
        f"run: chmod 600 {path}"
    )


def test_an_owner_only_secret_of_any_owner_mode_loads(tmp_path: Path) -> None:
    path = tmp_path / "cluster.secret"
    path.write_bytes(SECRET)
    path.chmod(0o400)
    assert load_secret_file(path) == SECRET


def test_a_short_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cluster.secret"
    path.write_bytes(b"x" * 31)
    path.chmod(0o600)
    with pytest.raises(SecretFileError, match="holds 31 bytes; at least 32 are needed"):
        load_secret_file(path)


def test_an_oversized_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cluster.secret"
    path.write_bytes(b"x" * 5000)
    path.chmod(0o600)
    with pytest.raises(SecretFileError, match="larger than 4096 bytes"):
        load_secret_file(path)


def test_a_missing_or_unreadable_secret_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SecretFileError, match="cannot read .*No such file or directory"):
        load_secret_file(tmp_path / "absent")
    (tmp_path / "dir").mkdir(mode=0o700)
    with pytest.raises(SecretFileError) as info:
        load_secret_file(tmp_path / "dir")
    assert "\n" not in str(info.value)
