"""Which node a command talks to: ``--host``, else ``RINGCTL_HOST``, else the current local
cluster's first running node (which must answer as a node of that cluster), else 127.0.0.1 on
the default port when there is no current cluster. A ``--host`` that is one of the current
cluster's nodes counts as that cluster (its hello must name it, and it shares the session)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ringctl import credentials, output
from ringctl.client import DEFAULT_ADDRESS, AsyncClient, Client
from ringctl.cluster import layout
from ringctl.cluster.layout import cluster_dir
from ringctl.cluster.manager import current_cluster
from ringd.config import DEFAULT_PORT
from ringd.net.address import split_address

DEFAULT_TIMEOUT = 30.0
verbose = False  # set by ``ringctl -v``: say which node and cluster a command talks to
tls_ca: str | None = None  # set by ``ringctl --tls-ca``
TLS_CA_ENV = "RINGCTL_TLS_CA"


def tls_ca_for(cluster: str | None, address: str) -> str | None:
    """The CA file to verify the node with (then ringctl connects with TLS): ``--tls-ca``, else
    ``RINGCTL_TLS_CA``, else the local cluster's ``tls/ca.pem`` when it was made with ``--tls``."""
    explicit = tls_ca or os.environ.get(TLS_CA_ENV) or None
    if explicit is not None:
        return explicit
    name = cluster if cluster is not None else layout.cluster_of(address)
    if name is None:
        return None
    ca = cluster_dir(name) / layout.TLS_DIR / "ca.pem"
    return str(ca) if ca.exists() else None


SESSION_FILE = "session.json"  # in the cluster's directory: the session high-water mark


@dataclass(frozen=True)
class Target:
    """The node's address and, when it was chosen from the current local cluster, that
    cluster's name (the node's hello must name it)."""

    address: str
    cluster: str | None = None


def resolve(host: str | None) -> Target:
    """The node to talk to; a malformed address is a usage error, a current cluster with no
    running node exits 4."""
    host = host or os.environ.get("RINGCTL_HOST") or None
    if host is not None:
        try:
            split_address(host, DEFAULT_PORT)
        except ValueError as exc:
            output.fail(f"--host: {exc}", output.USAGE)
        return Target(host, _current_cluster_with(host))
    current = current_cluster()
    if current is None:
        return Target(DEFAULT_ADDRESS)
    name, address = current
    if address is None:
        output.fail(
            f"no node of the current cluster {name!r} is running; start it with "
            "'ringctl cluster start', or give --host HOST:PORT",
            output.CONNECT,
        )
    return Target(address, name)


class _SessionClient(Client):
    """A client whose session high-water mark (see ``ringctl.client``) outlives the process:
    kept in the current cluster's directory, so that successive ringctl commands against a local
    cluster are ordered like one session's requests."""

    def __init__(self, *args: Any, session_file: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session_file = session_file
        self.session_us = self._loaded = _read_session(session_file)

    def close(self) -> None:
        super().close()
        if self.session_us > self._loaded:
            _save_session(self._session_file, self.session_us)
            self._loaded = self.session_us


def _read_session(path: Path) -> int:
    try:
        value = json.loads(path.read_text()).get("session_us", 0)
    except (OSError, ValueError, AttributeError):
        return 0
    return value if type(value) is int and value > 0 else 0


def _save_session(path: Path, session_us: int) -> None:
    """Keep the larger of ``session_us`` and what another ringctl saved meanwhile."""
    value = max(session_us, _read_session(path))
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"session_us": value}) + "\n")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # ordering across commands is lost, nothing else


def _current_cluster_with(address: str) -> str | None:
    """The current local cluster's name if ``address`` is one of its nodes (so that commands
    sent to its nodes with --host share its session), else None."""
    name = layout.read_current()
    if name is None:
        return None
    return name if layout.cluster_of(address) == name else None


def client(host: str | None, timeout: float | None = None) -> Client:
    """A connected blocking client for the command's target (errors are ringctl's one line).
    Against the current local cluster, the session's high-water mark is kept between
    commands."""
    to = resolve(host)
    if to.cluster is not None:
        db: Client = _SessionClient(
            to.address,
            timeout=timeout or DEFAULT_TIMEOUT,
            cluster=to.cluster,
            session_file=cluster_dir(to.cluster) / SESSION_FILE,
            credentials=credentials.resolve(to.cluster, to.address),
            tls_ca=tls_ca_for(to.cluster, to.address),
        )
    else:
        db = Client(
            to.address,
            timeout=timeout or DEFAULT_TIMEOUT,
            credentials=credentials.resolve(None, to.address),
            tls_ca=tls_ca_for(None, to.address),
        )
    with output.errors():
        db.connect()
    _say_connected(db.address, db.server_info)
    return db


def async_client(host: str | None, timeout: float | None = None) -> AsyncClient:
    """An unconnected trio client for the command's target (connects in ``async with``)."""
    to = resolve(host)
    return AsyncClient(
        to.address,
        timeout=timeout or DEFAULT_TIMEOUT,
        cluster=to.cluster,
        credentials=credentials.resolve(to.cluster, to.address),
        tls_ca=tls_ca_for(to.cluster, to.address),
    )


def _say_connected(address: str, info: dict[str, object]) -> None:
    if verbose:
        output.err_console.print(
            f"ringctl: {address}: ringd {info.get('version')} of cluster "
            f"{info.get('cluster')!r}, host id {info.get('host_id')}",
            markup=False,
            highlight=False,
        )
