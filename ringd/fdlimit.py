"""Fit ``max_connections`` to the process's open-file limit (RLIMIT_NOFILE) at start.

Each connection holds a descriptor; the node needs more for its files (commit log, sstables,
the lock file) and peers: :data:`HEADROOM`. If the soft limit is too low, raise it (up to the
hard limit); if even the hard limit is too low, serve fewer connections and say so, so that
accept never runs out of descriptors in the normal course.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)

HEADROOM = 128


def fit_max_connections(max_connections: int, reserved: int = 0) -> int:
    """The number of ordinary connections the node can hold besides ``reserved`` ones (for
    peers and admins); may raise the soft RLIMIT_NOFILE."""
    need = max_connections + reserved + HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return max_connections
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            log.info("raised the open-file limit from %d to %d", soft, target)
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d: %s", soft, exc)
    if soft >= need:
        return max_connections
    fitted = max(soft - HEADROOM - reserved, soft // 2 - reserved, 1)
    log.warning(
        "the open-file limit (%d) is too low for max_connections %d: serving at most %d "
        "connections (raise the limit, e.g. ulimit -n %d)",
        soft,
        max_connections,
        fitted,
        need,
    )
    return fitted
