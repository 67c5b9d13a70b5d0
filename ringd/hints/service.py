"""The one front door to hinted handoff: deciding whether to keep a hint, and delivering hints.

``HintsService.submit`` is what the coordinator calls for a replica that missed a write (down at
the start of the write, failed or timed out): it keeps a hint unless handoff is disabled (for
the node or the target's datacenter), the target has been down longer than the hint window, or
the target's hints already fill ``max_hints_size_per_host``; each refusal is counted.

``HintsService.run`` is the dispatcher: for every host that has hints and that gossip sees alive,
it replays the host's hint files in pages (``mutate`` to the host, or to the key's current
replicas if the host has left the ring), waits for the acks, records the position reached and
deletes delivered files. A hint older than its keyspace's gc_grace is dropped (replaying it could
resurrect deleted data), as is a hint for a dropped keyspace. Delivery is throttled to
``throttle_kb`` KiB/s per destination and can be paused.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from ringd.db.cells import Row
from ringd.hints.store import Hint, HintFile, HintStore
from ringd.metrics import Histogram
from ringd.net.channel import CallTimeout
from ringd.protocol.errors import ProtocolError
from ringd.service.messages import MutateHintedRequest

log = logging.getLogger(__name__)

Send = Callable[[str, str, dict[str, Any], float], Awaitable[Any]]


class Membership(Protocol):
    """What the service needs to know of the cluster (the node's topology provides it)."""

    def is_alive(self, host_id: str) -> bool: ...

    def in_ring(self, host_id: str) -> bool: ...

    def address_of(self, host_id: str) -> str | None: ...

    def dc_of(self, host_id: str) -> str | None: ...

    def down_seconds(self, host_id: str) -> float | None: ...

    def replicas_for(self, keyspace: str, key: bytes) -> list[str]: ...

    def node_count(self) -> int: ...


class Schema(Protocol):
    def gc_grace_of(self, keyspace: str) -> int | None:
        """The keyspace's gc_grace_seconds; None if it does not exist (or was dropped)."""
        ...


@dataclass
class HintSettings:
    """The knobs an operator can turn (at start from the config, at runtime by admin verbs)."""

    enabled: bool = True
    disabled_dcs: set[str] = field(default_factory=set)
    max_hint_window_ms: int = 3 * 3600 * 1000
    max_hints_size_per_host: int = 128 * 1024 * 1024
    throttle_kb: int = 1024  # shared among the other nodes (as Cassandra); 0: unthrottled
    paused: bool = False
    page_bytes: int = 256 * 1024
    delivery_interval_s: float = 1.0
    write_timeout_s: float = 2.0


COUNTERS = (
    "created",
    "delivered",
    "failed",
    "timed_out",
    "not_stored_window",
    "not_stored_size",
    "not_stored_disabled",
    "not_stored_disk",
    "expired",
    "dropped_keyspace",
    "delivered_bytes",
)


class HintsService:
    def __init__(
        self,
        store: HintStore,
        *,
        membership: Membership,
        schema: Schema,
        send: Send,
        settings: HintSettings | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.membership = membership
        self.schema = schema
        self.send = send
        self.settings = settings or HintSettings()
        self.wall = wall
        self.counters: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
        self.latency: dict[str, Histogram] = defaultdict(Histogram)
        self.dispatching: set[str] = set()
        # sloppy quorum: rows this node holds for down replicas, by (keyspace, key), then by
        # target, with how many of its hints are still undelivered (for reads and handoff)
        self.held: dict[tuple[str, bytes], dict[str, tuple[Row, int]]] = {}
        self._wake = trio.Event()

    # -- keeping hints ------------------------------------------------------------------------

    def down_since_ms(self, host_id: str) -> float | None:
        """When ``host_id`` went down, as far as anything here remembers: gossip's downtime or
        the oldest hint still kept for it (which survives restarts and gossip flaps)."""
        now_ms = self.wall() * 1000
        candidates = []
        down = self.membership.down_seconds(host_id)
        if down is not None:
            candidates.append(now_ms - down * 1000)
        host = self.store.hosts.get(host_id)
        if host is not None and host.files:
            candidates.append(min(f.created_ms for f in host.files))
        return min(candidates) if candidates else None

    def submit(self, host_id: str, keyspace: str, key: bytes, row: Row) -> bool:
        """Keep a hint of ``row`` for ``host_id`` if the rules allow; True if kept."""
        s = self.settings
        counters = self.counters[host_id]
        dc = self.membership.dc_of(host_id)
        if not s.enabled or (dc is not None and dc in s.disabled_dcs):
            counters["not_stored_disabled"] += 1
            return False
        since = self.down_since_ms(host_id)
        now_ms = self.wall() * 1000
        if since is not None and now_ms - since > s.max_hint_window_ms:
            counters["not_stored_window"] += 1
            return False
        host = self.store.hosts.get(host_id)
        if host is not None and host.pending_bytes >= s.max_hints_size_per_host:
            counters["not_stored_size"] += 1
            return False
        try:
            self.store.add(host_id, Hint(keyspace, key, row, int(now_ms * 1000)))
        except OSError as exc:  # a full disk: the write goes on without its hint
            counters["not_stored_disk"] += 1
            log.warning("cannot keep a hint for %s: %s", host_id, exc.strerror)
            return False
        counters["created"] += 1
        return True

    def throttle_bytes(self) -> float:
        """The delivery rate to one destination, bytes/s (0: unthrottled): the node's throttle
        divided among the other nodes, as Cassandra does."""
        if self.settings.throttle_kb <= 0:
            return 0.0
        return self.settings.throttle_kb * 1024.0 / max(1, self.membership.node_count() - 1)

    def hold(self, host_id: str, keyspace: str, key: bytes, row: Row) -> bool:
        """Sloppy quorum: keep a write meant for ``host_id`` (down) as a hint, and serve it to
        reads until it is handed off. The same rules as :meth:`submit`; True if kept."""
        if not self.submit(host_id, keyspace, key, row):
            return False
        by_target = self.held.setdefault((keyspace, key), {})
        have = by_target.get(host_id)
        by_target[host_id] = (row, 1) if have is None else (have[0].merge(row), have[1] + 1)
        return True

    def truncate(self, host_id: str | None = None) -> int:
        """Delete stored hints (for one target or all), and what this node held for it; the
        files deleted."""
        for by_target in self.held.values():
            for target in [t for t in by_target if host_id is None or t == host_id]:
                del by_target[target]
        self.held = {k: v for k, v in self.held.items() if v}
        return self.store.truncate(host_id)

    def held_row(self, keyspace: str, key: bytes) -> Row | None:
        """The merge of the rows this node holds for others under ``key`` (sloppy quorum)."""
        merged: Row | None = None
        for row, _ in self.held.get((keyspace, key), {}).values():
            merged = row if merged is None else merged.merge(row)
        return merged

    def _handed_off(self, host_id: str, hint: Hint) -> None:
        by_target = self.held.get((hint.keyspace, hint.key))
        if not by_target or host_id not in by_target:
            return
        row, count = by_target[host_id]
        if count <= 1:
            del by_target[host_id]
            if not by_target:
                del self.held[(hint.keyspace, hint.key)]
        else:
            by_target[host_id] = (row, count - 1)

    def pending_hosts(self) -> list[str]:
        return [h for h, host in self.store.hosts.items() if host.files]

    def wake(self) -> None:
        """Look for deliverable hints now (gossip saw a node come up, or handoff resumed)."""
        self._wake.set()

    # -- delivering ---------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver hints to live hosts, one dispatcher per host, until cancelled."""
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                with trio.move_on_after(self.settings.delivery_interval_s):
                    await self._wake.wait()
                self._wake = trio.Event()
                self.store.sync()
                if self.settings.paused:
                    continue
                for host_id in self.pending_hosts():
                    if host_id not in self.dispatching and self.membership.is_alive(host_id):
                        self.dispatching.add(host_id)
                        nursery.start_soon(self._dispatch_host, host_id)

    async def _dispatch_host(self, host_id: str) -> None:
        counters = self.counters[host_id]
        before = counters["delivered"], counters["delivered_bytes"]
        started = time.monotonic()
        complete = False
        try:
            complete = await self.dispatch(host_id)
        except Exception:  # a bug must not stop delivery to every other host
            log.exception("hint delivery to %s failed", host_id)
        finally:
            self.dispatching.discard(host_id)
            rows = counters["delivered"] - before[0]
            # one line per replay that delivered something (a host that stays unreachable
            # would otherwise log at every delivery interval)
            (log.info if rows else log.debug)(
                "hint delivery to %s (%s) %s: %d rows, %d bytes, %d ms",
                self.membership.address_of(host_id) or "?",
                host_id,
                "finished" if complete else "stopped",
                rows,
                counters["delivered_bytes"] - before[1],
                (time.monotonic() - started) * 1000,
            )

    async def dispatch(self, host_id: str) -> bool:
        """Replay every sealed hint of ``host_id``; True if all were delivered."""
        self.store.seal(host_id)
        complete = True
        for hint_file in self.store.replayable(host_id):
            if not await self._dispatch_file(host_id, hint_file):
                if hint_file.corrupted is None:
                    return False  # the host went away or a send failed: try again later
                complete = False  # a damaged file: go on with the others
        return complete

    async def _dispatch_file(self, host_id: str, hint_file: HintFile) -> bool:
        s = self.settings
        counters = self.counters[host_id]
        while hint_file.pending > 0 and hint_file.corrupted is None:
            if s.paused or not self.membership.is_alive(host_id):
                return False
            page = list(self.store.read(hint_file, s.page_bytes))
            if not page:
                return hint_file.corrupted is None and hint_file.pending == 0
            start = trio.current_time()
            sent_bytes = 0
            for _, hint in page:
                outcome = await self._deliver(host_id, hint)
                if outcome == "failed":
                    return False  # resume from the recorded position next time
                if outcome == "delivered":
                    counters["delivered"] += 1
                self._handed_off(host_id, hint)
            sent_bytes = page[-1][0] - hint_file.delivered
            self.store.delivered(hint_file, page[-1][0])
            counters["delivered_bytes"] += sent_bytes
            rate = self.throttle_bytes()
            if rate > 0:
                # hold delivery to the throttle: this page may not finish sooner than that
                await trio.sleep_until(start + sent_bytes / rate)
        return hint_file.corrupted is None

    async def _deliver(self, host_id: str, hint: Hint) -> str:
        """Send one hint: "delivered", "skipped" (expired or keyspace gone) or "failed"."""
        counters = self.counters[host_id]
        gc_grace = self.schema.gc_grace_of(hint.keyspace)
        if gc_grace is None:
            counters["dropped_keyspace"] += 1
            return "skipped"
        if hint.created_us / 1e6 + gc_grace < self.wall():
            counters["expired"] += 1
            return "skipped"
        if self.membership.in_ring(host_id):
            targets = [host_id]
        else:  # the host left or its tokens moved away: the key's replicas now
            targets = self.membership.replicas_for(hint.keyspace, hint.key)
        args = {"ks": hint.keyspace, "key": hint.key, "row": hint.row.to_wire()}
        start = trio.current_time()
        for target in targets:
            address = self.membership.address_of(target)
            if address is None:
                counters["failed"] += 1
                return "failed"
            try:
                await self.send(address, "mutate", args, self.settings.write_timeout_s)
            except CallTimeout:
                counters["timed_out"] += 1
                return "failed"
            except (ProtocolError, OSError) as exc:
                counters["failed"] += 1
                log.debug("hint for %s not delivered: %s", target, exc)
                return "failed"
        self.latency[host_id].add(trio.current_time() - start)
        return "delivered"

    async def hand_over(self, address: str) -> int:
        """Decommission: give every stored hint to the node at ``address``, which keeps each
        as a hint for its target (``mutate_hinted``); how many. A failed send raises."""
        handed = 0
        for host_id in self.pending_hosts():
            self.store.seal(host_id)
            for hint_file in self.store.replayable(host_id):
                while hint_file.pending > 0 and hint_file.corrupted is None:
                    page = list(self.store.read(hint_file, self.settings.page_bytes))
                    if not page:
                        break
                    for _, hint in page:
                        wire = MutateHintedRequest(hint.keyspace, hint.key, hint.row, host_id)
                        await self.send(
                            address, "mutate_hinted", wire.to_wire(), self.settings.write_timeout_s
                        )
                        self._handed_off(host_id, hint)
                        handed += 1
                    self.store.delivered(hint_file, page[-1][0])
        return handed

    # -- views --------------------------------------------------------------------------------

    def totals(self) -> dict[str, int]:
        """Every counter summed over the target hosts."""
        out = dict.fromkeys(COUNTERS, 0)
        for counters in self.counters.values():
            for name, value in counters.items():
                out[name] += value
        return out

    def by_host(self) -> dict[str, dict[str, Any]]:
        """Per target host ever hinted: its counters and delivery latency percentiles (µs)."""
        out: dict[str, dict[str, Any]] = {}
        for host_id, counters in self.counters.items():
            latency = self.latency.get(host_id)
            out[host_id] = {
                **counters,
                "delivery_p50_us": latency.percentile(50) if latency else 0.0,
                "delivery_p99_us": latency.percentile(99) if latency else 0.0,
            }
        return out

    def pending(self) -> list[dict[str, Any]]:
        """Per host with hints: what the store says, the counters, and the estimated replay
        time at the current throttle."""
        out = []
        for desc in self.store.describe():
            host_id = desc["host_id"]
            throttle = self.throttle_bytes()
            out.append(
                {
                    **desc,
                    "counters": dict(self.counters[host_id]),
                    "replay_seconds": (desc["total_bytes"] / throttle) if throttle else 0.0,
                    "dispatching": host_id in self.dispatching,
                }
            )
        return out
