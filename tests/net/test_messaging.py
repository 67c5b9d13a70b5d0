"""The message filter (a test hook) decides a message's fate when it is sent: a rule removed
before the message's task runs does not let it through."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from ringd.net.channel import CallTimeout
from ringd.net.messaging import FilterRule, Messaging
from ringd.protocol import messages


async def test_a_message_dropped_when_sent_stays_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    messaging = Messaging(messages.hello_args(messages.PEER))
    answers: list[tuple[Any, Any]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(messaging.run)
        messaging.filter.rules.append(FilterRule("127.0.0.9:1", frozenset({"mutate"})))
        messaging.send("127.0.0.9:1", "mutate", {}, lambda v, e: answers.append((v, e)), 2.0)
        messaging.filter.rules.clear()  # before the message's task has run
        await trio.sleep(3)
        nursery.cancel_scope.cancel()
    assert len(answers) == 1 and isinstance(answers[0][1], CallTimeout)
    assert messaging.filter.dropped == 1 and messaging.sent == 0
