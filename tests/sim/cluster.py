"""Simulated nodes: real ``ringd.node.Node`` objects wired to the simulated network and clock.

:func:`make_node` is the only place that builds a node; everything else drives it through
:class:`SimNode` (start, clean stop, crash, pause, clock skew).
"""

from __future__ import annotations

import logging
import math
import os
import random
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import trio

from ringd.config import Config
from ringd.db.cells import Row
from ringd.dht.tokens import random_tokens
from ringd.node import Node
from ringd.protocol import messages

from .network import Endpoint, Handlers, Network, Thunk

log = logging.getLogger("sim.cluster")

#: the wall clock of every node is BASE + the trio (mock) clock + the node's skew
BASE_WALL = 1_700_000_000.0
#: first gossip generation; above int(time.time()) so that Node keeps counting up from it
BASE_GENERATION = 3_000_000_000
CLUSTER = "sim"


def make_node(
    config: Config,
    endpoint: Endpoint,
    wall: Callable[[], float],
    rng: random.Random,
) -> Node:
    """Build a node on ``config.data_dir`` talking through ``endpoint``, on the wall clock
    ``wall``, gossiping with ``rng``, through the node's seam for in-process use. Nothing binds
    a socket."""
    node = Node(config, messaging=endpoint, wall=wall)  # type: ignore[arg-type]
    node.gossiper._rng = rng  # noqa: SLF001 - the one collaborator the seam does not take
    # group-commit fsyncs always inline: whether one goes to a thread must not depend on the
    # real disk's timing, or a seed would not replay exactly
    node.engine.commitlog.inline_sync_s = math.inf
    return node


def seed_local_state(data_dir: Path, host_id: str, tokens: list[int]) -> None:
    """Write ``system/local.cbor`` as a node that started before would have, so that the host
    id, tokens and gossip generation are chosen by the run's RNG, not by ``uuid4``/time."""
    system = data_dir / "system"
    system.mkdir(parents=True, exist_ok=True)
    state = {
        "host_id": host_id,
        "tokens": tokens,
        "generation": BASE_GENERATION,
        "cluster_name": CLUSTER,
    }
    (system / "local.cbor").write_bytes(cbor2.dumps(state))


class SimNode:
    """One node's place in the simulation: its address and data survive restarts; each start
    is a new incarnation (a new process) with a new ``Node``."""

    def __init__(
        self,
        index: int,
        address: str,
        data_dir: Path,
        network: Network,
        rng: random.Random,
        seeds: list[str],
        settings: dict[str, Any],
        extra_handlers: Callable[[SimNode], Handlers],
    ) -> None:
        self.index = index
        self.address = address
        self.data_dir = data_dir
        self.network = network
        self.rng = rng
        self.seeds = seeds
        self.settings = settings
        self.extra_handlers = extra_handlers
        self.incarnation = 0
        self.up = False
        #: serving clients: the node's gossip settled after it started (``Node.wait_for_gossip``)
        self.serving = False
        self.paused = False
        self.held_in: list[Thunk] = []
        self.held_out: list[Thunk] = []
        self.handlers: Handlers = {}
        self.nursery: trio.Nursery | None = None
        self.node: Node | None = None
        self.skew_ms = 0
        self.host_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self.tokens = random_tokens(int(settings.get("num_tokens", 8)), rng)
        #: every (key, timestamp) this node's engine was asked to apply, over all incarnations
        self.applied: dict[bytes, set[int]] = {}
        self.applies = 0  # how many applies were asked of this node's engines
        #: (key, timestamp) -> when this node's engine was first asked to apply it
        self.applied_at: dict[tuple[bytes, int], float] = {}
        #: (when, how) each incarnation ended: "stop", "crash" or "power loss"
        self.downs: list[tuple[float, str]] = []
        self._scope: trio.CancelScope | None = None
        self._stopped: trio.Event | None = None
        seed_local_state(data_dir, self.host_id, self.tokens)

    def config(self) -> Config:
        return Config(
            listen=self.address,
            data_dir=str(self.data_dir),
            cluster_name=CLUSTER,
            seeds=list(self.seeds),
            clock_offset_ms=self.skew_ms,
            **self.settings,
        )

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self, nursery: trio.Nursery) -> None:
        """Start a new incarnation: a fresh ``Node`` on the same data directory."""
        assert not self.up
        self.incarnation += 1
        await nursery.start(self._serve)

    async def _serve(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        wall_rng = random.Random(self.rng.getrandbits(64))
        node = make_node(self.config(), self.network.endpoint(self.address), _wall, wall_rng)
        self.node = node
        self._spy(node)
        self._stopped = trio.Event()
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                async with trio.open_nursery() as nursery:
                    # the node's services without the TCP server, signal handling and load report
                    await nursery.start(node.engine.run)
                    await nursery.start(node.proxy.run)
                    node.restore_peers()
                    await nursery.start(node.topology.run)
                    await nursery.start(node.schema_sync.run)
                    await nursery.start(node.gossiper.run)
                    await nursery.start(node.hints.run)
                    await nursery.start(node.peers.run)
                    await nursery.start(node.repair.run)
                    self.nursery = nursery
                    self.handlers = {
                        verb: (messages.VERBS[verb].mode, fn) for verb, fn in node.handlers.items()
                    }
                    self.handlers.update(self.extra_handlers(self))
                    self.up = True
                    task_status.started()
                    # as Node.run: peers reach it at once, clients once gossip settled
                    await node.wait_for_gossip()
                    self.serving = True
        finally:
            self.up = False
            self.serving = False
            self.nursery = None
            self._stopped.set()

    def _spy(self, node: Node) -> None:
        """Record every (key, timestamp) the engine is asked to apply (for the checkers)."""
        engine = node.engine
        apply_then = engine.apply_then
        applied = self.applied

        def recording(
            keyspace: str,
            key: bytes,
            update: Row,
            token: int | None,
            done: Any,
            encoded: bytes = b"",
        ) -> None:
            self.applies += 1
            stamps = applied.setdefault(key, set())
            new = {c.timestamp for c in update.cells.values()}
            if update.tombstone is not None:
                new.add(update.tombstone.timestamp)
            stamps.update(new)
            now = trio.current_time()
            for ts in new:
                self.applied_at.setdefault((key, ts), now)
            apply_then(keyspace, key, update, token, done, encoded)

        engine.apply_then = recording  # type: ignore[method-assign]

    async def _teardown(self) -> Node:
        """End the current incarnation's services (it is already dead to the network)."""
        node = self.node
        assert node is not None and self._scope is not None and self._stopped is not None
        self.up = False
        self.serving = False
        self.paused = False
        self.held_in.clear()
        self.held_out.clear()
        self._scope.cancel()
        await self._stopped.wait()
        return node

    async def stop(self) -> None:
        """A clean stop: announce the shutdown in gossip, stop, flush and close the engine."""
        node = self.node
        assert node is not None
        if self.paused:
            self.network.resume(self)
        with trio.move_on_after(2.0):
            await node.gossiper.announce_shutdown()
        self.downs.append((trio.current_time(), "stop"))
        await self._teardown()
        await node.engine.close()
        node.hints.store.close()
        os.close(node._lock_fd)  # noqa: SLF001

    async def crash(self, power_loss: bool) -> None:
        """Kill the process. ``power_loss``: the machine died too, so what the commit log had
        not fsynced is lost (a random prefix of it may have reached the disk)."""
        self.up = self.serving = False  # dead to the network at once
        self.downs.append((trio.current_time(), "power loss" if power_loss else "crash"))
        node = await self._teardown()
        engine = node.engine
        unsynced = [
            (seg.path, seg.synced, seg.end)
            for seg in engine.commitlog.segments
            if not seg.done and seg.end > seg.synced
        ]
        engine.crash()
        if power_loss:
            for path, synced, end in unsynced:
                keep = synced + self.rng.randrange(0, end - synced + 1)
                with open(path, "r+b") as f:  # noqa: ASYNC230 (the node is gone)
                    f.seek(keep)
                    f.write(bytes(end - keep))
        # the hint files stay as written (the sim does not model their loss at power loss)
        for host in node.hints.store.hosts.values():
            for hint_file in host.files:
                if hint_file.fd is not None:
                    os.close(hint_file.fd)
                    hint_file.fd = None
        os.close(node._lock_fd)  # noqa: SLF001

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.network.resume(self)

    def set_skew(self, skew_ms: int) -> None:
        self.skew_ms = skew_ms
        if self.node is not None:
            self.node.clock.offset_ms = skew_ms


def _wall() -> float:
    return BASE_WALL + trio.current_time()


class ClientHost:
    """The simulated client as a host of the network (never paused, never down)."""

    def __init__(self) -> None:
        self.address = Network.CLIENT
        self.incarnation = 1
        self.up = True
        self.paused = False
        self.held_in: list[Thunk] = []
        self.held_out: list[Thunk] = []
        self.handlers: Handlers = {}
        self.nursery: trio.Nursery | None = None
