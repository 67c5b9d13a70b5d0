"""The ``ringd`` command: parse the configuration, start one node, exit 0 after a clean drain."""

from __future__ import annotations

import logging
import sys

import trio

import ringd
from ringd import gctune
from ringd.config import ConfigError, load


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if "--version" in args:
        print(f"ringd {ringd.__version__}")
        return
    try:
        config = load(args)
    except ConfigError as exc:
        print(f"ringd: error: {exc}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from ringd.db.engine import DiskFailure, StorageCorruption
    from ringd.node import Node, StartupError

    try:
        node = Node(config, reload=lambda: load(args), on_ready=gctune.settle)
        trio.run(node.run)
    except BaseException as exc:
        reason = _startup_error(exc, (StartupError, StorageCorruption, DiskFailure))
        if reason is None:
            raise
        print(f"ringd: error: {reason}", file=sys.stderr)
        sys.exit(1)


def _startup_error(
    exc: BaseException, kinds: tuple[type[BaseException], ...]
) -> BaseException | None:
    """The known start-up failure inside ``exc`` (which trio may have wrapped in groups)."""
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _startup_error(inner, kinds)
            if found is not None:
                return found
    return None


if __name__ == "__main__":
    main()
