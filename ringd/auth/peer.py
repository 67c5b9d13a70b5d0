"""Peer authentication: a challenge–response over the cluster secret, in the hello plus one round trip.

Sans-IO: ``Initiator`` (the connecting node) and ``Acceptor`` (the listening node) take and give
plain dicts; the caller puts them in frames. The secret never crosses the wire.

Messages (fields added to the ones the hello already has; "bytes" is a CBOR byte string):

1. initiator → ``hello`` args: ``role: "peer"``, ``cluster`` (text), ``host_id`` (text, 1-128
   chars) and ``nonce`` (bytes, exactly 32, fresh from ``secrets.token_bytes``).
2. acceptor ← hello result: the usual node info plus ``host_id`` (text), ``nonce`` (bytes, 32,
   fresh) and ``proof`` (bytes, 32) = HMAC-SHA256(secret, transcript("acceptor")).
3. initiator checks that proof, then → ``auth`` args: ``proof`` (bytes, 32) =
   HMAC-SHA256(secret, transcript("initiator")). A wrong acceptor proof ends the exchange here:
   the initiator closes the connection and never sends its own proof.
4. acceptor ← ``auth`` result ``{}``; a wrong proof is ``UNAUTHORIZED`` and the connection closes.
   Until the ``auth`` is answered the acceptor serves no other verb on that connection.

transcript(side) is the concatenation, each part preceded by its length as 4 big-endian bytes, of:
``b"ringd peer auth v1"``, side (``b"acceptor"`` or ``b"initiator"``), the cluster name, the
initiator's host id, the acceptor's host id (all three UTF-8), the initiator's nonce and the
acceptor's nonce.

Why it holds: both nonces are fresh, so a proof recorded from one session is worthless in another;
the side label keeps a node's acceptor proof from being replayed as an initiator proof; the
acceptor proves first, so a node that connects to an impostor never hands out a proof of its own.
Proofs are compared with ``hmac.compare_digest``. What it does not give: every holder of the
secret is equally trusted, so the host ids are claims bound into the proofs, not identities; and
it authenticates the start of a connection, not each frame (TLS protects the bytes after it).

The secret is the exact bytes of the ``cluster_secret_file`` (at least 32; ``generate_secret_file``
writes 64 hex digits and a newline); the file must not be readable by group or others.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ringd.fsutil import atomic_write
from ringd.protocol.errors import Unauthorized

NONCE_BYTES = 32
PROOF_BYTES = 32
MIN_SECRET_BYTES = 32
MAX_SECRET_BYTES = 4096
MAX_HOST_ID_CHARS = 128
_CONTEXT = b"ringd peer auth v1"


class SecretFileError(Exception):
    """A cluster secret file that cannot be used; the message is one line naming the file."""


def generate_secret_file(path: Path) -> bytes:
    """Write a new secret (32 random bytes as hex) to ``path`` with mode 0600; refuse to overwrite."""
    if path.exists():
        raise SecretFileError(f"cluster secret file {path} already exists; not replacing it")
    secret = (secrets.token_bytes(32).hex() + "\n").encode()
    atomic_write(path, secret, mode=0o600)
    return secret


def load_secret_file(path: Path) -> bytes:
    """The secret in ``path``; refuses a file others can read, and one too short or too long."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise SecretFileError(f"cluster secret file {path} is not a regular file")
            if st.st_mode & 0o077:
                raise SecretFileError(
                    f"cluster secret file {path} is open to group or others "
                    f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}"
                )
            secret = f.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise SecretFileError(f"cannot read cluster secret file {path}: {exc.strerror}") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise SecretFileError(
            f"cluster secret file {path} holds {len(secret)} bytes; "
            f"at least {MIN_SECRET_BYTES} are needed"
        )
    if len(secret) > MAX_SECRET_BYTES:
        raise SecretFileError(f"cluster secret file {path} is larger than {MAX_SECRET_BYTES} bytes")
    return secret


def proof(
    secret: bytes,
    side: str,
    cluster: str,
    initiator_id: str,
    acceptor_id: str,
    initiator_nonce: bytes,
    acceptor_nonce: bytes,
) -> bytes:
    """HMAC-SHA256 of one side's transcript (see the module docstring)."""
    parts = (
        _CONTEXT,
        side.encode(),
        cluster.encode(),
        initiator_id.encode(),
        acceptor_id.encode(),
        initiator_nonce,
        acceptor_nonce,
    )
    message = b"".join(len(p).to_bytes(4, "big") + p for p in parts)
    return hmac.new(secret, message, hashlib.sha256).digest()


@dataclass
class Initiator:
    """The connecting node's half: ``hello_fields``, then ``auth_args`` from the hello result."""

    secret: bytes
    cluster: str
    host_id: str
    nonce: bytes = field(default_factory=lambda: secrets.token_bytes(NONCE_BYTES))
    _used: bool = False

    def hello_fields(self) -> dict[str, Any]:
        """The fields to add to the peer hello's args."""
        return {"cluster": self.cluster, "host_id": self.host_id, "nonce": self.nonce}

    def auth_args(self, hello_result: dict[str, Any]) -> dict[str, Any]:
        """Check the acceptor's proof in ``hello_result``; the args of the ``auth`` to send."""
        if self._used:
            raise Unauthorized("this peer authentication was already completed or refused")
        self._used = True
        acceptor_id = _host_id(hello_result, "acceptor")
        acceptor_nonce = _bytes(hello_result, "nonce", NONCE_BYTES, "acceptor")
        their_proof = _bytes(hello_result, "proof", PROOF_BYTES, "acceptor")
        expected = proof(
            self.secret,
            "acceptor",
            self.cluster,
            self.host_id,
            acceptor_id,
            self.nonce,
            acceptor_nonce,
        )
        if not hmac.compare_digest(expected, their_proof):
            raise Unauthorized(f"peer {acceptor_id} failed to prove it holds this cluster's secret")
        mine = proof(
            self.secret,
            "initiator",
            self.cluster,
            self.host_id,
            acceptor_id,
            self.nonce,
            acceptor_nonce,
        )
        return {"proof": mine}


@dataclass
class Acceptor:
    """The listening node's half: ``answer_hello``, then ``check_auth`` on the ``auth`` args."""

    secret: bytes
    cluster: str
    host_id: str
    nonce: bytes = field(default_factory=lambda: secrets.token_bytes(NONCE_BYTES))
    peer_id: str | None = None  # the initiator's host id, once authenticated
    _initiator_id: str = ""
    _expected: bytes | None = None
    _done: bool = False

    def answer_hello(self, hello_args: dict[str, Any]) -> dict[str, Any]:
        """The fields to add to the hello result; ``Unauthorized`` if the hello cannot be answered."""
        if self._expected is not None or self._done:
            raise Unauthorized("hello was already answered")
        if "nonce" not in hello_args:
            raise Unauthorized(
                "this cluster requires peer authentication; "
                "start the node with the cluster's cluster_secret_file"
            )
        cluster = hello_args.get("cluster")
        if cluster != self.cluster:
            raise Unauthorized(
                f"peer belongs to cluster {cluster!r}, this node to {self.cluster!r}"
            )
        initiator_id = _host_id(hello_args, "initiator")
        initiator_nonce = _bytes(hello_args, "nonce", NONCE_BYTES, "initiator")
        args = (self.cluster, initiator_id, self.host_id, initiator_nonce, self.nonce)
        self._expected = proof(self.secret, "initiator", *args)
        self._initiator_id = initiator_id
        return {
            "host_id": self.host_id,
            "nonce": self.nonce,
            "proof": proof(self.secret, "acceptor", *args),
        }

    def check_auth(self, auth_args: dict[str, Any]) -> str:
        """Check the initiator's proof; its host id, or ``Unauthorized`` (then the exchange is over)."""
        expected, self._expected = self._expected, None
        if expected is None or self._done:
            raise Unauthorized("auth must follow an answered peer hello, once")
        self._done = True
        their_proof = _bytes(auth_args, "proof", PROOF_BYTES, "initiator")
        if not hmac.compare_digest(expected, their_proof):
            raise Unauthorized("peer failed to prove it holds this cluster's secret")
        self.peer_id = self._initiator_id
        return self.peer_id


def _bytes(fields: dict[str, Any], name: str, size: int, who: str) -> bytes:
    value = fields.get(name)
    if not isinstance(value, bytes) or len(value) != size:
        raise Unauthorized(f"{who} {name} must be {size} bytes")
    return value


def _host_id(fields: dict[str, Any], who: str) -> str:
    value = fields.get("host_id")
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_HOST_ID_CHARS:
        raise Unauthorized(f"{who} host_id must be text of 1-{MAX_HOST_ID_CHARS} characters")
    return value
