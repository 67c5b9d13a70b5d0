"""Gossip membership, as Cassandra's ``Gossiper``, independent of any transport.

The gossiper keeps an ``EndpointState`` per node (keyed by host id, the local node included) and,
every ``interval`` seconds:

1. bumps the local heartbeat version;
2. starts an exchange with one random live peer; with probability
   ``unreachable / (live + 1)`` with one unreachable peer (to notice it coming back); and with a
   seed if the live peer chosen was not a seed or fewer peers are live than there are seeds
   (always when nothing is live, otherwise with probability ``seeds / (live + unreachable)``),
   exactly Cassandra's rules;
3. convicts the live peers whose phi exceeds the threshold (unless the local loop itself was
   paused for longer than ``max_local_pause``, as Cassandra skips conviction after a GC pause).

An exchange is a ``gossip_syn`` answered by an ack, then a ``gossip_ack2`` (see
``ringd.gms.messages``). It runs in its own task, bounded by ``trio.move_on_after``; a failing or
hanging peer never delays the rounds, and at most one exchange per peer address is in flight.
Peers are reached only through the injected ``send(address, verb, args) -> response args``,
which may raise anything on failure. The receiving side is ``handle_syn`` / ``handle_ack2``:
synchronous, memory-only, for the server to route the two verbs to.

Applying news about a node (never about the local node itself):

- unknown host id: its state is stored and the failure detector starts its window; event
  ``join``. The node is not yet alive: it becomes alive once its version is seen to move;
- higher generation: the whole state is replaced (it restarted); event ``restart``, then
  ``alive`` if it was not alive (its window is cleared first if it was down);
- same generation, higher versions: the newer heartbeat and application states are merged; the
  failure detector records an arrival; event ``alive`` if it was not alive, ``change`` if an
  application state changed;
- lower generation or nothing newer: ignored.

A node whose STATUS is LEFT is never marked alive again. Liveness changes give the events
``alive`` and ``dead``. Listeners (``subscribe``) are called synchronously as
``callback(event, host_id, state)`` and must be cheap; an exception in one is logged and ignored.
Local application state changes (``set_application_state``) also give ``change`` events.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import trio

from ringd.gms.clock import ClockOffsets, Offset
from ringd.gms.failure_detector import FailureDetector
from ringd.gms.messages import (
    GOSSIP_ACK2,
    GOSSIP_SYN,
    GossipAck2,
    GossipSyn,
    ack2_to_wire,
    ack_time,
    ack_to_wire,
    check_cluster_name,
    parse_ack,
    syn_to_wire,
)
from ringd.gms.state import (
    AppState,
    EndpointState,
    GossipDigest,
    HeartBeatState,
    Status,
    VersionedValue,
    check_address,
    check_app_key,
    check_app_value,
    check_host_id,
)

logger = logging.getLogger(__name__)

Send = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]
Listener = Callable[[str, str, EndpointState], None]

EVENT_JOIN = "join"
EVENT_ALIVE = "alive"
EVENT_DEAD = "dead"
EVENT_CHANGE = "change"
EVENT_RESTART = "restart"
EVENTS = (EVENT_JOIN, EVENT_ALIVE, EVENT_DEAD, EVENT_CHANGE, EVENT_RESTART)

#: A generation more than a year ahead of the one we know is refused (as Cassandra does).
MAX_GENERATION_DIFFERENCE = 86400 * 365
DEFAULT_CLUSTER_NAME = "ringd"


class Gossiper:
    """Gossip membership and failure detection for one node.

    ``generation`` must be larger at every start of the node (e.g. ``int(time.time())`` kept
    monotonic by the server); ``initial_states`` are the application states the node starts with
    (``HOST_ID`` and ``ADDRESS`` are filled in from ``local_host_id`` and ``local_address``).
    """

    def __init__(
        self,
        local_host_id: str,
        local_address: str,
        seeds: Sequence[str],
        send: Send,
        *,
        generation: int,
        initial_states: Mapping[str, Any] | None = None,
        rng: random.Random | None = None,
        interval: float = 0.25,
        phi_threshold: float = 8.0,
        cluster_name: str = DEFAULT_CLUSTER_NAME,
        exchange_timeout: float | None = None,
        max_local_pause: float | None = None,
        failure_detector: FailureDetector | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not (interval > 0 and math.isfinite(interval)):
            raise ValueError(f"gossip interval must be a positive number, not {interval!r}")
        if type(generation) is not int or generation < 0:
            raise ValueError(f"generation must be a non-negative integer, not {generation!r}")
        self.local_host_id = check_host_id(local_host_id)
        self.local_address = check_address(local_address)
        self.seeds: tuple[str, ...] = tuple(dict.fromkeys(check_address(s) for s in seeds))
        self.cluster_name = check_cluster_name(cluster_name)
        self.interval = float(interval)
        self.exchange_timeout = (
            max(1.0, 4 * self.interval) if exchange_timeout is None else exchange_timeout
        )
        self.max_local_pause = (
            max(5.0, 4 * self.interval) if max_local_pause is None else max_local_pause
        )
        if not self.exchange_timeout > 0:
            raise ValueError(f"exchange timeout must be positive, not {exchange_timeout!r}")
        if not self.max_local_pause > self.interval:
            raise ValueError("max_local_pause must be longer than the gossip interval")
        self._send = send
        self._wall = wall
        self.clock_offsets = ClockOffsets()
        self._rng = rng if rng is not None else random.Random()
        self.failure_detector = failure_detector or FailureDetector(
            threshold=phi_threshold, initial_interval=2 * self.interval
        )

        # The local node: one version counter for heartbeat and application states.
        self._version = 0
        states = dict(initial_states or {})
        for fixed_key, expected in (
            (AppState.HOST_ID, self.local_host_id),
            (AppState.ADDRESS, self.local_address),
        ):
            if states.setdefault(fixed_key.value, expected) != expected:
                raise ValueError(
                    f"initial {fixed_key} {states[fixed_key.value]!r} is not {expected!r}"
                )
        # the clock offset starts at 0 and is gossiped again only when it moves
        states.setdefault(AppState.CLOCK_OFFSET_MS.value, 0)
        app: dict[str, VersionedValue] = {}
        for raw_key, value in states.items():
            key = check_app_key(raw_key)
            app[key] = VersionedValue(check_app_value(key, value), self._next_version())
        heartbeat = HeartBeatState(generation, self._next_version())
        self._states: dict[str, EndpointState] = {self.local_host_id: EndpointState(heartbeat, app)}

        self._live: set[str] = set()  # peers judged alive (never the local node)
        self._down_since: dict[str, float] = {}  # known peers not alive, since when
        self._listeners: list[Listener] = []
        self._in_flight: set[str] = set()  # addresses with an exchange under way
        self._last_check: float | None = None
        self._running = False
        self._warned_duplicate = False

    # ------------------------------------------------------------------------------------------
    # local state

    def _next_version(self) -> int:
        self._version += 1
        return self._version

    @property
    def generation(self) -> int:
        return self._states[self.local_host_id].generation

    @property
    def local_state(self) -> EndpointState:
        return self._states[self.local_host_id]

    def set_application_state(self, key: str, value: Any) -> None:
        """Set one application state of the local node at a new version; event ``change``."""
        self.set_application_states({key: value})

    def set_application_states(self, values: Mapping[str, Any]) -> None:
        """Set several application states of the local node at once (e.g. STATUS and TOKENS)."""
        checked: dict[str, Any] = {}
        for raw_key, value in values.items():
            key = check_app_key(raw_key)
            checked[key] = check_app_value(key, value)
        for key, fixed in (
            (AppState.HOST_ID, self.local_host_id),
            (AppState.ADDRESS, self.local_address),
        ):
            if key.value in checked and checked[key.value] != fixed:
                raise ValueError(f"the local {key} cannot change (it is {fixed!r})")
        if not checked:
            return
        local = self.local_state
        updates = {
            key: VersionedValue(value, self._next_version()) for key, value in checked.items()
        }
        state = local.merged(local.heartbeat, updates)
        self._states[self.local_host_id] = state
        self._emit(EVENT_CHANGE, self.local_host_id, state)

    def add_saved_endpoint(self, host_id: str, generation: int, states: Mapping[str, Any]) -> bool:
        """Know ``host_id`` from what this node saved before it restarted (``ringd.gms.peers``),
        as Cassandra's ``addSavedEndpoint``: DOWN until gossip hears from it, at the saved
        ``generation`` with every version 0, so that any news about it (the same generation
        with real versions, or a higher generation) replaces it as usual. Ignored (False) for
        the local node or a host id gossip already knows. Raises ValueError on a bad state."""
        host_id = check_host_id(host_id)
        if host_id == self.local_host_id or host_id in self._states:
            return False
        app = {
            check_app_key(k): VersionedValue(check_app_value(check_app_key(k), v), 0)
            for k, v in states.items()
        }
        state = EndpointState(HeartBeatState(generation, 0), app)
        if state.host_id not in (None, host_id):
            raise ValueError(f"saved state of {host_id!r} claims HOST_ID {state.host_id!r}")
        self._states[host_id] = state
        self._down_since[host_id] = trio.current_time()
        return True

    def assassinate(self, address: str) -> str:
        """Remove the endpoint gossiping ``address``, as Cassandra's ``assassinateEndpoint``:
        its state is replaced by one with a newer generation whose STATUS is LEFT, which gossip
        spreads to every node (each drops it from the ring and from its saved peers). The
        endpoint must be down. Its host id; ``ValueError`` with a one-line reason otherwise."""
        address = check_address(address)
        host_id = self.host_id_for_address(address)
        if host_id is None:
            raise ValueError(f"no endpoint at {address} in gossip")
        if host_id == self.local_host_id:
            raise ValueError(f"{address} is this node; assassinate it from another node")
        if self.is_alive(host_id):
            raise ValueError(f"{address} ({host_id}) is UP; stop it before assassinating it")
        self.mark_left(host_id)
        logger.warning("assassinated node %s (%s): marked LEFT", host_id, address)
        return host_id

    def mark_left(self, host_id: str) -> None:
        """Replace the state of the (down) endpoint ``host_id`` by one with a newer generation
        whose STATUS is LEFT; gossip spreads it and every node forgets the endpoint."""
        old = self._states[host_id]
        version = old.max_version + 1
        left = old.merged(
            HeartBeatState(old.generation + 1, version),
            {AppState.STATUS.value: VersionedValue(Status.LEFT.value, version)},
        )
        self._apply({host_id: left})

    def _beat(self) -> None:
        local = self.local_state
        heartbeat = HeartBeatState(local.generation, self._next_version())
        self._states[self.local_host_id] = EndpointState(heartbeat, local.app_states)

    # ------------------------------------------------------------------------------------------
    # queries

    def endpoint_states(self) -> dict[str, EndpointState]:
        """Every known endpoint's state by host id, the local node included."""
        return dict(self._states)

    def endpoint_state(self, host_id: str) -> EndpointState | None:
        return self._states.get(host_id)

    def is_alive(self, host_id: str) -> bool:
        """Whether gossip judges ``host_id`` alive (the local node always is)."""
        return host_id == self.local_host_id or host_id in self._live

    def live_members(self) -> list[str]:
        """Host ids judged alive, the local node included, sorted."""
        return sorted({self.local_host_id, *self._live})

    def unreachable_members(self) -> list[str]:
        """Known host ids not judged alive, sorted."""
        return sorted(self._down_since)

    def downtime(self, host_id: str) -> float | None:
        """Seconds since ``host_id`` was judged dead (or first heard of, if it never was alive);
        None if it is alive or unknown."""
        since = self._down_since.get(host_id)
        return None if since is None else max(0.0, trio.current_time() - since)

    def address_of(self, host_id: str) -> str | None:
        state = self._states.get(host_id)
        return None if state is None else state.address

    def host_id_for_address(self, address: str) -> str | None:
        """The host id gossiping ``address``, preferring live nodes and newer generations."""
        best: tuple[bool, int, str] | None = None
        for host_id, state in self._states.items():
            if state.address == address:
                rank = (self.is_alive(host_id), state.generation, host_id)
                if best is None or rank > best:
                    best = rank
        return None if best is None else best[2]

    def phi(self, host_id: str) -> float:
        return self.failure_detector.phi(host_id, trio.current_time())

    def gossip_info(self) -> dict[str, dict[str, Any]]:
        """Per endpoint (like ``nodetool gossipinfo``): generation, heartbeat, versioned
        application states, alive, phi (None for the local node) and downtime in seconds."""
        now = trio.current_time()
        info: dict[str, dict[str, Any]] = {}
        for host_id in sorted(self._states):
            state = self._states[host_id]
            local = host_id == self.local_host_id
            since = self._down_since.get(host_id)
            info[host_id] = {
                "address": state.address,
                "local": local,
                "generation": state.generation,
                "heartbeat": state.heartbeat.version,
                "max_version": state.max_version,
                "alive": self.is_alive(host_id),
                "phi": None if local else round(self.failure_detector.phi(host_id, now), 3),
                "downtime": None if since is None else round(max(0.0, now - since), 3),
                "states": {
                    key: {
                        "value": list(vv.value) if isinstance(vv.value, tuple) else vv.value,
                        "version": vv.version,
                    }
                    for key, vv in sorted(state.app_states.items())
                },
            }
        return info

    # ------------------------------------------------------------------------------------------
    # listeners

    def subscribe(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback(event, host_id, state)`` on every event; returns an unsubscriber."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def _emit(self, event: str, host_id: str, state: EndpointState) -> None:
        for callback in list(self._listeners):
            try:
                callback(event, host_id, state)
            except Exception:
                logger.exception("gossip listener %r failed on %s %s", callback, event, host_id)

    # ------------------------------------------------------------------------------------------
    # liveness

    def _mark_alive(self, host_id: str, state: EndpointState) -> None:
        if host_id in self._live:
            return
        self._live.add(host_id)
        self._down_since.pop(host_id, None)
        logger.info("node %s (%s) is now UP", host_id, state.address)
        self._emit(EVENT_ALIVE, host_id, state)

    def _mark_dead(self, host_id: str, now: float) -> None:
        if host_id not in self._live:
            return
        self._live.discard(host_id)
        self._down_since[host_id] = now
        state = self._states[host_id]
        logger.info("node %s (%s) is now DOWN", host_id, state.address)
        self._emit(EVENT_DEAD, host_id, state)

    def _check_failures(self, now: float) -> None:
        last, self._last_check = self._last_check, now
        if last is not None and now - last > self.max_local_pause:
            logger.warning(
                "gossip was paused locally for %.1f s; not convicting anyone this round", now - last
            )
            return
        threshold = self.failure_detector.threshold
        for host_id in sorted(self._live):
            if self.failure_detector.phi(host_id, now) > threshold:
                self._mark_dead(host_id, now)

    # ------------------------------------------------------------------------------------------
    # applying remote state

    def _apply(self, states: Mapping[str, EndpointState]) -> None:
        now = trio.current_time()
        for host_id, remote in states.items():
            if host_id == self.local_host_id:
                if remote.generation > self.generation and not self._warned_duplicate:
                    self._warned_duplicate = True
                    logger.warning(
                        "a peer knows host id %s with generation %d, newer than ours (%d): "
                        "is another node running with this host id?",
                        host_id,
                        remote.generation,
                        self.generation,
                    )
                continue
            local = self._states.get(host_id)
            if local is None:
                self._states[host_id] = remote
                self._down_since[host_id] = now
                self.failure_detector.report(host_id, now)
                logger.info("discovered node %s (%s)", host_id, remote.address)
                self._emit(EVENT_JOIN, host_id, remote)
                continue
            if remote.generation > local.generation:
                if local.generation > 0 and (
                    remote.generation > local.generation + MAX_GENERATION_DIFFERENCE
                ):
                    logger.warning(
                        "ignoring generation %d for %s: more than a year ahead of %d",
                        remote.generation,
                        host_id,
                        local.generation,
                    )
                    continue
                self._states[host_id] = remote
                if host_id not in self._live:
                    self.failure_detector.remove(host_id)
                self.failure_detector.report(host_id, now)
                logger.info("node %s (%s) restarted", host_id, remote.address)
                self._emit(EVENT_RESTART, host_id, remote)
                self._after_news(host_id, remote, now)
                continue
            if remote.generation < local.generation or remote.max_version <= local.max_version:
                continue
            heartbeat = local.heartbeat
            if remote.heartbeat.version > heartbeat.version:
                heartbeat = remote.heartbeat
            updates = {
                key: vv
                for key, vv in remote.app_states.items()
                if key not in local.app_states or vv.version > local.app_states[key].version
            }
            state = local.merged(heartbeat, updates)
            self._states[host_id] = state
            self.failure_detector.report(host_id, now)
            if updates:
                self._emit(EVENT_CHANGE, host_id, state)
            self._after_news(host_id, state, now)

    def _after_news(self, host_id: str, state: EndpointState, now: float) -> None:
        """The node's version moved: it is alive, unless it announced it has left."""
        if state.is_dead_state:
            self._mark_dead(host_id, now)
        else:
            self._mark_alive(host_id, state)

    # ------------------------------------------------------------------------------------------
    # the receiving side

    def _digests(self) -> list[GossipDigest]:
        return [
            GossipDigest(host_id, state.generation, state.max_version)
            for host_id, state in self._states.items()
        ]

    def handle_syn(self, args: dict[str, Any]) -> dict[str, Any]:
        """Answer a ``gossip_syn`` with the ack: what we want, and what we know better.

        Raises ValueError on malformed arguments or a different cluster name.
        """
        syn = GossipSyn.from_wire(args)
        cluster, digests = syn.cluster, syn.digests
        if cluster != self.cluster_name:
            raise ValueError(
                f"cluster name mismatch: this node is in cluster {self.cluster_name!r}, "
                f"the gossiping peer in {cluster!r}; check cluster_name and seeds"
            )
        requests: list[GossipDigest] = []
        deltas: dict[str, EndpointState] = {}
        mentioned: set[str] = set()
        for digest in digests:
            host_id = digest.host_id
            mentioned.add(host_id)
            local = self._states.get(host_id)
            if local is None:
                if host_id != self.local_host_id:
                    requests.append(GossipDigest(host_id, digest.generation, 0))
                continue
            if digest.generation > local.generation:
                if host_id != self.local_host_id:
                    requests.append(GossipDigest(host_id, digest.generation, 0))
            elif digest.generation < local.generation:
                deltas[host_id] = local
            else:
                local_max = local.max_version
                if digest.max_version > local_max:
                    if host_id != self.local_host_id:
                        requests.append(GossipDigest(host_id, local.generation, local_max))
                elif digest.max_version < local_max:
                    delta = local.delta_since(digest.max_version)
                    if delta is not None:
                        deltas[host_id] = delta
        for host_id, state in self._states.items():
            if host_id not in mentioned:
                deltas[host_id] = state
        return ack_to_wire(requests, deltas, int(self._wall() * 1_000_000))

    def handle_ack2(self, args: dict[str, Any]) -> dict[str, Any]:
        """Apply the states of a ``gossip_ack2``; raises ValueError on malformed arguments."""
        self._apply(GossipAck2.from_wire(args).states)
        return {}

    def _deltas_for(self, requests: Sequence[GossipDigest]) -> dict[str, EndpointState]:
        out: dict[str, EndpointState] = {}
        for digest in requests:
            local = self._states.get(digest.host_id)
            if local is None:
                continue
            if local.generation == digest.generation:
                delta = local.delta_since(digest.max_version)
                if delta is not None:
                    out[digest.host_id] = delta
            elif local.generation > digest.generation:
                out[digest.host_id] = local
        return out

    # ------------------------------------------------------------------------------------------
    # the gossiping side

    async def _exchange(self, address: str) -> bool:
        """One syn / ack / ack2 round with ``address``. True when it completed: the peer then
        holds the local node's state as it was at the syn (it asked for nothing of ours, or
        it answered the ack2 that carried it)."""
        try:
            with trio.move_on_after(self.exchange_timeout):
                syn = syn_to_wire(self.cluster_name, self._digests())
                sent, sent_mono = self._wall(), trio.current_time()
                ack = await self._send(address, GOSSIP_SYN, syn)
                received, received_mono = self._wall(), trio.current_time()
                requests, states = parse_ack(ack)
                self._apply(states)
                peer_time, peer = ack_time(ack), self.host_id_for_address(address)
                if peer_time is not None and peer is not None and peer != self.local_host_id:
                    self.clock_offsets.record(
                        peer,
                        sent,
                        peer_time / 1e6,
                        received,
                        monotonic=(sent_mono, received_mono),
                    )
                deltas = self._deltas_for(requests)
                if deltas:
                    await self._send(address, GOSSIP_ACK2, ack2_to_wire(deltas))
                return True
            logger.debug("gossip exchange with %s timed out", address)
        except Exception as exc:
            logger.debug("gossip exchange with %s failed: %r", address, exc)
        finally:
            self._in_flight.discard(address)
        return False

    async def spread_local_state(self, timeout: float) -> list[str]:
        """Exchange with every live peer, again each round for those not reached, until each
        holds the local node's current state or ``timeout`` passes; the addresses not reached.
        A node that announces JOINING or LEAVING waits on this before it streams, and one that
        announces LEFT before it stops, so that every coordinator sends writes of the moving
        ranges to the right nodes (a fixed delay was too short on a loaded host)."""
        pending = {a for h in self._live if (a := self.address_of(h)) and a != self.local_address}

        async def reach(address: str) -> None:
            self._in_flight.add(address)
            if await self._exchange(address):
                pending.discard(address)

        with trio.move_on_after(timeout):
            while pending:
                async with trio.open_nursery() as nursery:
                    for address in sorted(pending):
                        nursery.start_soon(reach, address)
                if pending:
                    await trio.sleep(self.interval)
        return sorted(pending)

    async def announce_shutdown(self, timeout: float = 2.0) -> None:
        """Tell every live peer at once that this node is stopping (STATUS SHUTDOWN), so they
        mark it down now instead of waiting for the failure detector, as Cassandra does (those
        not reached are tried again each round until ``timeout``)."""
        self.set_application_state("STATUS", "SHUTDOWN")
        await self.spread_local_state(timeout)

    def _start_exchange(self, nursery: trio.Nursery, address: str | None) -> None:
        if address is None or address == self.local_address or address in self._in_flight:
            return
        self._in_flight.add(address)
        nursery.start_soon(self._exchange, address, name=f"gossip with {address}")

    def _round(self, nursery: trio.Nursery) -> None:
        """One gossip round: heartbeat, choose peers (Cassandra's rules), failure check."""
        now = trio.current_time()
        self._beat()
        rng = self._rng
        live = sorted(h for h in self._live if self.address_of(h))
        unreachable = sorted(
            h for h in self._down_since if self.address_of(h) and not self._states[h].is_dead_state
        )
        seeds = [s for s in self.seeds if s != self.local_address]

        gossiped_to_seed = False
        if live:
            address = self.address_of(rng.choice(live))
            self._start_exchange(nursery, address)
            gossiped_to_seed = address in seeds
        if unreachable and rng.random() < len(unreachable) / (len(live) + 1):
            self._start_exchange(nursery, self.address_of(rng.choice(unreachable)))
        if seeds and (not gossiped_to_seed or len(live) < len(seeds)):
            if not live or rng.random() <= len(seeds) / (len(live) + len(unreachable)):
                self._start_exchange(nursery, rng.choice(seeds))

        self._check_failures(now)
        self._publish_clock_offset()

    def local_clock_offset(self) -> Offset | None:
        """This node's clock minus the cluster's, from the live peers' measured offsets."""
        return self.clock_offsets.local_offset(self._live)

    def _publish_clock_offset(self) -> None:
        """Gossip this node's measured offset (when it moved by 10 ms or more), so that every
        node's ``status`` can show every node's clock."""
        offset = self.local_clock_offset()
        if offset is None:
            return
        ms = round(offset.seconds * 1000)
        last = self.local_state.get(AppState.CLOCK_OFFSET_MS.value)
        if last is None or abs(ms - last) >= 10:
            self.set_application_state(AppState.CLOCK_OFFSET_MS.value, ms)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Gossip every ``interval`` until cancelled. May be run again after it was cancelled."""
        if self._running:
            raise RuntimeError("this gossiper is already running")
        self._running = True
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                deadline = trio.current_time()
                while True:
                    try:
                        self._round(nursery)
                    except Exception:
                        logger.exception("gossip round failed")
                    deadline = max(deadline + self.interval, trio.current_time())
                    await trio.sleep_until(deadline)
        finally:
            self._running = False
            self._in_flight.clear()
