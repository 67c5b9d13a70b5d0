"""One ringd node: opens its data directory, constructs every service and gives each the
collaborators it uses (the only module that knows them all), merges their verb handlers
(``ringd.verbs``) and serves them; runs until SIGTERM/SIGINT, then drains and exits cleanly.

A seam for in-process clusters (tests): ``Node(config, messaging=..., wall=...)`` takes a
messaging object with ``Messaging``'s ``call``/``send`` (the node then does not run it) and a
wall clock function (the hybrid clock, gossip and the generation read it);
``run(listen=False)`` runs the services without a listener or signal handling until cancelled;
``handlers`` is the merged ``{verb: handler}`` table, to run with each verb's mode
(``ringd.protocol.messages.VERBS``).

Signals: the first SIGTERM or SIGINT starts the drain; more of them while draining are logged
and ignored (the drain is bounded by ``drain_timeout_s``). SIGHUP re-reads the configuration
and applies what can change while running (the log level) and re-reads the TLS certificate
files; it never stops the node.
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import fields
from functools import partial
from pathlib import Path
from typing import Any

import cbor2
import trio

import ringd
from ringd import admin, loglevels, toppartitions, verbs
from ringd.admin import Admin
from ringd.auth import verbs as role_verbs
from ringd.auth.gate import Gate
from ringd.auth.node_tls import NodeTLS, TLSConfigError
from ringd.auth.peer import Initiator as PeerInitiator
from ringd.auth.peer import SecretFileError, load_secret_file
from ringd.auth.roles import ADMIN, RoleStore, RoleStoreError
from ringd.config import Config, ConfigError
from ringd.db.engine import EngineOptions, StorageEngine
from ringd.dht.tokens import Range
from ringd.fdlimit import fit_max_connections
from ringd.fsutil import atomic_write
from ringd.gms import verbs as gossip_verbs
from ringd.gms.gossiper import EVENT_ALIVE, Gossiper
from ringd.gms.peers import PeersFile
from ringd.gms.settle import wait_to_settle
from ringd.hints import verbs as hints_verbs
from ringd.hints.cluster import ClusterView
from ringd.hints.service import HintSettings, HintsService
from ringd.hints.store import HintStore
from ringd.metrics import CoordinatorMetrics, prometheus
from ringd.metrics.http import MetricsServer
from ringd.net.address import split_address
from ringd.net.messaging import Messaging
from ringd.net.server import Limits, Server
from ringd.protocol.errors import ErrorCode, InvalidRequest, ProtocolError
from ringd.protocol.messages import PEER, hello_args
from ringd.repair import verbs as repair_verbs
from ringd.repair.antientropy import AntiEntropy, AntiEntropySettings
from ringd.repair.history import RepairHistory
from ringd.repair.participant import ReplicaRepair
from ringd.repair.service import RepairService
from ringd.repair.staleness import LastContact, StaleData
from ringd.schema import Schema
from ringd.service import client_verbs, consistency_verbs, replica, schema_sync
from ringd.service.clock_guard import ClockGuard
from ringd.service.hlc import HybridClock
from ringd.service.lag_probe import LagProbe
from ringd.service.proxy import StorageProxy
from ringd.service.replica import Replica
from ringd.service.schema_sync import SchemaSync
from ringd.service.timeouts import Timeouts
from ringd.service.topology import Topology
from ringd.streaming import bootstrap, decommission
from ringd.streaming import verbs as stream_verbs
from ringd.streaming.received import ReceivedRanges
from ringd.streaming.removal import Removals
from ringd.streaming.service import StreamFailed, StreamService

log = logging.getLogger(__name__)

#: how long a first start waits for a seed's ring before choosing random tokens
TOKEN_RING_WAIT_S = 5.0
#: after announcing JOINING, LEAVING or LEFT a node waits this many gossip intervals, and then
#: until every live peer has heard it (at most SPREAD_TIMEOUT_S), before it streams or stops, so
#: that coordinators send writes of the ranges that move to the right nodes (Cassandra's RING_DELAY)
RING_DELAY_ROUNDS = 12
SPREAD_TIMEOUT_S = 30.0
#: how long a joining node waits for its schema to agree with its peers'
SCHEMA_WAIT_S = 30.0


class StartupError(Exception):
    """The node cannot start; the message is the one-line reason."""


def _lock_data_dir(data_dir: Path) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "ringd.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise StartupError(
            f"data directory {data_dir} is in use by another running ringd (pid {holder})"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Node:
    def __init__(
        self,
        config: Config,
        reload: Callable[[], Config] | None = None,
        *,
        messaging: Messaging | None = None,
        wall: Callable[[], float] | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self._on_ready = on_ready  # called once the node listens (ringd.main: gctune.settle)
        self._reload_config = reload
        self._wall = wall or time.time
        self.started_at = self._wall()
        self.data_dir = Path(config.data_dir).expanduser().resolve()
        try:
            self._lock_fd = _lock_data_dir(self.data_dir)
        except OSError as exc:
            raise StartupError(
                f"cannot use data directory {self.data_dir}: {exc.strerror}"
            ) from None
        system = self.data_dir / "system"
        system.mkdir(exist_ok=True)
        self.clock = HybridClock(self._wall, offset_ms=config.clock_offset_ms)
        self.timeouts = Timeouts.from_config(config)
        self.host_id, self.tokens, self.generation = self._local_state(system / "local.cbor")
        self.schema = _load_schema(system / "schema.cbor")
        self.last_contact = LastContact(system / "last_contact.cbor", self._wall)
        try:
            self.last_contact.check(self.schema.live(), config.accept_stale_data)
        except StaleData as exc:
            raise StartupError(str(exc)) from None
        options = EngineOptions(
            commitlog_sync=config.commitlog_sync,
            commitlog_sync_period_ms=config.commitlog_sync_period_ms,
            commitlog_group_window_ms=config.commitlog_group_window_ms,
            memtable_flush_bytes=config.memtable_flush_mb * 1024 * 1024,
            disk_failure_policy=config.disk_failure_policy,
            gc_grace_for=self._gc_grace_for,
            clock=self.clock.wall_seconds,
        )
        self.engine = StorageEngine.open(self.data_dir / "data", options)
        for ks in self.engine.keyspaces():
            if self.schema.get(ks) is None and ks != replica.CANARY_KEYSPACE:
                log.warning(
                    "data for unknown keyspace %s is kept until the schema says otherwise", ks
                )
        self.gate = _make_gate(config, self.host_id, system)
        try:
            self.tls = NodeTLS.from_config(config)
        except TLSConfigError as exc:
            raise StartupError(str(exc)) from None
        tls = self.tls
        secret = self.gate.secret
        self._runs_messaging = messaging is None
        self.messaging = messaging or Messaging(
            hello_args(PEER, cluster=config.cluster_name, host_id=self.host_id),
            connect_timeout=self.timeouts.connect,
            max_frame=config.max_frame_bytes,
            peer_auth=(
                partial(PeerInitiator, secret, config.cluster_name, self.host_id)
                if secret is not None
                else None
            ),
            tls=(lambda: tls.client) if tls is not None else None,
        )
        gossip_interval = config.gossip_interval_ms / 1000.0
        self.gossiper = Gossiper(
            local_host_id=self.host_id,
            local_address=config.listen,
            seeds=[s for s in config.seeds if s != config.listen],
            send=self.messaging.call,
            cluster_name=config.cluster_name,
            interval=gossip_interval,
            phi_threshold=config.phi_threshold,
            generation=self.generation,
            initial_states=self._initial_app_states(),
            rng=random.Random(),
            wall=self.clock.wall_seconds,
        )
        self.topology = Topology(
            host_id=self.host_id,
            address=config.listen,
            dc=config.dc,
            rack=config.rack,
            tokens=self.tokens,
            gossiper=self.gossiper,
            interval=gossip_interval,
        )
        self.topology.local_joining = self.joining
        self.topology.local_replaces = self.replaces
        self.topology.rebuild()
        self.peers = PeersFile(system / "peers.cbor", self.gossiper)
        self.metrics = CoordinatorMetrics()
        self.hints_view = ClusterView(self.topology, self.gossiper, self.schema)
        self.hints = HintsService(
            HintStore(self.data_dir / "hints"),
            membership=self.hints_view,
            schema=self.hints_view,
            send=self.messaging.call,
            settings=HintSettings(
                enabled=config.hinted_handoff_enabled,
                disabled_dcs=set(config.hinted_handoff_disabled_datacenters),
                max_hint_window_ms=config.max_hint_window_ms,
                max_hints_size_per_host=config.max_hints_size_per_host_mb * 1024 * 1024,
                throttle_kb=config.hinted_handoff_throttle_kb,
                write_timeout_s=self.timeouts.write,
            ),
            wall=self.clock.wall_seconds,
        )
        self.gossiper.subscribe(self._wake_hints)
        self.clock_guard = ClockGuard(
            gossiper=self.gossiper,
            metrics=self.metrics,
            max_offset_ms=config.max_clock_offset_ms,
            interval=gossip_interval,
        )
        self.replica = Replica(
            self.engine,
            self.schema,
            self.clock,
            max_row_bytes=config.max_row_bytes,
            page_bytes=config.max_frame_bytes // 4,
            max_future_timestamp_ms=config.max_future_timestamp_ms,
        )
        self.proxy = StorageProxy(
            topology=self.topology,
            engine=self.engine,
            replica=self.replica,
            messaging=self.messaging,
            clock=self.clock,
            metrics=self.metrics,
            timeouts=self.timeouts,
            hints=self.hints,
        )
        self.replica.later = self.proxy.deadlines.after  # the test_apply_delay hook
        self.metrics.replica_latency.wall = self.clock.wall_seconds
        self.metrics.replica_latency.offset_of = self._clock_offset_of
        self.lag_probe = LagProbe(
            topology=self.topology,
            replica=self.replica,
            messaging=self.messaging,
            clock=self.clock,
            metrics=self.metrics.staleness,
            interval=config.replica_lag_probe_interval_s,
            timeout=self.timeouts.write,
        )
        self.schema_sync = SchemaSync(
            schema=self.schema,
            engine=self.engine,
            clock=self.clock,
            gossiper=self.gossiper,
            topology=self.topology,
            messaging=self.messaging,
            timeout=self.timeouts.schema,
            interval=gossip_interval,
            max_future_ms=config.max_future_timestamp_ms,
        )
        self.admin = Admin(
            host_id=self.host_id,
            generation=self.generation,
            started_at=self.started_at,
            wall=self._wall,
            config=config,
            engine=self.engine,
            schema=self.schema,
            topology=self.topology,
            gossiper=self.gossiper,
            clock=self.clock,
            messaging=self.messaging,
            metrics=self.metrics,
            server_counts=lambda: (self.server.connections, self.server.requests),
            server_limits=lambda: self.server.stats(),
            served=lambda: self.server.served.summaries(),
            repair_incoming=lambda: self.repair_replica.streams(),
            clock_guard=self.clock_guard,
            repair_warnings=lambda: repair_verbs.stale_warnings(self.repair.status()),
            stages=self._stages,
            hints_pending=self.hints.pending,
            repair_status=lambda: self.repair.status(),
            mode=self._mode,
            streams=lambda: self.streaming.view(),
        )
        self.repair_replica = ReplicaRepair(
            self.engine,
            lambda name: self.schema.get(name) is not None,
            RepairHistory(system / "repair_history.cbor"),
            wall=self.clock.wall_seconds,
        )
        self.repair = RepairService(
            self.repair_replica,
            self.topology,
            self.schema,
            self.messaging.call,
            local_address=config.listen,
            wall=self.clock.wall_seconds,
        )
        self.streaming = StreamService(
            self.engine,
            lambda name: self.schema.get(name) is not None,
            self.messaging.call,
            ReceivedRanges(system / "streams.cbor"),
            local_address=config.listen,
            mb_per_s=config.stream_throughput_mb_per_s,
        )
        self.removals = Removals(
            self.topology,
            self.schema,
            self.messaging.call,
            self.gossiper.assassinate,
            config.listen,
        )
        self.anti_entropy: AntiEntropy | None = None
        if config.anti_entropy:
            self.anti_entropy = AntiEntropy(
                self.repair,
                AntiEntropySettings(
                    interval_s=config.anti_entropy_interval_s,
                    mb_per_s=config.anti_entropy_mb_per_s,
                ),
            )
        self.staleness = consistency_verbs.StalenessView(
            metrics=self.metrics,
            schema=self.schema,
            topology=self.topology,
            hints_pending=self.hints.pending,
            repair_status=lambda: self.repair.status(),
            wall=self._wall,
            probe_interval=config.replica_lag_probe_interval_s,
        )
        self.handlers = verbs.merge(
            client_verbs.verbs(
                proxy=self.proxy,
                schema=self.schema,
                clock=self.clock,
                topology=self.topology,
                schema_sync=self.schema_sync,
                clock_guard=self.clock_guard,
                max_future_timestamp_ms=config.max_future_timestamp_ms,
            ),
            replica.verbs(self.replica),
            schema_sync.verbs(self.schema_sync),
            gossip_verbs.verbs(self.gossiper),
            admin.verbs(self.admin),
            hints_verbs.verbs(self.hints, self.hints_view),
            repair_verbs.verbs(self.repair_replica, self.repair, lambda: self.anti_entropy),
            stream_verbs.verbs(
                self.streaming, self.decommission, self.removals, lambda: self._nursery
            ),
            {"auth": self.gate.auth},
            role_verbs.verbs(self.gate),
            loglevels.verbs(),
            toppartitions.verbs(self.engine, self.schema),
            consistency_verbs.verbs(self.staleness, self.metrics, self.replica, config),
        )
        self.server = Server(
            self.handlers,
            node_info=self.node_info,
            max_frame=config.max_frame_bytes,
            gate=self.gate,
            tls=self.tls,
            limits=Limits(
                max_connections=fit_max_connections(
                    config.max_connections, config.reserved_connections
                ),
                reserved_connections=config.reserved_connections,
                client_idle_timeout_s=config.client_idle_timeout_s,
                frame_timeout_s=config.frame_timeout_s,
                max_unfinished_frame_bytes=config.max_unfinished_frame_bytes,
            ),
        )
        self.metrics_listeners: list[Any] = []
        self.listeners: list[Any] = []

    async def _listen(self, nursery: trio.Nursery) -> None:
        config = self.config
        try:
            self.listeners = await nursery.start(self.server.serve, config.host, config.port)
        except OSError as exc:
            raise StartupError(f"cannot listen on {config.listen}: {exc.strerror}") from None

    async def _serve_metrics(self, nursery: trio.Nursery) -> None:
        """Serve the Prometheus text format on ``metrics_listen``."""
        reg = prometheus.registry(
            lambda: {**self.admin.snapshot(), "staleness": self.staleness.view()}
        )
        server = MetricsServer(lambda: prometheus.exposition(reg))
        host, port = split_address(self.config.metrics_listen)
        try:
            self.metrics_listeners = await nursery.start(server.serve, host, port)
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {self.config.metrics_listen} for metrics: {exc.strerror}"
            ) from None
        log.info("metrics (Prometheus) on %s", self.config.metrics_listen)

    def _stages(self) -> dict[str, dict[str, int]]:
        """Every stage ``tpstats`` shows: requests, flush, compaction, hints, repair."""
        hints = self.hints
        dispatching = hints.dispatching
        sessions = list(self.repair.sessions.values())
        running = sum(1 for s in sessions if s.state == "RUNNING")
        return {
            "RequestStage": self.server.stage(),
            **self.engine.stages(),
            "HintsDispatcher": {
                "active": len(dispatching),
                "pending": len(set(hints.pending_hosts()) - dispatching),
                "completed": hints.totals()["delivered"],
            },
            "RepairSession": {
                "active": running,
                "completed": len(sessions) - running,
            },
        }

    def _clock_offset_of(self, host_id: str) -> tuple[float, float] | None:
        """A peer's clock minus ours and the error, as gossip measured them (None: unknown)."""
        offset = self.gossiper.clock_offsets.of(host_id)
        return None if offset is None else (offset.seconds, offset.error)

    def _mode(self) -> str:
        """What ``netstats`` calls the node's mode: NORMAL, JOINING, LEAVING or DRAINING."""
        if self.server.draining:
            return "DRAINING"
        state = self.gossiper.endpoint_states().get(self.host_id)
        status = state.status if state is not None else None
        return status if status in ("JOINING", "LEAVING") else "NORMAL"

    def _wake_hints(self, event: str, host_id: str, state: Any) -> None:
        """A node came up (or changed): look for hints to deliver to it now."""
        if event == EVENT_ALIVE:
            self.hints.wake()

    def _gc_grace_for(self, keyspace: str) -> int:
        ks = self.schema.get(keyspace)
        return ks.gc_grace_seconds if ks is not None else 864000

    def _local_state(self, path: Path) -> tuple[str, list[int], int]:
        """Host id and tokens kept across restarts; a generation larger than the last one."""
        state: dict[str, Any] = {}
        if path.exists():
            state = _read_local_state(path)
            if state.get("cluster_name") != self.config.cluster_name:
                raise StartupError(
                    f"data directory {self.data_dir} belongs to cluster "
                    f"{state.get('cluster_name')!r}, not {self.config.cluster_name!r}"
                )
        host_id = state.get("host_id") or str(uuid.uuid4())
        tokens = state.get("tokens")
        # first start: placeholder tokens until run() has asked a seed for the ring
        self._fresh_tokens = not tokens
        #: a seed's first start in a new cluster (see _allocate_tokens)
        self._founding = False
        if self.config.replace and tokens and not state.get("replaces"):
            raise StartupError(
                f"--replace {self.config.replace} is for a new node, but data directory "
                f"{self.data_dir} already belongs to node {host_id}; empty it, or start "
                "without --replace"
            )
        if not tokens:
            # a new node joining others streams its ranges before it serves (bootstrap.py);
            # a seed, or a node told not to, is NORMAL at once (and empty); a replacement
            # always streams
            joins = self.config.auto_bootstrap and any(
                s != self.config.listen for s in self.config.seeds
            )
            joins = joins and self.config.listen not in self.config.seeds
            state["bootstrap"] = "pending" if joins or self.config.replace else "done"
        #: the dead node this one replaces (``--replace``): its host id once known
        self.replaces: str | None = state.get("replaces")
        #: JOINING until the bootstrap streamed everything (it resumes after a restart)
        self.joining = state.get("bootstrap") == "pending"
        #: a bootstrap resumed after a restart: its tokens were announced before, so it keeps
        #: announcing them and listens before gossip settles (no write of its ranges may miss
        #: it while it restarts)
        self._resuming = self.joining and bool(tokens)
        if state.get("decommissioned"):
            raise StartupError(
                f"this node was decommissioned (it left the ring) and will not rejoin with its "
                f"old data; to join again as a new node, empty its data directory {self.data_dir}"
            )
        #: LEAVING: a decommission started (and, after a crash, not finished: the node comes
        #: back LEAVING, so writes of its ranges keep going to the nodes taking them over)
        self.leaving = bool(state.get("leaving"))
        self._decommissioning = False  # a decommission is running now
        self.left = False  # decommissioned: announced LEFT, stopping
        self._stop: trio.Event | None = None  # set: drain and stop (run with a listener)
        self._nursery: trio.Nursery | None = None
        generation = max(int(self._wall()), int(state.get("generation", 0)) + 1)
        state.update(host_id=host_id, generation=generation, cluster_name=self.config.cluster_name)
        try:
            atomic_write(path, cbor2.dumps(state))
        except OSError as exc:  # e.g. a full disk: the node can still serve reads
            log.warning("cannot save %s (%s); the generation is time-based anyway", path, exc)
        self._local_path = path
        return host_id, list(tokens or random_tokens(self.config.num_tokens)), generation

    async def _check_not_removed(self) -> None:
        """A node removed from the ring while it was down (removenode, assassinate) must not
        come back with its old data: a seed that gossips this host id as LEFT stops it."""
        seeds = [s for s in self.config.seeds if s != self.config.listen]
        for seed in seeds:
            try:
                info = await self.messaging.call(seed, "gossipinfo", {}, self.timeouts.seed_ring)
                status = info[self.host_id]["states"]["STATUS"]["value"]
            except (ProtocolError, OSError, KeyError, TypeError) as exc:
                log.debug("gossip state of this node from seed %s: %s", seed, exc)
                continue
            if status == "LEFT":
                raise StartupError(
                    f"this node was removed from the ring (removenode or assassinate, seen by "
                    f"seed {seed}) and will not rejoin with its old data; to join again as a new "
                    f"node, empty its data directory {self.data_dir}"
                )
            return

    async def _take_tokens(self) -> None:
        """``--replace ADDRESS``: find the dead node at ADDRESS in a seed's gossip and take
        its tokens (saved in ``system/local.cbor`` with its host id, so a restart resumes);
        refused if it is alive or unknown."""
        address = self.config.replace
        seeds = [s for s in self.config.seeds if s != self.config.listen]
        info: dict[str, Any] | None = None
        seen_by = ""
        with trio.move_on_after(TOKEN_RING_WAIT_S):
            while info is None:
                for seed in seeds:
                    try:
                        info = await self.messaging.call(
                            seed, "gossipinfo", {}, self.timeouts.seed_ring
                        )
                        seen_by = seed
                        break
                    except (ProtocolError, OSError) as exc:
                        log.debug("gossip from seed %s: %s", seed, exc)
                else:
                    await trio.sleep(0.2)
        if info is None:
            raise StartupError(f"cannot replace {address}: no seed answered ({', '.join(seeds)})")
        found = []
        for host_id, entry in info.items():
            states = entry.get("states", {}) if isinstance(entry, dict) else {}
            values = {k: v.get("value") for k, v in states.items() if isinstance(v, dict)}
            if (
                host_id != self.host_id
                and values.get("ADDRESS") == address
                and values.get("STATUS") not in ("LEFT", None)
                and values.get("TOKENS")
            ):
                found.append((host_id, entry, values["TOKENS"]))
        if not found:
            raise StartupError(
                f"cannot replace {address}: seed {seen_by} knows no node there that owns tokens"
            )
        host_id, entry, tokens = found[0]
        if entry.get("alive"):
            raise StartupError(
                f"cannot replace {address} ({host_id}): it is alive (seen by seed {seen_by}); "
                "stop it first, or decommission it"
            )
        self.replaces = host_id
        self.tokens = [int(t) for t in tokens or ()]
        state = _read_local_state(self._local_path)
        state.update(tokens=self.tokens, replaces=host_id)
        atomic_write(self._local_path, cbor2.dumps(state))
        self._fresh_tokens = False
        log.info("replacing %s (%s): took its %d tokens", address, host_id, len(self.tokens))
        self.gossiper.set_application_state("REPLACES", host_id)
        self.topology.local_replaces = host_id
        self.topology.tokens = list(self.tokens)
        self.topology.rebuild()

    async def _allocate_tokens(self) -> None:
        """First start: choose tokens that balance ownership (``allocate_tokens``) against the
        ring a seed reports, or keep random ones when no seed answers in time; then save them
        in ``system/local.cbor`` for every later start."""
        from ringd.dht.tokens import allocate_tokens

        seeds = [s for s in self.config.seeds if s != self.config.listen]
        # a seed asks the other seeds once: in a new cluster they all start together, none
        # listening before it has chosen its tokens, so waiting for each other only costs time
        is_seed = self.config.listen in self.config.seeds
        ring: dict[int, str] | None = None
        with trio.move_on_after(TOKEN_RING_WAIT_S if seeds else 0):
            while ring is None:
                for seed in seeds:
                    try:
                        result = await self.messaging.call(
                            seed, "ring", {}, self.timeouts.seed_ring
                        )
                        ring = {
                            int(t["token"]): str(t["host_id"])
                            for t in result["tokens"]
                            if t["host_id"] != self.host_id
                        }
                        break
                    except (ProtocolError, OSError, KeyError, TypeError, ValueError) as exc:
                        log.debug("ring from seed %s: %s", seed, exc)
                else:
                    if is_seed:
                        break
                    await trio.sleep(0.2)
        if ring:
            self.tokens = allocate_tokens(self.config.num_tokens, ring, random.Random())
            log.info(
                "chose %d tokens to balance ownership with %d nodes",
                len(self.tokens),
                len(set(ring.values())),
            )
        elif seeds:
            log.info("no seed answered with the ring; chose %d random tokens", len(self.tokens))
        # a seed no other seed answered on its first start founds a new cluster: there is no
        # gossip to settle before it serves (wait_for_gossip)
        self._founding = is_seed and not ring
        state = _read_local_state(self._local_path)
        state["tokens"] = self.tokens
        atomic_write(self._local_path, cbor2.dumps(state))
        self._fresh_tokens = False
        if not self.joining:
            self.gossiper.set_application_state("TOKENS", self.tokens)
        self.topology.tokens = list(self.tokens)
        self.topology.rebuild()

    def _initial_app_states(self) -> dict[str, Any]:
        c = self.config
        # a joining node gossips its tokens only once it listens, so that nobody sends it
        # writes for its pending ranges before it can take them (``_announce_joining``)
        return {
            "STATUS": "JOINING" if self.joining else ("LEAVING" if self.leaving else "NORMAL"),
            **({} if self.joining and not self._resuming else {"TOKENS": self.tokens}),
            **({"REPLACES": self.replaces} if self.replaces else {}),
            "DC": c.dc,
            "RACK": c.rack,
            "ADDRESS": c.listen,
            "HOST_ID": self.host_id,
            "LOAD": 0,
            "SCHEMA": self.schema.version,
            "RELEASE_VERSION": ringd.__version__,
        }

    def node_info(self) -> dict[str, Any]:
        return {
            "version": ringd.__version__,
            "host_id": self.host_id,
            "cluster": self.config.cluster_name,
            "address": self.config.listen,
            "dc": self.config.dc,
            "rack": self.config.rack,
        }

    async def _start_services(self, nursery: trio.Nursery) -> None:
        """Everything but the listener, in dependency order."""
        if self._runs_messaging:
            await nursery.start(self.messaging.run)
        if self._fresh_tokens and self.config.replace:
            await self._take_tokens()
        elif self._fresh_tokens:
            await self._allocate_tokens()
        else:
            await self._check_not_removed()
        await nursery.start(self.engine.run)
        await nursery.start(self.proxy.run)
        self.restore_peers()
        await nursery.start(self.topology.run)
        await nursery.start(self.schema_sync.run)
        await nursery.start(self.gossiper.run)
        await nursery.start(self.hints.run)
        await nursery.start(self.clock_guard.run)
        await nursery.start(self.peers.run)
        nursery.start_soon(self.admin.report_load)
        await nursery.start(self.repair.run)
        if self.anti_entropy is not None:
            await nursery.start(self.anti_entropy.run)
        await nursery.start(self.last_contact.run, self.topology)
        await nursery.start(self.lag_probe.run)

    async def _join_if_empty(self) -> None:
        """A joining node whose cluster has no keyspaces has nothing to stream: NORMAL at once.
        (First the schema must agree with the peers', so that the keyspaces are known.)"""
        await bootstrap.wait_for_schema(
            lambda: self.schema.version,
            self._peer_schema_versions,
            SCHEMA_WAIT_S,
            self.gossiper.interval,
        )
        if not self.schema.live():
            log.info("bootstrap: the cluster has no keyspaces; nothing to stream")
            self._joined()
        else:
            self._bootstrap_plan()  # fail before announcing anything if it cannot work

    def _peer_schema_versions(self) -> list[str]:
        states = self.gossiper.endpoint_states()
        return [
            str(states[h].schema)
            for h in self.gossiper.live_members()
            if h != self.host_id and h in states
        ]

    async def _bootstrap(self) -> None:
        """Stream every range this node will replicate from the replica losing it (or, with
        ``allow_inconsistent_bootstrap``, any live one), then become NORMAL. A failure stops
        the node; a restart resumes with the ranges not yet received."""
        await self._ring_delay("JOINING")
        failed: set[str] = set()  # sources that failed (allow_inconsistent_bootstrap: others)
        while True:
            plans = self._bootstrap_plan(failed)
            total = sum(len(r) for _, _, r in plans)
            log.info("bootstrap: streaming %d ranges in %d sessions", total, len(plans))
            try:
                for ks_name, host, ranges in plans:
                    source = self.topology.address(host)
                    plan = "replace" if self.replaces else bootstrap.PLAN
                    await self.streaming.fetch(plan, source, ks_name, ranges)
            except StreamFailed as exc:
                if not self.config.allow_inconsistent_bootstrap and not self.replaces:
                    raise StartupError(
                        f"bootstrap failed: {exc}; start the node again to resume (received "
                        "ranges are kept)"
                    ) from None
                log.warning("bootstrap: %s; streaming its ranges from other replicas", exc)
                failed.add(host)
                continue
            break
        self._joined()

    def _bootstrap_plan(self, failed: set[str] | None = None) -> list[tuple[str, str, list[Range]]]:
        """``(keyspace, source host, ranges)`` to stream; ``StartupError`` if a needed replica
        is down (checked once before the node announces its tokens, and again before it
        streams)."""
        self.topology.rebuild()
        me = self.topology.local_node()
        plans = []
        try:
            for ks in self.schema.live():
                alive = lambda h: h not in (failed or ()) and self.topology.is_alive(h)  # noqa: E731
                if self.replaces is not None:
                    sources = bootstrap.replace_sources(
                        self.topology.ring,
                        self.replaces,
                        self.topology.strategy(ks),
                        alive,
                        ks.name,
                    )
                else:
                    sources = bootstrap.range_sources(
                        self.topology.ring,
                        me,
                        self.topology.strategy(ks),
                        alive,
                        strict=not self.config.allow_inconsistent_bootstrap,
                        keyspace=ks.name,
                    )
                plans += [(ks.name, host, ranges) for host, ranges in sorted(sources.items())]
        except bootstrap.BootstrapError as exc:
            raise StartupError(f"bootstrap failed: {exc}") from None
        return plans

    def _joined(self) -> None:
        """Bootstrap complete: remember it, announce NORMAL, take this node's place on the
        ring."""
        state = _read_local_state(self._local_path)
        state["bootstrap"] = "done"
        atomic_write(self._local_path, cbor2.dumps(state))
        self.streaming.received.forget(bootstrap.PLAN)
        self.streaming.received.forget("replace")
        if self.replaces is not None and self.replaces in self.gossiper.endpoint_states():
            self.gossiper.mark_left(self.replaces)  # its tokens are this node's now
        self.joining = False
        self.topology.local_joining = False
        self.gossiper.set_application_states({"STATUS": "NORMAL", "TOKENS": self.tokens})
        self.topology.rebuild()
        log.info("bootstrap complete: this node is NORMAL")

    async def decommission(self) -> dict[str, Any]:
        """Leave the ring (``ringd.streaming.decommission``): stream this node's ranges to the
        nodes taking them over, hand its hints over, announce LEFT and stop. Refused while this
        or another node is joining or leaving, or if a keyspace would lose replicas."""
        topology = self.topology
        if self._nursery is None:
            raise InvalidRequest("this node does not serve decommission (no listener)")
        if self._decommissioning or self.left:
            raise InvalidRequest("this node is already leaving the ring")
        if self.joining:
            raise InvalidRequest("this node is still joining the ring")
        if topology.changing - {self.host_id}:
            raise InvalidRequest(
                "another node is joining or leaving the ring: one membership change at a time"
            )
        ring = topology.ring
        targets = []
        for ks in self.schema.live():
            strategy = topology.strategy(ks)
            try:
                decommission.check_replicas(ring, self.host_id, strategy, ks.name)
            except decommission.DecommissionError as exc:
                raise InvalidRequest(f"decommission refused: {exc}") from None
            for host, ranges in decommission.range_targets(ring, self.host_id, strategy).items():
                if not topology.is_alive(host):
                    raise InvalidRequest(
                        f"decommission refused: {topology.address(host)}, which takes over "
                        f"ranges of {ks.name}, is down"
                    )
                targets.append((ks.name, topology.address(host), self.config.listen, ranges))
        self._set_leaving(True)
        self._decommissioning = True
        log.info("decommission: LEAVING; %d stream sessions to start", len(targets))
        try:
            await self._ring_delay("LEAVING")
            rivals = topology.changing - {self.host_id}
            if rivals and min(rivals) < self.host_id:  # two started at once: the lower id goes on
                raise decommission.DecommissionError(
                    f"node {min(rivals)} started joining or leaving at the same time: one "
                    "membership change at a time"
                )
            sessions = await decommission.request_streams(
                self.messaging.call, decommission.PLAN_PREFIX + self.host_id, targets
            )
            others = [h for h in ring.nodes if h != self.host_id and topology.is_alive(h)]
            hints = await self.hints.hand_over(topology.address(others[0])) if others else 0
        except (decommission.DecommissionError, ProtocolError, OSError) as exc:
            self._decommissioning = False
            self._set_leaving(False)
            log.warning("decommission failed: %s; NORMAL again", exc)
            raise ProtocolError(
                f"decommission failed: {exc}; the node is NORMAL again (run decommission "
                "again to resume: ranges already streamed are skipped)",
                ErrorCode.SERVER_ERROR,
            ) from None
        state = _read_local_state(self._local_path)
        state["decommissioned"] = True
        atomic_write(self._local_path, cbor2.dumps(state))
        self.left = True
        self.gossiper.set_application_state("STATUS", "LEFT")
        log.info(
            "decommission: streamed %d sessions, handed %d hints over; LEFT, stopping",
            len(sessions),
            hints,
        )
        self._nursery.start_soon(self._stop_after_left)
        return {
            "address": self.config.listen,
            "host_id": self.host_id,
            "state": "LEFT",
            "sessions": sessions,
            "rows": sum(int(s.get("rows", 0)) for s in sessions),
            "bytes": sum(int(s.get("bytes", 0)) for s in sessions),
            "hints": hints,
        }

    def _set_leaving(self, leaving: bool) -> None:
        """Announce LEAVING (or NORMAL again) and remember it across a crash."""
        state = _read_local_state(self._local_path)
        state["leaving"] = leaving
        atomic_write(self._local_path, cbor2.dumps(state))
        self.leaving = leaving
        self.gossiper.set_application_state("STATUS", "LEAVING" if leaving else "NORMAL")
        self.topology.rebuild()

    async def _ring_delay(self, status: str) -> None:
        """Let gossip spread ``status`` — for RING_DELAY_ROUNDS rounds and until every live peer
        has it (at most ``SPREAD_TIMEOUT_S``; a fixed delay alone was too short on a loaded
        host: a write acknowledged by a coordinator that had not heard JOINING yet missed the
        joining node, whose stream had already passed its key)."""
        await trio.sleep(self.gossiper.interval * RING_DELAY_ROUNDS)
        missed = await self.gossiper.spread_local_state(SPREAD_TIMEOUT_S)
        if missed:
            log.warning("%s: %s did not hear it; going on", status, ", ".join(missed))

    async def _stop_after_left(self) -> None:
        """Let gossip spread LEFT, then stop as SIGTERM would."""
        await self._ring_delay("LEFT")
        if self._stop is not None:
            self._stop.set()

    def _save_last_contact(self) -> None:
        """At shutdown: note whether a peer is alive now, for the next start's stale check."""
        self.last_contact.note(self.topology)
        self.last_contact.save()

    def restore_peers(self) -> None:
        """Know the peers saved in ``system/peers.cbor`` (DOWN until gossip hears from them),
        so that the ring is complete from the first request."""
        if self.peers.load_into_gossiper():
            self.topology.rebuild()

    async def wait_for_gossip(self) -> None:
        """Before serving clients: when the node has seeds other than itself, wait at most
        ``gossip_settle_s`` for gossip to settle (``ringd.gms.settle``); not when it founds a
        new cluster."""
        if self.config.gossip_settle_s > 0 and self.gossiper.seeds and not self._founding:
            await wait_to_settle(self.gossiper, self.config.gossip_settle_s)
            self.topology.rebuild()

    async def run(
        self,
        *,
        listen: bool = True,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until SIGTERM/SIGINT, then drain. ``listen=False``: run the services only (no
        listener, no signal handling) until cancelled, then close the storage engine."""
        if not listen:
            try:
                async with trio.open_nursery() as nursery:
                    await self._start_services(nursery)
                    await self.wait_for_gossip()
                    task_status.started()
                    await trio.sleep_forever()
            finally:
                self.peers.save()
                self._save_last_contact()
                with trio.CancelScope(shield=True):
                    await self.engine.close()
                self.hints.store.close()
                os.close(self._lock_fd)
            return
        config = self.config
        # ignored once the receiver below is gone, so that a signal still queued when it closes
        # (one sent during the final flush) cannot kill the process after a clean drain
        for signum in (*STOP_SIGNALS, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        with trio.open_signal_receiver(*STOP_SIGNALS, signal.SIGHUP) as signals:
            try:
                async with trio.open_nursery() as nursery:
                    stop = self._stop = trio.Event()
                    self._nursery = nursery
                    nursery.start_soon(self._watch_signals, signals, stop)
                    await self._start_services(nursery)
                    if self._resuming:
                        await self._listen(nursery)
                    await self.wait_for_gossip()
                    if self.joining:
                        await self._join_if_empty()
                    if not self._resuming:
                        await self._listen(nursery)
                    if config.metrics_listen:
                        await self._serve_metrics(nursery)
                    log.info(
                        "ringd %s listening on %s (host id %s, cluster %s, dc %s)",
                        ringd.__version__,
                        config.listen,
                        self.host_id,
                        config.cluster_name,
                        config.dc,
                    )
                    if self.joining:
                        self.gossiper.set_application_state("TOKENS", self.tokens)
                        nursery.start_soon(self._bootstrap)
                    task_status.started()
                    if self._on_ready is not None:
                        self._on_ready()
                    await stop.wait()
                    await self.server.drain(config.drain_timeout_s)
                    if not self.left:  # a decommissioned node stays LEFT
                        await self.gossiper.announce_shutdown()
                    self.peers.save()
                    nursery.cancel_scope.cancel()
            finally:
                self._save_last_contact()
                with trio.CancelScope(shield=True):
                    await self.engine.close()
                self.hints.store.close()
                os.close(self._lock_fd)
        log.info("ringd stopped")

    async def _watch_signals(self, signals: Any, stop: trio.Event) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            if signum == signal.SIGHUP:
                self.reload()
            elif stop.is_set():
                log.info("received %s: already draining; ignored", name)
            else:
                log.info("received %s: draining", name)
                stop.set()

    def reload(self) -> None:
        """Re-read the configuration (same flags and file) and apply the log level."""
        if self._reload_config is None:
            log.info("received SIGHUP: no configuration to reload")
            return
        try:
            new = self._reload_config()
        except ConfigError as exc:
            log.warning("received SIGHUP: configuration not reloaded: %s", exc)
            return
        if self.tls is not None:
            try:
                self.tls.reload()
                log.info("received SIGHUP: reloaded the TLS certificate files")
            except TLSConfigError as exc:
                log.warning("received SIGHUP: TLS files not reloaded (old ones kept): %s", exc)
        logging.getLogger().setLevel(new.log_level.upper())
        self.config.log_level = new.log_level
        later = [
            f.name
            for f in fields(Config)
            if f.name != "log_level" and getattr(new, f.name) != getattr(self.config, f.name)
        ]
        log.info(
            "received SIGHUP: reloaded configuration (log level %s)%s",
            new.log_level,
            f"; {', '.join(later)} take effect at the next restart" if later else "",
        )


def _read_local_state(path: Path) -> dict[str, Any]:
    """``system/local.cbor``, checked field by field; ``StartupError`` naming it if damaged."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StartupError(f"cannot read {path}: {exc.strerror}") from None
    try:
        state = cbor2.loads(raw)
    except Exception as exc:  # cbor2 raises several kinds on garbage
        raise StartupError(
            f"{path} is damaged (not CBOR: {exc}); restore it from a backup"
        ) from None
    checks = {
        "host_id": lambda v: isinstance(v, str) and v != "",
        "tokens": lambda v: (
            isinstance(v, list)
            and v != []
            and all(type(t) is int and -(1 << 63) <= t < 1 << 63 for t in v)
        ),
        "generation": lambda v: type(v) is int and v >= 0,
        "cluster_name": lambda v: isinstance(v, str),
        "bootstrap": lambda v: v in ("pending", "done"),
        "decommissioned": lambda v: isinstance(v, bool),
        "leaving": lambda v: isinstance(v, bool),
        "replaces": lambda v: isinstance(v, str) and v != "",
    }
    if not isinstance(state, dict):
        raise StartupError(f"{path} is damaged (not a map); restore it from a backup")
    for name, ok in checks.items():
        if name in state and not ok(state[name]):
            raise StartupError(f"{path} is damaged (bad {name}); restore it from a backup")
    return state


def _load_schema(path: Path) -> Schema:
    try:
        return Schema(path)
    except OSError as exc:
        raise StartupError(f"cannot read {path}: {exc.strerror}") from None
    except Exception as exc:  # garbage in the file: say which file, not a traceback
        raise StartupError(f"{path} is damaged ({exc}); restore it from a backup") from None


def _make_gate(config: Config, host_id: str, system: Path) -> Gate:
    """The node's gate: the cluster secret and the role store the configuration names."""
    secret = None
    if config.cluster_secret_file:
        try:
            secret = load_secret_file(Path(config.cluster_secret_file).expanduser())
        except SecretFileError as exc:
            raise StartupError(str(exc)) from None
    else:
        log.warning("no cluster_secret_file: peers are not authenticated")
    store = None
    if config.authenticator == "none":
        log.warning("authenticator = none: every client is an admin, with no password")
    else:
        try:
            store = RoleStore(system / RoleStore.FILE_NAME)
        except RoleStoreError as exc:
            raise StartupError(str(exc)) from None
        if not store.list():
            _create_initial_admin(store, config.initial_admin_password_file)
    return Gate(cluster=config.cluster_name, host_id=host_id, secret=secret, role_store=store)


def _create_initial_admin(store: RoleStore, password_file: str) -> None:
    if not password_file:
        log.warning(
            "no roles yet and no initial_admin_password_file: no client can log in "
            "(start once with --initial-admin-password-file FILE to create role admin)"
        )
        return
    path = Path(password_file).expanduser()
    try:
        password = path.read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise StartupError(
            f"cannot read initial admin password file {path}: {exc.strerror}"
        ) from None
    try:
        store.create("admin", ADMIN, password)
    except ProtocolError as exc:
        raise StartupError(f"initial admin password file {path}: {exc.message}") from None
    log.info("created role admin from %s", path)


def random_tokens(n: int) -> list[int]:
    from ringd.dht.tokens import random_tokens as allocate

    return allocate(n, random.Random())
