"""Client sessions: the ``session_us`` a put, get or delete may carry.

A session's ``session_us`` is the highest timestamp it has seen (its writes' ``timestamp``s, its
reads' ``writetime``s). The coordinator's hybrid clock observes it before stamping, so each of the
session's writes is stamped above everything the session saw, whatever coordinators and clocks
its requests go through (docs/protocol.md, section 8).

A ``session_us`` further ahead of this node's clock than the hybrid clock's ``max_forward_us``
is not adopted (one client with a wild clock cannot drag the node's timestamps into the future).
A write that the node would stamp is then refused (``INVALID``): stamping it below what the
session saw would silently order it before an older write. A read or a write with its own
``timestamp`` stamps nothing from the clock and goes ahead.
"""

from __future__ import annotations

from typing import Any

from ringd.protocol.errors import InvalidRequest
from ringd.protocol.messages import arg
from ringd.service.hlc import HybridClock

MAX_SESSION_US = (1 << 63) - 1


def session_us(args: dict[str, Any]) -> int | None:
    """The request's ``session_us`` (``None`` when absent, null or 0); ``INVALID`` if bad."""
    value = arg(args, "session_us", int, None)
    if value is not None and not 0 <= value <= MAX_SESSION_US:
        raise InvalidRequest("session_us must be microseconds since the epoch, 0 <= n < 2^63")
    return value or None


def observe(clock: HybridClock, session: int | None, *, stamps: bool) -> None:
    """Move ``clock`` past ``session``. ``stamps``: the request is about to take a timestamp
    from ``clock``, so a session too far ahead to adopt is ``INVALID`` rather than ignored."""
    if session is None:
        return
    ahead_us = session - clock.wall_seconds() * 1_000_000
    if ahead_us > clock.max_forward_us:
        if stamps:
            raise InvalidRequest(
                f"session timestamp is {int(ahead_us // 1000)} ms ahead of this node's clock "
                f"(limit {clock.max_forward_us // 1000} ms); check the clocks, or start a new "
                "session (session_us 0)",
                session_us=session,
                ahead_ms=int(ahead_us // 1000),
            )
        clock.ignored += 1
        return
    clock.observe(session)
