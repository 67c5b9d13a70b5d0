"""One simulated run: a cluster, a workload of client operations and faults, a heal, checks."""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import itertools
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
import trio.testing

from ringd.db.cells import Row, row_digest
from ringd.db.syncthread import SyncThread
from ringd.dht.murmur3 import token_for
from ringd.gms import peers
from ringd.net.channel import CallTimeout, ConnectionClosed
from ringd.net.server import Session
from ringd.protocol import messages
from ringd.protocol.errors import ProtocolError, Unavailable
from ringd.schema import Keyspace
from ringd.service import requests, sessions
from ringd.service.coordination import Consistency

from . import convergence
from .cluster import ClientHost, SimNode
from .history import History, Read, Write, describe_row
from .network import Handlers, Network, Scheduler

KEYSPACE = "sim"
CLIENT_TIMEOUT = 15.0
CONVERGE_TIMEOUT = 120.0


@dataclass
class Options:
    seed: int
    steps: int = 2000  # client operations and fault events
    nodes: int = 5
    keys: int = 40
    ops_per_second: float = 400.0  # virtual time
    fault_rate: float = 0.005  # share of steps that are fault events
    max_node_faults: int = 2  # nodes down or paused at once
    max_skew_ms: int = 2000
    settings: dict[str, Any] = field(default_factory=dict)  # Config overrides
    #: send client requests to a restarted node as soon as it serves, not only once its ring
    #: holds every node (see the package docstring)
    early_clients: bool = False
    #: ERROR records from ringd loggers the scenario expects (substrings of the message)
    expected_errors: tuple[str, ...] = ()
    #: one client session writing its own keys, one write at a time, through random
    #: coordinators with ``session_us`` (the checks then hold its acknowledged writes to be
    #: stamped in the order they were made)
    session: bool = False
    session_only: bool = False  # no other client traffic besides the session's
    #: after the heal, wait for hinted handoff and check every acknowledged write is on every
    #: natural replica (``convergence.check_handoff``); writes mostly at ONE
    handoff: bool = False
    #: hints off; after the heal, repair every node's primary ranges and check the replicas of
    #: every range agree (``convergence.check_repair``)
    repair: bool = False


@dataclass
class Result:
    seed: int
    ops: int  # client operations completed
    failures: list[str]
    digest: str  # of the operation log and every replica's final rows
    log: list[str]
    outcomes: dict[str, int]
    virtual_seconds: float
    wall_seconds: float
    events: int
    stats: dict[str, int] = field(default_factory=dict)  # what the convergence checks counted

    @property
    def ok(self) -> bool:
        return not self.failures


class _ErrorRecords(logging.Handler):
    """Collects ERROR (and worse) records of the ringd loggers during a run."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def deterministic_io() -> Iterator[None]:
    """Worker threads (trio's and the commit log's ``SyncThread``) run inline and fsyncs return at once, so that nothing real-time decides
    the order of events. Durability is modelled instead: a crash with power loss discards
    what the commit log had not (logically) synced."""

    async def inline(fn: Callable[..., Any], *args: Any, **_: Any) -> Any:
        await trio.lowlevel.checkpoint()
        return fn(*args)

    # Timers that expire at the same virtual instant fire in the order trio's deadline heap
    # breaks the tie: by id() of the cancel scope, a memory address. Break it by the order
    # the deadlines were set instead.
    deadlines = trio._core._run.Deadlines  # noqa: SLF001
    order = itertools.count()

    def add(self: Any, deadline: float, cancel_scope: Any) -> None:
        heapq.heappush(self._heap, (deadline, next(order), cancel_scope))
        self._active += 1

    # Importing hypothesis (as pytest does) switches trio to another run-queue order: use the
    # same one everywhere, so that a seed replays outside pytest as it ran inside.
    run_module = trio._core._run  # noqa: SLF001
    saved = (trio.to_thread.run_sync, os.fsync, os.fdatasync, deadlines.add)
    saved_order = run_module._ALLOW_DETERMINISTIC_SCHEDULING
    saved_sync_thread = SyncThread.run
    trio.to_thread.run_sync = inline  # type: ignore[assignment]
    SyncThread.run = lambda self, fn, *args: inline(fn, *args)  # type: ignore[method-assign]
    os.fsync = os.fdatasync = lambda fd: None
    deadlines.add = add
    run_module._ALLOW_DETERMINISTIC_SCHEDULING = False
    try:
        yield
    finally:
        trio.to_thread.run_sync, os.fsync, os.fdatasync, deadlines.add = saved  # type: ignore[assignment]
        SyncThread.run = saved_sync_thread  # type: ignore[method-assign]
        run_module._ALLOW_DETERMINISTIC_SCHEDULING = saved_order


def run(options: Options, workdir: Path | None = None) -> Result:
    """Run one seed to the end and check it; never raises for a failed check."""
    started = time.perf_counter()
    own = workdir is None
    root = Path(tempfile.mkdtemp(prefix=f"ringd-sim-{options.seed}-")) if own else workdir
    assert root is not None
    errors = _ErrorRecords()
    ringd_log = logging.getLogger("ringd")
    ringd_log.addHandler(errors)
    # trio shuffles its run queue with its own RNG: seed it too
    trio._core._run._r.seed(options.seed)  # noqa: SLF001
    sim = Simulation(options, root)
    try:
        with deterministic_io():
            trio.run(sim.main, clock=trio.testing.MockClock(autojump_threshold=0))
    except BaseException as exc:  # a node's service died: that is a failure of this seed
        if isinstance(exc, KeyboardInterrupt):
            raise
        import traceback

        sim.history.fail(
            "the run ended with an exception:\n" + "".join(traceback.format_exception(exc))
        )
    finally:
        ringd_log.removeHandler(errors)
        if own:
            shutil.rmtree(root, ignore_errors=True)
    history = sim.history
    for record in errors.records:
        message = record.getMessage()
        if not any(e in message for e in options.expected_errors):
            text = f"{record.name}: {message}"
            if record.exc_info and record.exc_info[1] is not None:
                text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
            history.fail(f"unexpected error logged: {text}")
    for failure in sim.network.handler_failures if sim.network else []:
        history.fail(f"handler raised: {failure}")
    outcomes: dict[str, int] = {}
    for op in (*history.writes.values(), *history.reads.values()):
        kind = "write" if isinstance(op, Write) else "read"
        name = f"{kind} {op.level} {op.outcome}"
        outcomes[name] = outcomes.get(name, 0) + 1
    digest = hashlib.sha256("\n".join(history.log + sim.final_rows).encode()).hexdigest()
    return Result(
        seed=options.seed,
        ops=len(history.writes) + len(history.reads),
        failures=history.failures,
        digest=digest,
        log=history.log,
        outcomes=dict(sorted(outcomes.items())),
        virtual_seconds=sim.virtual_end,
        wall_seconds=time.perf_counter() - started,
        events=sim.scheduler.events if sim.scheduler else 0,
        stats=dict(sim.stats),
    )


class Simulation:
    def __init__(self, options: Options, root: Path) -> None:
        self.options = options
        self.root = root
        self.rng = random.Random(options.seed)
        self.history = History()
        self.final_rows: list[str] = []
        self.virtual_end = 0.0
        self.network: Network | None = None
        self.scheduler: Scheduler | None = None
        self.nodes: list[SimNode] = []
        self.keys = [b"k%03d" % i for i in range(options.keys)]
        self._op = 0
        self._pending = 0
        self._idle = trio.Event()
        self._faulty: set[int] = set()  # nodes down or paused by a fault
        self.session_keys = [b"s%03d" % i for i in range(3)]
        self.session_us = 0  # the session's high-water mark, as the client library keeps it
        self.session_writes: list[Write] = []  # acknowledged, in the order they were made
        self.stats: dict[str, int] = {}

    # ---- setup ------------------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        rng = self.rng
        settings: dict[str, Any] = {
            "num_tokens": 8,
            "commitlog_sync": rng.choice(["batch", "group", "periodic"]),
            "memtable_flush_mb": 1,
        }
        if self.options.repair:  # repair alone must bring the replicas together
            settings["hinted_handoff_enabled"] = False
        settings.update(self.options.settings)
        return settings

    async def main(self) -> None:
        self.scheduler = Scheduler()
        self.network = Network(self.rng, self.scheduler)
        network = self.network
        network.hosts[Network.CLIENT] = ClientHost()  # type: ignore[assignment]
        settings = self._settings()
        self.history.log.append(f"settings {sorted(settings.items())}")
        addresses = [f"10.0.0.{i + 1}:7000" for i in range(self.options.nodes)]
        for i, address in enumerate(addresses):
            data_dir = self.root / f"n{i + 1}"
            node = SimNode(
                i + 1,
                address,
                data_dir,
                network,
                random.Random(self.rng.getrandbits(64)),
                seeds=addresses[:2],
                settings=settings,
                extra_handlers=self._client_handlers,
            )
            self.nodes.append(node)
            network.hosts[address] = node  # type: ignore[assignment]
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            await nursery.start(self.scheduler.run)
            for node in self.nodes:
                await trio.sleep(self.rng.uniform(0.0, 0.2))
                await node.start(nursery)
            await self._converge("start")
            await self._create_keyspace()
            await self._until("peers saved", self._peers_saved)
            with trio.CancelScope() as faults:
                self.faults = faults
                await self._workload()
            await self._heal()
            if self.options.handoff:
                await convergence.check_handoff(self)
            if self.options.repair:
                await convergence.check_repair(self)
            await self._check()
            self.virtual_end = trio.current_time()
            self._record_final_rows()
            for node in self.nodes:
                if node.up:
                    await node.crash(power_loss=False)
            nursery.cancel_scope.cancel()

    async def _create_keyspace(self) -> None:
        node = self.nodes[0].node
        assert node is not None
        ks = Keyspace(KEYSPACE, {"class": "SimpleStrategy", "replication_factor": 3})
        await node.schema_sync.change(ks)
        await self._until(
            "schema agreement",
            lambda: all(n.node is not None and n.node.schema.get(KEYSPACE) for n in self.nodes),
        )

    async def _until(self, what: str, condition: Callable[[], bool]) -> bool:
        with trio.move_on_after(CONVERGE_TIMEOUT):
            while not condition():  # noqa: ASYNC110 (gossip state has no event to wait on)
                await trio.sleep(0.1)
            return True
        self.history.fail(f"{what}: not reached within {CONVERGE_TIMEOUT:g}s (virtual)")
        return False

    def _converged(self) -> bool:
        for node in self.nodes:
            n = node.node
            if not node.serving or n is None:
                return False
            for other in self.nodes:
                if not n.gossiper.is_alive(other.host_id):
                    return False
            if len(n.topology.ring.nodes) != len(self.nodes):
                return False
        return True

    def _peers_saved(self) -> bool:
        """Every node's ``system/peers.cbor`` names every other node."""
        return all(
            len(peers.load(n.data_dir / "system" / "peers.cbor")) == len(self.nodes) - 1
            for n in self.nodes
        )

    def _ready(self, node: SimNode) -> bool:
        """Down (the client hears so), or serving with every node in its ring."""
        n = node.node
        return not node.up or (
            node.serving and n is not None and len(n.topology.ring.nodes) == len(self.nodes)
        )

    def _check_restarted_ring(self, node: SimNode) -> None:
        """A node that ran before knows every node from its first request (``system/peers``)."""
        n = node.node
        if node.up and n is not None and len(n.topology.ring.nodes) != len(self.nodes):
            self.history.fail(
                f"n{node.index} restarted with {len(n.topology.ring.nodes)} of "
                f"{len(self.nodes)} nodes in its ring"
            )

    async def _converge(self, when: str) -> None:
        await self._until(f"gossip convergence ({when})", self._converged)

    # ---- the client's verbs on every node ---------------------------------------------------

    def _client_handlers(self, sim_node: SimNode) -> Handlers:
        history = self.history
        network = self.network
        assert network is not None

        def sim_write(session: Session, args: dict[str, Any], reply: Any) -> None:
            node = sim_node.node
            assert node is not None
            if not sim_node.serving:  # as a node that does not listen yet: refused
                raise ConnectionClosed(f"cannot connect to {sim_node.address}")
            write = history.writes[args["op"]]
            ks = node.schema.require(KEYSPACE)
            key = bytes(args["key"])
            # as the put handler: the session's high-water mark first, then the coordinator
            # stamps the write; a timestamp is used once per key so that every version names
            # exactly one write
            sessions.observe(node.clock, args.get("session_us") or None, stamps=True)
            ts = node.clock.now()
            while (key, ts) in history.by_ts:
                ts = node.clock.now()
            history.stamped(write, ts)
            now = node.clock.wall_seconds()
            if write.kind == "put":
                row = requests.put_row({"columns": {"v": write.value}}, ts, now, ks.default_ttl)
            else:
                row = requests.delete_row({}, ts, now)
            sent, applies = network.sent.get(sim_node.address, 0), sim_node.applies

            def done(result: Any) -> None:
                reply(result if isinstance(result, ProtocolError) else {"acks": result, "ts": ts})

            try:
                node.proxy.writes.start_write(ks, key, row, Consistency(write.level), done)
            except Unavailable:
                if network.sent.get(sim_node.address, 0) != sent or sim_node.applies != applies:
                    history.fail(f"op {write.op}: UNAVAILABLE after sending or applying")
                raise

        def sim_read(session: Session, args: dict[str, Any], reply: Any) -> None:
            node = sim_node.node
            assert node is not None
            if not sim_node.serving:
                raise ConnectionClosed(f"cannot connect to {sim_node.address}")
            ks = node.schema.require(KEYSPACE)

            def done(result: Any) -> None:
                if isinstance(result, ProtocolError):
                    reply(result)
                else:
                    reply({"row": None if result is None else result.to_wire()})

            node.proxy.reads.start_read(
                ks, bytes(args["key"]), Consistency(args["level"], None, "r"), done
            )

        return {
            "sim_write": (messages.DEFERRED, sim_write),
            "sim_read": (messages.DEFERRED, sim_read),
        }

    # ---- client operations ------------------------------------------------------------------

    def _begin(self) -> int:
        self._op += 1
        self._pending += 1
        return self._op

    def _end(self) -> None:
        self._pending -= 1
        if self._pending == 0:
            self._idle.set()

    @staticmethod
    def _outcome(error: ProtocolError | None) -> str:
        if error is None:
            return "ok"
        if isinstance(error, ConnectionClosed):
            return "closed"
        if isinstance(error, CallTimeout):
            return "timeout"
        return str(error.code)

    def write(
        self,
        coordinator: SimNode,
        key: bytes,
        kind: str,
        level: str,
        session: Callable[[Write, Any], None] | None = None,
    ) -> None:
        assert self.network is not None
        op = self._begin()
        write = Write(op, key, kind, op if kind == "put" else None, level, trio.current_time())
        write.coordinator = coordinator.index
        self.history.writes[op] = write
        args: dict[str, Any] = {"op": op, "key": key, "level": level}
        if session is not None:
            args["session_us"] = self.session_us

        def answered(value: Any, error: ProtocolError | None) -> None:
            write.outcome = self._outcome(error)
            if session is not None:
                session(write, value if error is None else None)
            if error is None:
                write.acked_at = trio.current_time()
            self.history.log.append(
                f"{trio.current_time():.6f} op{op} {kind} {key.decode()} {level} "
                f"n{coordinator.index}: {write.outcome} ts={write.ts}"
            )
            self._end()

        self.network.send(
            Network.CLIENT,
            coordinator.address,
            "sim_write",
            args,
            answered,
            CLIENT_TIMEOUT,
        )

    def read(
        self,
        coordinator: SimNode,
        key: bytes,
        level: str,
        then: Callable[[Read], None] | None = None,
    ) -> None:
        assert self.network is not None
        op = self._begin()
        read = Read(op, key, level, trio.current_time())
        self.history.reads[op] = read

        def answered(value: Any, error: ProtocolError | None) -> None:
            read.outcome = self._outcome(error)
            if error is None:
                raw = value.get("row")
                read.row = None if raw is None else Row.from_wire(raw)
                self.history.check_read(f"op{op}", key, level, read.issued, read.row)
            self.history.log.append(
                f"{trio.current_time():.6f} op{op} get {key.decode()} {level} "
                f"n{coordinator.index}: {read.outcome} {describe_row(read.row)}"
            )
            if then is not None:
                then(read)
            self._end()

        self.network.send(
            Network.CLIENT,
            coordinator.address,
            "sim_read",
            {"key": key, "level": level},
            answered,
            CLIENT_TIMEOUT,
        )

    async def _drain(self) -> None:
        """Wait until every client operation has its answer (at most the client timeout)."""
        if self._pending:
            self._idle = trio.Event()
            with trio.move_on_after(CLIENT_TIMEOUT * 2):
                await self._idle.wait()
            if self._pending:
                self.history.fail(f"{self._pending} client operations never completed")

    # ---- the workload -----------------------------------------------------------------------

    async def _workload(self) -> None:
        rng = self.rng
        options = self.options
        levels = ["ONE", "QUORUM", "QUORUM", "QUORUM", "ALL"]
        if options.handoff:
            levels = ["ONE", "ONE", "ONE", "QUORUM", "ALL"]
        async with trio.open_nursery() as faults:
            if options.session:
                faults.start_soon(self._session_loop)
            for _ in range(options.steps):
                await trio.sleep(rng.expovariate(options.ops_per_second))
                if rng.random() < options.fault_rate:
                    self._fault(faults)
                    continue
                coordinator = rng.choice(self.nodes)
                if not options.early_clients and not self._ready(coordinator):
                    coordinator = rng.choice([n for n in self.nodes if self._ready(n)])
                if options.session_only:
                    continue
                key = rng.choice(self.keys)
                level = rng.choice(levels)
                r = rng.random()
                if r < 0.45:
                    self.write(coordinator, key, "put", level)
                elif r < 0.55:
                    self.write(coordinator, key, "delete", level)
                else:
                    self.read(coordinator, key, level)
            faults.cancel_scope.cancel()

    async def _session_loop(self) -> None:
        """One client session: a write through a random serving coordinator, and the next once
        it answered; each acknowledgement raises the session's high-water mark, as the client
        library does."""
        rng = random.Random(self.rng.getrandbits(64))
        while True:
            await trio.sleep(rng.expovariate(self.options.ops_per_second / 4))
            ready = [n for n in self.nodes if self._ready(n)]
            if not ready:
                continue
            answered = trio.Event()

            def done(write: Write, result: Any, answered: trio.Event = answered) -> None:
                if isinstance(result, dict) and type(result.get("ts")) is int:
                    self.session_us = max(self.session_us, result["ts"])
                    self.session_writes.append(write)
                answered.set()

            key = rng.choice(self.session_keys)
            self.write(rng.choice(ready), key, "put", "QUORUM", session=done)
            await answered.wait()

    def _check_session(self) -> None:
        """Each acknowledged write of the session is stamped above every earlier one it made,
        whatever coordinators and skewed clocks they went through: the last one wins."""
        last: Write | None = None
        for write in self.session_writes:
            if last is not None and last.ts is not None and (write.ts or 0) <= last.ts:
                self.history.fail(
                    f"session write op{write.op} was stamped {write.ts}, not above op{last.op} "
                    f"({last.ts}) which the session had seen acknowledged"
                )
            last = write

    def _event(self, text: str) -> None:
        self.history.log.append(f"{trio.current_time():.6f} fault {text}")

    def _fault(self, nursery: trio.Nursery) -> None:
        rng = self.rng
        network = self.network
        assert network is not None
        duration = rng.uniform(0.5, 8.0)
        kind = rng.choice(
            ["partition", "pause", "crash", "restart", "slow", "drop", "skew", "flush"]
        )
        free = [n for n in self.nodes if n.index not in self._faulty]
        if kind in ("pause", "crash", "restart") and (
            len(self._faulty) >= self.options.max_node_faults or not free
        ):
            kind = "skew"
        if kind == "partition":
            if network.faults.blocked:
                return
            side = rng.sample(self.nodes, rng.randint(1, len(self.nodes) // 2))
            links = {(a.address, b.address) for a in side for b in self.nodes if b not in side}
            links |= {(b, a) for a, b in links}
            self._event(f"partition {sorted(n.index for n in side)} for {duration:.3f}s")
            network.faults.blocked |= links
            nursery.start_soon(
                self._later, duration, "heal partition", network.faults.blocked.clear
            )
        elif kind == "pause":
            node = rng.choice(free)
            self._faulty.add(node.index)
            self._event(f"pause n{node.index} for {duration:.3f}s")
            node.pause()

            def resume() -> None:
                if node.paused:
                    node.resume()
                self._faulty.discard(node.index)

            nursery.start_soon(self._later, duration, f"resume n{node.index}", resume)
        elif kind in ("crash", "restart"):
            node = rng.choice(free)
            self._faulty.add(node.index)
            power = (
                kind == "crash"
                and node.settings["commitlog_sync"] != "periodic"
                and rng.random() < 0.5
            )
            what = (
                "crash (power loss)" if power else "crash" if kind == "crash" else "clean restart"
            )
            self._event(f"{what} n{node.index}, down for {duration:.3f}s")
            nursery.start_soon(self._down, node, kind, power, duration)
        elif kind == "slow":
            node = rng.choice(self.nodes)
            extra = rng.uniform(0.05, 3.0)
            self._event(f"slow n{node.index} +{extra:.3f}s for {duration:.3f}s")
            network.faults.slow[node.address] = extra
            nursery.start_soon(
                self._later,
                duration,
                f"fast n{node.index}",
                lambda: network.faults.slow.pop(node.address, None),
            )
        elif kind == "drop":
            rate = rng.uniform(0.01, 0.3)
            self._event(f"drop {rate:.3f} for {duration:.3f}s")
            network.faults.drop = rate
            nursery.start_soon(
                self._later, duration, "no drops", lambda: setattr(network.faults, "drop", 0.0)
            )
        elif kind == "skew":
            node = rng.choice(self.nodes)
            skew = rng.randint(-self.options.max_skew_ms, self.options.max_skew_ms)
            self._event(f"skew n{node.index} {skew}ms")
            node.set_skew(skew)
        elif kind == "flush":
            node = rng.choice(self.nodes)
            if node.up and node.nursery is not None and node.node is not None:
                self._event(f"flush n{node.index}")
                node.nursery.start_soon(node.node.engine.flush)

    # Fault tasks undo their fault when its time is up. When the heal cancels them they do
    # nothing more (cancellation reaches tasks in no fixed order): the heal undoes every fault
    # itself, in a fixed order.

    async def _later(self, delay: float, what: str, undo: Callable[[], Any]) -> None:
        await trio.sleep(delay)
        self._event(what)
        undo()

    async def _down(self, node: SimNode, kind: str, power: bool, duration: float) -> None:
        with trio.CancelScope(shield=True):
            if kind == "crash":
                await node.crash(power)
            else:
                await node.stop()
        await trio.sleep(duration)
        with trio.CancelScope(shield=True):
            self._event(f"start n{node.index}")
            await node.start(self.nursery)
            self._check_restarted_ring(node)
            self._faulty.discard(node.index)

    # ---- heal and check ---------------------------------------------------------------------

    async def _heal(self) -> None:
        """Remove every fault, restart what is down, wait for gossip and the client."""
        network = self.network
        assert network is not None
        self._event("heal")
        network.faults.clear()
        for node in self.nodes:
            if node.paused:
                node.resume()
            node.set_skew(0)
            if not node.up:
                self._event(f"start n{node.index}")
                await node.start(self.nursery)
                self._check_restarted_ring(node)
        self._faulty.clear()
        await self._drain()
        await self._converge("heal")

    async def _check(self) -> None:
        """After the heal: read every key back and compare the replicas (see the package
        docstring for what each check claims)."""
        history = self.history
        self._check_session()
        written = sorted({w.key for w in history.writes.values()})
        results: dict[tuple[bytes, int], Read] = {}
        for key in written:
            self.read(self.rng.choice(self.nodes), key, "QUORUM")
            for node in self.nodes:
                self.read(
                    node, key, "ALL", lambda r, k=key, i=node.index: results.__setitem__((k, i), r)
                )
        await self._drain()
        for key in written:
            reads = [results.get((key, n.index)) for n in self.nodes]
            if any(r is None or r.outcome != "ok" for r in reads):
                history.fail(f"final ALL reads of {key!r}: {[r and r.outcome for r in reads]}")
                continue
            digests = {row_digest(r.row) for r in reads if r is not None}
            merged = self._replica_merge(key)
            if digests != {row_digest(merged)}:
                history.fail(
                    f"final ALL reads of {key!r} disagree with each other or with the merge of "
                    f"the replicas: {[describe_row(r.row) for r in reads if r]} vs "
                    f"{describe_row(merged)}"
                )
        for write in history.writes.values():
            if write.outcome == "UNAVAILABLE" and write.ts is not None:
                for node in self.nodes:
                    if write.ts in node.applied.get(write.key, ()):
                        history.fail(
                            f"op {write.op} failed UNAVAILABLE but n{node.index} applied it"
                        )

    def _replica_merge(self, key: bytes) -> Row | None:
        """The LWW merge of what every natural replica stores for ``key``, computed here, in
        the reverse of the ring order the coordinators use."""
        first = self.nodes[0].node
        assert first is not None
        ks = first.schema.require(KEYSPACE)
        replicas = first.topology.replicas(ks, token_for(key))
        by_host = {n.host_id: n for n in self.nodes}
        merged: Row | None = None
        for host in reversed(replicas):
            node = by_host[host].node
            assert node is not None
            row = node.engine.read(KEYSPACE, key)
            if row is not None:
                merged = row if merged is None else merged.merge(row)
        return merged

    def _record_final_rows(self) -> None:
        for node in self.nodes:
            if node.node is None:
                continue
            for key in self.keys:
                row = node.node.engine.read(KEYSPACE, key)
                self.final_rows.append(f"n{node.index} {key.decode()} {row_digest(row).hex()}")


__all__ = ["Options", "Result", "Simulation", "run", "Unavailable"]
