"""The accept loop: survives running out of file descriptors (EMFILE, ENFILE) or memory.

Like ``trio.serve_listeners`` (which logs a traceback ten times a second then), but it logs one
line at most once a minute and backs off up to a second between attempts. Connections already
accepted are served meanwhile; new ones wait in the listen backlog and are accepted as soon as
descriptors are free again.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

log = logging.getLogger(__name__)

CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
LOG_EVERY = 60.0
MAX_BACKOFF = 1.0


async def serve_listeners(
    handler: Callable[[Any], Awaitable[None]],
    listeners: list[Any],
    *,
    handler_nursery: trio.Nursery,
    task_status: trio.TaskStatus[list[Any]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept on every listener and start ``handler(stream)`` in ``handler_nursery``."""
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(_accept_loop, listener, handler, handler_nursery)
        task_status.started(listeners)


async def _accept_loop(
    listener: Any, handler: Callable[[Any], Awaitable[None]], handler_nursery: trio.Nursery
) -> None:
    async with listener:
        delay = 0.01
        logged = -LOG_EVERY
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in CAPACITY_ERRNOS:
                    raise
                now = time.monotonic()
                if now - logged >= LOG_EVERY:
                    logged = now
                    log.warning(
                        "cannot accept connections: %s; existing connections are still served "
                        "and new ones wait (logged at most once a minute)",
                        exc.strerror,
                    )
                await trio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            delay = 0.01
            handler_nursery.start_soon(handler, stream)
