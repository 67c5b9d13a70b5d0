"""The gossip verbs, served by the ``Gossiper`` (wire forms in ``ringd.gms.messages``)."""

from __future__ import annotations

from typing import Any

from ringd.gms.gossiper import Gossiper
from ringd.net.server import Handler, Session
from ringd.protocol.errors import InvalidRequest


def verbs(gossiper: Gossiper) -> dict[str, Handler]:
    """``gossip_syn`` and ``gossip_ack2``; malformed arguments are ``INVALID``."""

    def gossip_syn(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        try:
            return gossiper.handle_syn(args)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None

    def gossip_ack2(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        try:
            return gossiper.handle_ack2(args)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None

    return {"gossip_syn": gossip_syn, "gossip_ack2": gossip_ack2}
