"""The gate: who a connection is, decided at its hello (and a peer's ``auth``), checked per request.

- Peers: with a cluster secret, a peer hello is answered with the acceptor's proof and the peer
  may send nothing but ``auth`` until its own proof checks out (``ringd.auth.peer``). Without a
  secret, a peer hello of the same cluster name is accepted, and one that carries a nonce (its
  cluster has a secret) is refused: this node cannot prove membership.
- Clients: with a ``RoleStore`` the hello must carry ``credentials: {user, password}``; the
  password is checked off the event loop (a few scrypts at once), failed logins are limited per
  remote host and logged. Without one (``authenticator = "none"``) every client is an admin.
- Per request: ``check`` refuses what the connection's role kind may not do (``roles.allowed``).

Every refusal is ``Unauthorized``, logged (rate-limited) with the remote address and counted.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import trio

from ringd.auth import peer, roles
from ringd.protocol.errors import Unauthorized
from ringd.protocol.messages import PEER

log = logging.getLogger(__name__)

#: scrypt checks running at once (each takes ~16 MiB and tens of milliseconds)
VERIFY_THREADS = 2


class Session(Protocol):
    remote: str
    role: str
    hello: dict[str, Any]
    authenticated: bool
    kind: str
    user: str
    peer_auth: peer.Acceptor | None


class RateLimitedLog:
    """Log a kind of event at most once per ``every`` seconds, with how many were not logged."""

    def __init__(self, every: float = 5.0, logger: logging.Logger | None = None) -> None:
        self.every = every
        self._logger = logger or log
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def warning(self, key: str, fmt: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < self.every:
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return
        skipped = self._skipped.pop(key, 0)
        self._last[key] = now
        if skipped:
            fmt += " (%d more like it not logged)"
            args = (*args, skipped)
        self._logger.warning(fmt, *args)


class Gate:
    """Authentication and authorization for one node's connections."""

    def __init__(
        self,
        *,
        cluster: str,
        host_id: str,
        secret: bytes | None,
        role_store: roles.RoleStore | None,
        limiter: roles.LoginLimiter | None = None,
    ) -> None:
        self.cluster = cluster
        self.host_id = host_id
        self.secret = secret
        self.role_store = role_store
        self.limiter = limiter or roles.LoginLimiter()
        self._verifying = trio.CapacityLimiter(VERIFY_THREADS)
        self.refused = 0
        self._log = RateLimitedLog()

    def _refuse(self, session: Session, why: str) -> Unauthorized:
        self.refused += 1
        self._log.warning(
            f"refused:{why[:40]}", "refused %s from %s: %s", session.role, session.remote, why
        )
        return Unauthorized(why)

    async def hello(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        """Fields to add to the hello result; ``Unauthorized`` to refuse the connection."""
        if session.role == PEER:
            return self._peer_hello(session, args)
        store = self.role_store
        if store is None:
            session.authenticated, session.kind, session.user = True, roles.ADMIN, ""
            return {}
        creds = args.get("credentials")
        if not isinstance(creds, dict) or not creds.get("user") or "password" not in creds:
            raise self._refuse(
                session,
                "this node requires a user and password "
                "(ringctl: --user/--password-file, RINGCTL_USER/RINGCTL_PASSWORD_FILE)",
            )
        user, password = creds["user"], creds["password"]
        host = session.remote.rsplit(":", 1)[0]
        wait = self.limiter.retry_after(host)
        if wait > 0:
            raise self._refuse(
                session, f"too many failed logins from {host}; try again in {wait:.0f}s"
            )
        if not isinstance(user, str) or not isinstance(password, str | bytes):
            kind = None
        else:
            kind = await trio.to_thread.run_sync(
                store.verify, user, password, limiter=self._verifying
            )
        if kind is None:
            self.limiter.failed(host)
            raise self._refuse(session, f"wrong user name or password for {str(user)[:64]!r}")
        session.authenticated, session.kind, session.user = True, kind, user
        return {"user": user, "role": kind}

    def _peer_hello(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        if self.secret is None:
            if "nonce" in args:
                raise self._refuse(
                    session,
                    "this node has no cluster secret but the peer's cluster uses one; "
                    "start it with the cluster's cluster_secret_file",
                )
            if args.get("cluster") != self.cluster:
                raise self._refuse(
                    session,
                    f"peer belongs to cluster {args.get('cluster')!r}, this node to {self.cluster!r}",
                )
            session.authenticated = True
            return {}
        acceptor = peer.Acceptor(self.secret, self.cluster, self.host_id)
        try:
            fields = acceptor.answer_hello(args)
        except Unauthorized as exc:
            raise self._refuse(session, exc.message) from None
        session.peer_auth = acceptor
        return fields

    def auth(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        """The ``auth`` verb: the initiator's proof. ``Unauthorized`` closes the connection."""
        acceptor = session.peer_auth
        if acceptor is None or session.authenticated:
            raise self._refuse(session, "auth must follow a peer hello that asked for it, once")
        try:
            peer_id = acceptor.check_auth(args)
        except Unauthorized as exc:
            raise self._refuse(session, exc.message) from None
        session.authenticated = True
        session.peer_auth = None
        log.debug("peer %s (%s) authenticated", peer_id, session.remote)
        return {}

    def check(self, session: Session, op: str) -> None:
        """``Unauthorized`` unless this connection may send ``op`` now."""
        if session.role == PEER:
            if op == "auth":
                return
            if not session.authenticated:
                raise self._refuse(session, f"{op} before the peer authenticated (auth)")
            return
        if not roles.allowed(session.kind, op):
            who = f"role {session.user!r} ({session.kind})" if session.user else session.kind
            raise Unauthorized(f"{who} may not use {op}")
