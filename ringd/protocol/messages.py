"""The verb table and the shapes of messages (one row per request type, as Cassandra's Verb).

Every frame body is a CBOR map:

  request   {"id": int, "op": str, "args": map}
  result    {"id": int, "result": any}
  error     {"id": int | null, "error": {"code": str, "message": str, ...details}}

The first request on a connection must be ``hello``. ``id`` is chosen by the sender; responses may
come back in any order.

Each verb says how the node runs its handler (``Verb.mode``):

  inline    ``handler(session, args) -> result``, answered in the connection's reader (cheap work)
  deferred  ``handler(session, args, reply)``: the handler starts the work and returns; ``reply``
            is called once, later or at once, with the result or a ``ProtocolError`` (the
            coordinator's reads and writes, replica mutations waiting for an fsync)
  task      ``async handler(session, args) -> result`` in its own task (work that waits and is
            not on the hot path: schema changes, scans, flush, compaction)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ringd.protocol.errors import ErrorCode, InvalidRequest, ProtocolError

INLINE = "inline"
DEFERRED = "deferred"
TASK = "task"
MODES = (INLINE, DEFERRED, TASK)

CLIENT = "client"
PEER = "peer"
ROLES = (CLIENT, PEER)


@dataclass(frozen=True, slots=True)
class Verb:
    name: str
    roles: frozenset[str]  # who may send it
    timeout: float  # seconds a caller waits for the response by default
    doc: str
    mode: str = INLINE  # how the handler runs: inline, deferred or task
    request: str = ""  # the typed request class ("module:Class"), "" for named arguments
    response: str = ""  # the typed response class, "" for a plain map


# the typed peer messages (validated ``from_wire``, ``to_wire``); named here, not imported, so
# that this layer stays below the services that define them (``ringd.verbs`` resolves them)
_DATA = "ringd.service.messages:"
_GOSSIP = "ringd.gms.messages:"


def _verbs(*rows: tuple[Any, ...]) -> dict[str, Verb]:
    return {row[0]: Verb(row[0], frozenset(row[1]), *row[2:]) for row in rows}


_BOTH = (CLIENT, PEER)
_PEER = (PEER,)
VERBS: dict[str, Verb] = _verbs(
    # name, who may send, timeout, what it does, how it runs[, request type, response type]
    ("hello", _BOTH, 5.0, "open the connection: version, role, credentials", INLINE),
    ("ping", _BOTH, 5.0, "liveness and version of the node", INLINE),
    ("auth", _PEER, 5.0, "peer authentication: the initiator's proof", INLINE),
    ("put", _BOTH, 12.0, "write columns of a row, coordinated at a consistency level", DEFERRED),
    ("get", _BOTH, 12.0, "read a row, coordinated at a consistency level", DEFERRED),
    ("delete", _BOTH, 12.0, "delete a row or named columns", DEFERRED),
    ("scan", _BOTH, 60.0, "a page of rows in token order (dump)", TASK),
    ("keyspace_create", _BOTH, 10.0, "define a keyspace", TASK),
    ("keyspace_alter", _BOTH, 10.0, "change a keyspace's replication or options", TASK),
    ("keyspace_drop", _BOTH, 10.0, "drop a keyspace and its data", TASK),
    ("keyspace_list", _BOTH, 5.0, "the keyspaces and their settings", INLINE),
    ("status", _BOTH, 5.0, "every node: address, dc, rack, state, load, tokens, ownership", INLINE),
    ("info", _BOTH, 5.0, "this node: host id, uptime, load, generation, storage", INLINE),
    ("ring", _BOTH, 5.0, "every token with its node", INLINE),
    ("describecluster", _BOTH, 5.0, "cluster name, partitioner, schema versions", INLINE),
    ("describering", _BOTH, 5.0, "token ranges of a keyspace with their replicas", INLINE),
    ("getendpoints", _BOTH, 5.0, "a key's token and replicas", INLINE),
    ("gossipinfo", _BOTH, 5.0, "the gossip state of every endpoint", INLINE),
    ("proxyhistograms", _BOTH, 5.0, "coordinator latency percentiles and failure counters", INLINE),
    (
        "tpstats",
        _BOTH,
        5.0,
        "stages (active, pending, completed, blocked), dropped messages",
        INLINE,
    ),
    ("tablehistograms", _BOTH, 5.0, "a keyspace's local read/write latency and read shape", INLINE),
    ("netstats", _BOTH, 5.0, "mode, hints being replayed, repair sessions, read repair", INLINE),
    ("setlogginglevel", _BOTH, 5.0, "set a logger's level on this node (admin)", INLINE),
    ("getlogginglevels", _BOTH, 5.0, "this node's loggers and their levels", INLINE),
    ("toppartitions", _BOTH, 610.0, "sample a keyspace's hottest keys for a while", TASK),
    (
        "staleness",
        _BOTH,
        5.0,
        "digest mismatches per keyspace, hint backlog, repair age, replica lag probe",
        INLINE,
    ),
    ("replica_latencies", _BOTH, 5.0, "one-way replica trips W, A, R, S (PBS)", INLINE),
    ("flush", _BOTH, 120.0, "flush memtables to sstables", TASK),
    ("compact", _BOTH, 600.0, "major compaction", TASK),
    (
        "removenode",
        _BOTH,
        86400.0,
        "re-replicate a dead node's ranges and remove it; status; force",
        TASK,
    ),
    ("decommission", _BOTH, 86400.0, "stream this node's ranges to others and leave", TASK),
    ("cleanup", _BOTH, 3600.0, "remove data this node no longer replicates", TASK),
    ("compactionstats", _BOTH, 5.0, "pending and active compactions", INLINE),
    ("tablestats", _BOTH, 5.0, "per keyspace storage statistics", INLINE),
    ("verify", _BOTH, 600.0, "check every sstable's checksums", TASK),
    ("hints_status", _BOTH, 5.0, "hinted handoff: running, paused, window, throttle", INLINE),
    ("hints_set", _BOTH, 5.0, "hinted handoff: change this node's settings", INLINE),
    ("hints_truncate", _BOTH, 10.0, "hinted handoff: delete stored hints", INLINE),
    ("hints_pending", _BOTH, 5.0, "hinted handoff: hints waiting per target node", INLINE),
    ("assassinate", _BOTH, 5.0, "remove a dead endpoint from gossip everywhere (admin)", INLINE),
    ("role_create", _BOTH, 10.0, "create a client role (admin): name, kind, password", TASK),
    ("role_alter", _BOTH, 10.0, "give a client role a new password (admin)", TASK),
    ("role_drop", _BOTH, 10.0, "drop a client role (admin; not the last admin)", TASK),
    ("role_list", _BOTH, 5.0, "the client roles: name, kind, created (admin)", INLINE),
    ("test_filter", _BOTH, 5.0, "test hook: drop or delay internode messages", INLINE),
    ("test_clock", _BOTH, 5.0, "test hook: shift this node's wall clock", INLINE),
    ("test_apply_delay", _BOTH, 5.0, "test hook: delay applying peers' writes", INLINE),
    ("repair_start", _BOTH, 10.0, "start a repair session; answers with it at once", INLINE),
    ("repair_session", _BOTH, 5.0, "a repair session's state and progress", INLINE),
    ("repair_sessions", _BOTH, 5.0, "the repair sessions this node coordinated", INLINE),
    ("repair_cancel", _BOTH, 10.0, "cancel a running repair session", TASK),
    (
        "repair_state",
        _BOTH,
        5.0,
        "when this node's ranges were last repaired; anti-entropy",
        INLINE,
    ),
    # between nodes only
    ("repair_validate", _PEER, 300.0, "repair: Merkle tree of a range (scans it)", TASK),
    ("repair_leaves", _PEER, 120.0, "repair: (key, row digest) pairs of tree leaves", TASK),
    ("repair_rows", _PEER, 60.0, "repair: rows by key, with timestamps and tombstones", INLINE),
    ("repair_apply", _PEER, 60.0, "repair: merge rows (all checked first)", TASK),
    ("repair_release", _PEER, 5.0, "repair: a session ended; record completed ranges", INLINE),
    (
        "stream_request",
        _PEER,
        86400.0,
        "streaming: pull these ranges of a keyspace from that node now",
        TASK,
    ),
    ("stream_pull", _PEER, 60.0, "streaming: a CRC-checked chunk of a token range's rows", INLINE),
    # fmt: off
    (
        "mutate",
        _PEER,
        10.0,
        "apply a mutation to the local replica",
        DEFERRED,
        _DATA + "MutateRequest",
        _DATA + "MutateResponse",
    ),
    (
        "mutate_batch",
        _PEER,
        10.0,
        "several mutate requests in one frame: a coordinator's writes to one replica",
        DEFERRED,
    ),
    (
        "mutate_hinted",
        _PEER,
        10.0,
        "sloppy quorum: hold a write for a down replica as a hint",
        INLINE,
        _DATA + "MutateHintedRequest",
        "",
    ),
    (
        "read_hinted",
        _PEER,
        10.0,
        "sloppy quorum: the row this node holds for down replicas: data or digest",
        INLINE,
        _DATA + "ReadLocalRequest",
        _DATA + "ReadLocalResponse",
    ),
    (
        "read_local_batch",
        _PEER,
        10.0,
        "several read_local requests in one frame: a coordinator's reads from one replica",
        DEFERRED,
    ),
    (
        "read_local",
        _PEER,
        10.0,
        "read a row from the local replica: data or digest",
        INLINE,
        _DATA + "ReadLocalRequest",
        _DATA + "ReadLocalResponse",
    ),
    (
        "scan_local",
        _PEER,
        60.0,
        "a page of the local replica's rows in a token range",
        INLINE,
        _DATA + "ScanLocalRequest",
        _DATA + "ScanLocalResponse",
    ),
    (
        "gossip_syn",
        _PEER,
        2.0,
        "gossip: digests",
        INLINE,
        _GOSSIP + "GossipSyn",
        _GOSSIP + "GossipAck",
    ),
    ("gossip_ack2", _PEER, 2.0, "gossip: the states asked for", INLINE, _GOSSIP + "GossipAck2", ""),
    (
        "schema_pull",
        _PEER,
        5.0,
        "the sender's keyspace definitions",
        INLINE,
        _DATA + "SchemaPullRequest",
        _DATA + "SchemaPullResponse",
    ),
    (
        "schema_push",
        _PEER,
        5.0,
        "keyspace definitions to merge",
        INLINE,
        _DATA + "SchemaPushRequest",
        _DATA + "SchemaPushResponse",
    ),
    # fmt: on
)


#: verbs a sender may group into one frame: the batch verb -> the verb of its items. The server
#: unpacks a batch (``{"items": [args, ...]}``, 1 to ``MAX_BATCH_ITEMS``) and runs each item as a
#: request of the item verb; one result carries every item's answer in order
#: (``{"results": [result or {"error": ...}, ...]}``). A subsystem may serve the batch verb
#: itself, with the same answer (the replica's ``mutate_batch``: one pass over the items). Only
#: verbs whose result is a map without an ``error`` key can be batched.
BATCHES = {"mutate_batch": "mutate", "read_local_batch": "read_local"}
BATCH_OF = {item: batch for batch, item in BATCHES.items()}
MAX_BATCH_ITEMS = 128
#: verbs the server answers itself, without a subsystem's handler
SERVER_VERBS = frozenset({"hello", *BATCHES})


def parse_request(msg: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
    """The (id, op, args) of a request map; raises ``ProtocolError`` if it is not one."""
    req_id = msg.get("id")
    if type(req_id) is not int or not 0 <= req_id < 1 << 63:
        raise ProtocolError("request id must be a non-negative integer below 2**63")
    op = msg.get("op")
    if not isinstance(op, str):
        raise ProtocolError("request op must be a text string", id=req_id)
    args = msg.get("args", {})
    if not isinstance(args, dict):
        raise ProtocolError("request args must be a map", id=req_id)
    return req_id, op, args


def request(req_id: int, op: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"id": req_id, "op": op, "args": args}


def result(req_id: int | None, value: Any) -> dict[str, Any]:
    return {"id": req_id, "result": value}


def error(req_id: int | None, exc: ProtocolError) -> dict[str, Any]:
    return {"id": req_id, "error": exc.to_wire()}


def hello_args(role: str, credentials: Any = None, **extra: Any) -> dict[str, Any]:
    from ringd.protocol import PROTOCOL_VERSION

    return {"version": PROTOCOL_VERSION, "role": role, "credentials": credentials, **extra}


def check_hello(args: dict[str, Any]) -> str:
    """Validate hello arguments; return the role."""
    from ringd.protocol import PROTOCOL_VERSION

    version = args.get("version")
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version {version!r} is not supported; this node speaks {PROTOCOL_VERSION}"
        )
    role = args.get("role")
    if role not in ROLES:
        raise ProtocolError(f"hello role must be one of {', '.join(ROLES)}, not {role!r}")
    return str(role)


def response_value(msg: dict[str, Any]) -> Any:
    """The result of a response map, or raise the error it carries."""
    if "error" in msg:
        raise ProtocolError.from_wire(msg["error"])
    if "result" not in msg:
        raise ProtocolError("response has neither result nor error")
    return msg["result"]


def arg(args: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    """A request argument of the given type, or ``INVALID`` naming what is wrong."""
    if name not in args or args[name] is None:
        if default is ...:
            raise InvalidRequest(f"missing argument {name!r}")
        return default
    value = args[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        names = "/".join(k.__name__ for k in _as_tuple(kind))
        raise InvalidRequest(f"argument {name!r} must be {names}, not {type(value).__name__}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


__all__ = [
    "CLIENT",
    "DEFERRED",
    "INLINE",
    "PEER",
    "TASK",
    "VERBS",
    "ErrorCode",
    "Verb",
    "arg",
    "check_hello",
    "error",
    "hello_args",
    "parse_request",
    "request",
    "response_value",
    "result",
]
