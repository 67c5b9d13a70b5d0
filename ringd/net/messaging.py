"""Messages between nodes: one channel per peer, opened on demand and reopened when lost.

The message filter is the fault-injection point for tests (only on nodes started with
``--enable-test-hooks``): rules drop or delay outgoing messages by receiver and verb. A dropped
message is lost as a real network would lose it: the caller waits out its timeout.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from ringd.auth.gate import RateLimitedLog
from ringd.auth.peer import Initiator as PeerInitiator
from ringd.metrics import VerbMetrics
from ringd.net.channel import (
    Callback,
    CallTimeout,
    Channel,
    ConnectionClosed,
    deliver,
    open_channel,
)
from ringd.protocol import messages
from ringd.protocol.errors import ErrorCode, ProtocolError
from ringd.protocol.framing import DEFAULT_MAX_FRAME


@dataclass
class FilterRule:
    to: str  # receiver address, or "*"
    verbs: frozenset[str] = frozenset()  # empty: every verb
    action: str = "drop"  # "drop" or "delay"
    delay_ms: int = 0
    matched: int = 0

    def matches(self, address: str, verb: str) -> bool:
        return (self.to == "*" or self.to == address) and (not self.verbs or verb in self.verbs)

    def to_wire(self) -> dict[str, Any]:
        return {
            "to": self.to,
            "verbs": sorted(self.verbs),
            "action": self.action,
            "delay_ms": self.delay_ms,
            "matched": self.matched,
        }


@dataclass
class MessageFilter:
    rules: list[FilterRule] = field(default_factory=list)
    dropped: int = 0
    delayed: int = 0

    def match(self, address: str, verb: str) -> FilterRule | None:
        for rule in self.rules:
            if rule.matches(address, verb):
                rule.matched += 1
                return rule
        return None


class Messaging:
    """Calls to peers by address. Start :meth:`run` in a nursery first."""

    def __init__(
        self,
        hello: dict[str, Any],
        connect_timeout: float = 1.0,
        max_frame: int = DEFAULT_MAX_FRAME,
        peer_auth: Callable[[], PeerInitiator] | None = None,
        tls: Callable[[], ssl.SSLContext | None] | None = None,
    ) -> None:
        self._hello = hello
        self._tls = tls
        self._peer_auth = peer_auth
        self._refusals = RateLimitedLog(every=10.0)
        self._max_frame = max_frame
        self._connect_timeout = connect_timeout
        self._channels: dict[str, Channel] = {}
        self._locks: dict[str, trio.Lock] = {}
        self._nursery: trio.Nursery | None = None
        self.filter = MessageFilter()
        self.sent = 0
        self.verbs = VerbMetrics()  # dropped and timed-out messages per (peer, verb)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    async def _channel(self, address: str) -> Channel:
        channel = self._channels.get(address)
        if channel is not None and not channel.closed:
            return channel
        lock = self._locks.setdefault(address, trio.Lock())
        async with lock:
            channel = self._channels.get(address)
            if channel is not None and not channel.closed:
                return channel
            assert self._nursery is not None, "Messaging.run must be started first"
            try:
                channel = await open_channel(
                    self._nursery,
                    address,
                    self._hello,
                    connect_timeout=self._connect_timeout,
                    max_frame=self._max_frame,
                    peer_auth=self._peer_auth,
                    tls=self._tls() if self._tls is not None else None,
                )
            except ProtocolError as exc:
                if exc.code == ErrorCode.UNAUTHORIZED:
                    self._refusals.warning(
                        address, "cannot join the cluster through %s: %s", address, exc.message
                    )
                raise
            channel.timeouts = self.verbs.timeouts
            self._channels[address] = channel
            return channel

    async def call(
        self, address: str, verb: str, args: dict[str, Any], timeout: float | None = None
    ) -> Any:
        """Send ``verb`` to the node at ``address`` and return its result (or raise)."""
        rule = self.filter.match(address, verb) if self.filter.rules else None
        return await self._call(address, verb, args, timeout, rule)

    async def _call(
        self,
        address: str,
        verb: str,
        args: dict[str, Any],
        timeout: float | None,
        rule: FilterRule | None,
    ) -> Any:
        """:meth:`call` under the filter rule that matched when it was sent (None: none)."""
        if timeout is None:
            timeout = messages.VERBS[verb].timeout
        if rule is not None:
            if rule.action == "drop":
                self.filter.dropped += 1
                self.verbs.dropped[(address, verb)] += 1
                await trio.sleep(timeout)
                raise CallTimeout(f"no response from {address} to {verb} within {timeout:g}s")
            self.filter.delayed += 1
            await trio.sleep(rule.delay_ms / 1000.0 * (0.5 + random.random()))
        self.sent += 1
        channel = await self._channel(address)
        return await channel.call(verb, args, timeout)

    def send(
        self,
        address: str,
        verb: str,
        args: dict[str, Any],
        callback: Callback,
        timeout: float | None = None,
    ) -> None:
        """Like :meth:`call`, but ``callback`` gets (result, None) or (None, error) once. On an
        open channel with no filter rule for it this sends at once (no task); otherwise a task
        opens the channel or applies the rule first. The rule is the one that matches now: a
        filter changed after this call does not change what happens to the message."""
        rule = self.filter.match(address, verb) if self.filter.rules else None
        channel = self._channels.get(address)
        if channel is not None and not channel.closed and rule is None:
            self.sent += 1
            channel.send(verb, args, callback, timeout)
            return
        assert self._nursery is not None, "Messaging.run must be started first"
        self._nursery.start_soon(self._send_slowly, address, verb, args, callback, timeout, rule)

    async def _send_slowly(
        self,
        address: str,
        verb: str,
        args: dict[str, Any],
        callback: Callback,
        timeout: float | None,
        rule: FilterRule | None,
    ) -> None:
        value: Any = None
        error: ProtocolError | None = None
        try:
            value = await self._call(address, verb, args, timeout, rule)
        except ProtocolError as exc:
            error = exc
        except OSError as exc:
            error = ConnectionClosed(f"cannot reach {address}: {exc}")
        deliver(callback, value, error)

    def close(self, address: str) -> None:
        channel = self._channels.pop(address, None)
        if channel is not None:
            channel.close()


__all__ = ["CallTimeout", "ConnectionClosed", "FilterRule", "MessageFilter", "Messaging"]
