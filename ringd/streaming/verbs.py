"""The streaming verb: ``stream_pull`` (peer only), a chunk of a token interval's rows."""

from __future__ import annotations

from typing import Any

from ringd.net.server import Handler, Session
from ringd.streaming.service import StreamService


def verbs(service: StreamService) -> dict[str, Handler]:
    def stream_pull(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return service.pull(args)

    return {"stream_pull": stream_pull}
