"""Which node a command talks to: ``--host``, else ``RINGCTL_HOST``, else the current local
cluster's first live node, else 127.0.0.1 on the default port."""

from __future__ import annotations

import os

from ringctl.client import DEFAULT_ADDRESS
from ringctl.cluster.manager import current_cluster_address


def resolve(host: str | None) -> str:
    if host:
        return host
    env = os.environ.get("RINGCTL_HOST")
    if env:
        return env
    return current_cluster_address() or DEFAULT_ADDRESS
