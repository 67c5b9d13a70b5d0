"""The simulated network: one queue of timed events on the trio clock, and the faults.

Every message between hosts (nodes and the simulated client) is encoded with the protocol's
strict CBOR codec when sent and decoded when it arrives, so no two nodes share a mutable object.
Its fate is decided when it is sent, from the run's seeded RNG: lost (partitioned link or a
drop), or delivered after a latency, in order per link (one TCP connection per pair). At the
receiver the message runs its verb's handler as the node's server would (``inline``,
``deferred`` or ``task``, see ``ringd.protocol.messages.VERBS``) and the answer travels back the
same way. The caller's callback runs exactly once: with the result, the error the handler
answered, ``ConnectionClosed`` (the receiver is down, or restarted since the message was sent) or
``CallTimeout`` (nothing came back in time).

A paused host (SIGSTOP) neither receives nor sends: what arrives for it or leaves it is held and
released, in order, when it resumes. Its timers still run while paused (a simplification: a
real paused process fires them at resume), so a paused coordinator times out its requests
"during" the pause, but nobody hears about it before the resume.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from ringd.net.channel import Callback, CallTimeout, ConnectionClosed, deliver
from ringd.net.server import Session
from ringd.protocol import codec, messages
from ringd.protocol.errors import ErrorCode, ProtocolError

log = logging.getLogger("sim.network")

Thunk = Callable[[], None]
#: the verb table of one host: verb -> (mode, handler)
Handlers = dict[str, tuple[str, Callable[..., Any]]]


class Scheduler:
    """Calls functions at virtual times, in (time, order of scheduling) order, from one task."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Thunk]] = []
        self._seq = itertools.count()
        self._wake = trio.Event()
        self.events = 0

    def at(self, when: float, fn: Thunk) -> None:
        first = not self._heap or when < self._heap[0][0]
        heapq.heappush(self._heap, (when, next(self._seq), fn))
        if first:
            self._wake.set()

    def after(self, delay: float, fn: Thunk) -> None:
        self.at(trio.current_time() + delay, fn)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        heap = self._heap
        while True:
            self._wake = trio.Event()
            with trio.move_on_at(heap[0][0] if heap else math.inf):
                await self._wake.wait()
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _, _, fn = heapq.heappop(heap)
                self.events += 1
                fn()


class Host(Protocol):
    """What the network needs of a node (or of the client)."""

    address: str
    incarnation: int
    up: bool
    paused: bool
    held_in: list[Thunk]
    held_out: list[Thunk]
    handlers: Handlers
    nursery: trio.Nursery | None


@dataclass
class _Call:
    callback: Callback
    src: str
    src_incarnation: int
    done: bool = False


@dataclass
class Faults:
    """The network's current faults (all decided by the workload's RNG)."""

    blocked: set[tuple[str, str]] = field(default_factory=set)  # directed links that lose all
    drop: float = 0.0  # probability that an internode message is lost
    slow: dict[str, float] = field(default_factory=dict)  # address -> extra latency (max, s)

    def clear(self) -> None:
        self.blocked.clear()
        self.drop = 0.0
        self.slow.clear()


class Network:
    """Messages between the hosts registered in ``hosts`` (address -> host)."""

    CLIENT = "client"

    def __init__(self, rng: random.Random, scheduler: Scheduler) -> None:
        self.rng = rng
        self.scheduler = scheduler
        self.hosts: dict[str, Host] = {}
        self.faults = Faults()
        self.latency = (0.0002, 0.002)  # base one-way latency, uniform (s)
        self._fifo: dict[tuple[str, str], float] = {}
        self.sent: dict[str, int] = {}  # messages sent per address
        self.lost = 0
        #: unexpected exceptions raised by handlers (a server would log "handler failed")
        self.handler_failures: list[str] = []

    def endpoint(self, address: str) -> Endpoint:
        return Endpoint(self, address)

    # ---- the path of one message ------------------------------------------------------------

    def transmit(self, src: str, dst: str, fn: Thunk) -> None:
        """Carry ``fn`` (an arrival) from ``src`` to ``dst``: held, lost or delivered later."""
        sender = self.hosts[src]
        if sender.paused:
            sender.held_out.append(lambda: self.transmit(src, dst, fn))
            return
        rng = self.rng
        internode = src != self.CLIENT and dst != self.CLIENT
        if internode and (
            (src, dst) in self.faults.blocked
            or (self.faults.drop and rng.random() < self.faults.drop)
        ):
            self.lost += 1
            return
        delay = rng.uniform(*self.latency)
        slow = self.faults.slow
        if slow:
            extra = max(slow.get(src, 0.0), slow.get(dst, 0.0))
            if extra:
                delay += rng.uniform(0.0, extra)
        now = trio.current_time()
        when = max(now + delay, self._fifo.get((src, dst), 0.0))
        self._fifo[(src, dst)] = when
        self.scheduler.at(when, fn)

    def send(
        self,
        src: str,
        dst: str,
        verb: str,
        args: dict[str, Any],
        callback: Callback,
        timeout: float | None,
    ) -> None:
        if timeout is None:
            timeout = messages.VERBS[verb].timeout if verb in messages.VERBS else 10.0
        self.sent[src] = self.sent.get(src, 0) + 1
        try:
            body = codec.encode(args)
        except ProtocolError as exc:
            deliver(callback, None, exc)
            return
        call = _Call(callback, src, self.hosts[src].incarnation)
        if timeout > 0:
            self.scheduler.after(
                timeout,
                lambda: self._finish(
                    call, None, CallTimeout(f"no response from {dst} to {verb} within {timeout:g}s")
                ),
            )
        target = self.hosts.get(dst)
        if target is None:  # nobody at that address: the connection is refused
            self.scheduler.after(
                0.0, lambda: self._finish(call, None, ConnectionClosed(f"cannot connect to {dst}"))
            )
            return
        incarnation = target.incarnation
        self.transmit(src, dst, lambda: self._arrive(call, dst, incarnation, verb, body))

    def _arrive(self, call: _Call, dst: str, incarnation: int, verb: str, body: bytes) -> None:
        host = self.hosts[dst]
        if host.paused:
            host.held_in.append(lambda: self._arrive(call, dst, incarnation, verb, body))
            return
        if not host.up or host.incarnation != incarnation:
            # the process that should answer is gone: the kernel answers with a reset
            error = ConnectionClosed(f"connection to {dst} lost")
            self.transmit(dst, call.src, lambda: self._answer(call, None, error))
            return
        args = codec.decode_map(body)
        mode, handler = host.handlers[verb]
        answered = False

        def reply(value: Any) -> None:
            nonlocal answered
            if answered or not host.up or host.incarnation != incarnation:
                return  # answered already, or the answering process died meanwhile
            answered = True
            if isinstance(value, ProtocolError):
                wire = codec.encode({"error": value.to_wire()})
            else:
                wire = codec.encode({"result": value})
            self.transmit(dst, call.src, lambda: self._answer_wire(call, wire))

        session = Session(remote=call.src, role=messages.PEER, hello={})
        if mode == messages.TASK:
            assert host.nursery is not None
            host.nursery.start_soon(self._run_task, dst, verb, handler, session, args, reply)
            return
        try:
            if mode == messages.INLINE:
                reply(handler(session, args))
            else:
                handler(session, args, reply)
        except ProtocolError as exc:
            reply(exc)
        except Exception as exc:
            self._handler_failed(dst, verb, exc, reply)

    async def _run_task(
        self,
        dst: str,
        verb: str,
        handler: Callable[..., Any],
        session: Session,
        args: dict[str, Any],
        reply: Callable[[Any], None],
    ) -> None:
        try:
            reply(await handler(session, args))
        except ProtocolError as exc:
            reply(exc)
        except Exception as exc:
            self._handler_failed(dst, verb, exc, reply)

    def _handler_failed(
        self, dst: str, verb: str, exc: Exception, reply: Callable[[Any], None]
    ) -> None:
        log.error("handler for %s on %s failed", verb, dst, exc_info=exc)
        self.handler_failures.append(f"{dst} {verb}: {type(exc).__name__}: {exc}")
        reply(ProtocolError(f"{verb} failed on the server: {exc}", ErrorCode.SERVER_ERROR))

    def _answer_wire(self, call: _Call, wire: bytes) -> None:
        msg = codec.decode_map(wire)
        if "error" in msg:
            self._answer(call, None, ProtocolError.from_wire(msg["error"]))
        else:
            self._answer(call, msg["result"], None)

    def _answer(self, call: _Call, value: Any, error: ProtocolError | None) -> None:
        host = self.hosts[call.src]
        if host.paused:
            host.held_in.append(lambda: self._answer(call, value, error))
            return
        self._finish(call, value, error)

    def _finish(self, call: _Call, value: Any, error: ProtocolError | None) -> None:
        if call.done:
            return
        call.done = True
        host = self.hosts[call.src]
        if not host.up or host.incarnation != call.src_incarnation:
            return  # the caller's process is gone
        deliver(call.callback, value, error)

    # ---- pause ------------------------------------------------------------------------------

    def resume(self, host: Host) -> None:
        """Release what was held for and by a paused host, in order."""
        host.paused = False
        held_in, host.held_in = host.held_in, []
        held_out, host.held_out = host.held_out, []
        for fn in held_out:
            fn()
        for fn in held_in:
            self.scheduler.after(0.0, fn)


class Endpoint:
    """One host's ``Messaging``: the part of its API the services use (``send``, ``call``)."""

    def __init__(self, network: Network, address: str) -> None:
        self.network = network
        self.address = address

    def send(
        self,
        address: str,
        verb: str,
        args: dict[str, Any],
        callback: Callback,
        timeout: float | None = None,
    ) -> None:
        self.network.send(self.address, address, verb, args, callback, timeout)

    async def call(
        self, address: str, verb: str, args: dict[str, Any], timeout: float | None = None
    ) -> Any:
        done = trio.Event()
        out: list[Any] = []

        def callback(value: Any, error: ProtocolError | None) -> None:
            out.extend((value, error))
            done.set()

        self.send(address, verb, args, callback, timeout)
        await done.wait()
        if out[1] is not None:
            raise out[1]
        return out[0]

    def close(self, address: str) -> None:
        pass
