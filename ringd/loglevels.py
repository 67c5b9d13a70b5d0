"""``setlogginglevel`` and ``getlogginglevels``: log levels changed and shown at run time, as
nodetool's.

A logger is ``root`` (every logger without a level of its own; ``log_level`` sets it at start)
or the name of a logger the node already has (``ringd``, ``ringd.db.engine``, ...): an unknown
name is refused, so a client cannot make the node keep new loggers. Levels are DEBUG, INFO,
WARNING, ERROR and CRITICAL; ``NOTSET`` gives a named logger back to its parent's level. A
change lasts until the node restarts.
"""

from __future__ import annotations

import logging
from typing import Any

from ringd.net.server import Session
from ringd.protocol.errors import InvalidRequest
from ringd.protocol.messages import arg

log = logging.getLogger(__name__)

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ROOT = "root"


def _logger(name: str) -> logging.Logger:
    if name in ("", ROOT):
        return logging.getLogger()
    existing = logging.Logger.manager.loggerDict.get(name)
    if not isinstance(existing, logging.Logger):
        raise InvalidRequest(
            f"this node has no logger {name!r}; 'ringctl getlogginglevels --all' lists them"
        )
    return existing


def _entry(name: str, logger: logging.Logger) -> dict[str, str]:
    return {
        "name": name,
        "level": logging.getLevelName(logger.level),
        "effective": logging.getLevelName(logger.getEffectiveLevel()),
    }


def levels(every: bool = False) -> dict[str, Any]:
    """``root``, then each logger with a level of its own (``every``: each logger the node has),
    by name: its level and the level in effect."""
    named = sorted(
        (name, logger)
        for name, logger in list(logging.Logger.manager.loggerDict.items())
        if isinstance(logger, logging.Logger) and (every or logger.level != logging.NOTSET)
    )
    return {"loggers": [_entry(ROOT, logging.getLogger())] + [_entry(n, lg) for n, lg in named]}


def set_level(name: str, level: str, who: str) -> dict[str, str]:
    """Set ``name``'s level (``NOTSET``: inherit; not for root); the logger's new entry."""
    level = level.upper()
    logger = _logger(name)
    is_root = logger is logging.getLogger()
    allowed = LEVELS if is_root else (*LEVELS, "NOTSET")
    if level not in allowed:
        raise InvalidRequest(f"level must be one of {', '.join(allowed)}, not {level!r}")
    shown = ROOT if is_root else name
    log.warning("log level of %s set to %s by %s", shown, level, who)
    logger.setLevel(level)
    return _entry(shown, logger)


def verbs() -> dict[str, Any]:
    def setlogginglevel(s: Session, args: dict[str, Any]) -> dict[str, str]:
        return set_level(
            arg(args, "logger", str, ROOT), arg(args, "level", str), s.user or s.remote
        )

    def getlogginglevels(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return levels(arg(args, "all", bool, False))

    return {"setlogginglevel": setlogginglevel, "getlogginglevels": getlogginglevels}
