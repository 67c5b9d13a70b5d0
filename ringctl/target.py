"""Which node a command talks to: ``--host``, else ``RINGCTL_HOST``, else the current local
cluster's first running node (which must answer as a node of that cluster), else 127.0.0.1 on
the default port when there is no current cluster."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ringctl import output
from ringctl.client import DEFAULT_ADDRESS, AsyncClient, Client
from ringctl.cluster.manager import current_cluster
from ringd.config import DEFAULT_PORT
from ringd.net.address import split_address

DEFAULT_TIMEOUT = 30.0
verbose = False  # set by ``ringctl -v``: say which node and cluster a command talks to


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
        return Target(host)
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


def client(host: str | None, timeout: float | None = None) -> Client:
    """A connected blocking client for the command's target (errors are ringctl's one line)."""
    to = resolve(host)
    db = Client(to.address, timeout=timeout or DEFAULT_TIMEOUT, cluster=to.cluster)
    with output.errors():
        db.connect()
    _say_connected(db.address, db.server_info)
    return db


def async_client(host: str | None, timeout: float | None = None) -> AsyncClient:
    """An unconnected trio client for the command's target (connects in ``async with``)."""
    to = resolve(host)
    return AsyncClient(to.address, timeout=timeout or DEFAULT_TIMEOUT, cluster=to.cluster)


def _say_connected(address: str, info: dict[str, object]) -> None:
    if verbose:
        output.err_console.print(
            f"ringctl: {address}: ringd {info.get('version')} of cluster "
            f"{info.get('cluster')!r}, host id {info.get('host_id')}",
            markup=False,
            highlight=False,
        )
