"""What this node knows of its peers, kept across restarts: ``DATA_DIR/system/peers.cbor``.

As Cassandra's ``system.peers``: for every peer gossip knows (not the local node, not one whose
STATUS is LEFT) its generation and the application states that place it on the ring
(``SAVED_STATES``), without the volatile ones (heartbeat, versions, load, clock offset)::

    {"version": 1, "peers": {host_id: {"generation": int, "states": {"TOKENS": [...], ...}}}}

At start the node gives them to the gossiper as saved endpoints (``Gossiper.add_saved_endpoint``),
DOWN until gossip hears from them, so that its ring is complete from the first request and
liveness decides availability. ``PeersFile.run`` rewrites the file (atomically) when gossip
reports a change in membership, tokens or status, at most once per ``interval``; the node also
saves it at a clean shutdown. A damaged file is logged and ignored: the node then learns its
peers from gossip alone.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cbor2
import trio

from ringd.fsutil import atomic_write
from ringd.gms.gossiper import Gossiper
from ringd.gms.state import AppState, EndpointState, Status, check_app_value, check_host_id

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SAVED_STATES = (
    AppState.HOST_ID,
    AppState.ADDRESS,
    AppState.DC,
    AppState.RACK,
    AppState.TOKENS,
    AppState.STATUS,
)

Saved = dict[str, tuple[int, dict[str, Any]]]


def snapshot(states: dict[str, EndpointState], local_host_id: str) -> Saved:
    """``{host_id: (generation, {key: value})}`` of the peers worth saving."""
    out: Saved = {}
    for host_id, state in sorted(states.items()):
        if host_id == local_host_id or state.status == Status.LEFT:
            continue
        values = {
            key.value: list(v) if isinstance(v, tuple) else v
            for key in SAVED_STATES
            if (v := state.get(key)) is not None
        }
        out[host_id] = (state.generation, values)
    return out


def encode(peers: Saved) -> bytes:
    return cbor2.dumps(
        {
            "version": FORMAT_VERSION,
            "peers": {h: {"generation": g, "states": s} for h, (g, s) in peers.items()},
        }
    )


def decode(raw: bytes) -> Saved:
    """Parse and validate the file's bytes; ValueError if anything is wrong."""
    try:
        doc = cbor2.loads(raw)
    except Exception as exc:  # cbor2 raises several kinds on garbage
        raise ValueError(f"not CBOR: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
        raise ValueError(f"not a version {FORMAT_VERSION} peers map")
    peers = doc.get("peers")
    if not isinstance(peers, dict):
        raise ValueError("peers must be a map")
    out: Saved = {}
    for raw_host_id, entry in peers.items():
        host_id = check_host_id(raw_host_id)
        if not isinstance(entry, dict) or not isinstance(entry.get("states"), dict):
            raise ValueError(f"bad entry for {host_id}")
        generation = entry.get("generation")
        if type(generation) is not int or generation < 0:
            raise ValueError(f"bad generation for {host_id}")
        states = {k: check_app_value(k, v) for k, v in entry["states"].items() if k in SAVED_STATES}
        out[host_id] = (generation, states)
    return out


def load(path: Path) -> Saved:
    """The saved peers; nothing when the file is missing, unreadable or damaged (logged)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.warning("cannot read %s (%s); learning the peers from gossip", path, exc.strerror)
        return {}
    try:
        return decode(raw)
    except ValueError as exc:
        log.warning("ignoring damaged %s (%s); learning the peers from gossip", path, exc)
        return {}


def restore(gossiper: Gossiper, peers: Saved) -> int:
    """Give the saved peers to ``gossiper`` (DOWN until it hears from them); how many it took."""
    added = 0
    for host_id, (generation, states) in peers.items():
        try:
            added += gossiper.add_saved_endpoint(host_id, generation, states)
        except ValueError as exc:
            log.warning("ignoring saved peer %s: %s", host_id, exc)
    return added


class PeersFile:
    """Keeps ``path`` in step with ``gossiper``'s peers (written at most once per ``interval``)."""

    def __init__(self, path: Path, gossiper: Gossiper, *, interval: float = 1.0) -> None:
        self.path = path
        self.gossiper = gossiper
        self.interval = interval
        self._saved: bytes | None = None
        self._changed = trio.Event()

    def load_into_gossiper(self) -> int:
        """Read the file and restore its peers into the gossiper (call within trio)."""
        return restore(self.gossiper, load(self.path))

    def save(self) -> None:
        """Write the file now if what it should hold changed; a failure is logged."""
        data = encode(snapshot(self.gossiper.endpoint_states(), self.gossiper.local_host_id))
        if data == self._saved:
            return
        try:
            atomic_write(self.path, data)
        except OSError as exc:
            log.warning("cannot save %s (%s)", self.path, exc.strerror)
            return
        self._saved = data

    def _on_gossip(self, event: str, host_id: str, state: EndpointState) -> None:
        if host_id != self.gossiper.local_host_id:
            self._changed.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Save after gossip news, debounced, until cancelled."""
        unsubscribe = self.gossiper.subscribe(self._on_gossip)
        task_status.started()
        try:
            while True:
                await self._changed.wait()
                self._changed = trio.Event()
                self.save()
                await trio.sleep(self.interval)
        finally:
            unsubscribe()
