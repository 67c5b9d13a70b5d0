"""Fault injection on a local cluster through the nodes' test hooks.

Every node the manager starts has ``enable_test_hooks = true``; a node without it refuses these
requests with ``UNAUTHORIZED``. A partition is a set of drop rules in the message filters of the
nodes concerned: for every pair of named nodes, each drops what it sends to the other, so the
pair cannot talk in either direction while both still talk to everyone else. Dropped messages
are lost as a real network loses them: the sender waits out its timeout. ``heal`` clears every
rule on every running node; the counters (dropped, delayed, sent) keep counting.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ringctl.client import Client
from ringctl.cluster.layout import ClusterSpec, LayoutError, NodeSpec, connect_args
from ringctl.cluster.manager import RUNNING, ClusterError, node_process
from ringctl.output import CONNECT, NOT_FOUND, USAGE


def _live(spec: ClusterSpec, numbers: Iterable[int]) -> list[NodeSpec]:
    nodes = []
    for number in numbers:
        try:
            node = spec.node(number)
        except LayoutError as exc:
            raise ClusterError(str(exc), NOT_FOUND) from None
        state = node_process(spec, node).state
        if state != RUNNING:
            raise ClusterError(
                f"{node.name} is {state}; fault injection needs it running "
                f"('ringctl cluster node {node.number} start' or 'resume')",
                CONNECT,
            )
        if node not in nodes:
            nodes.append(node)
    return nodes


def _filter(node: NodeSpec, **args: Any) -> dict[str, Any]:
    with Client(node.address, timeout=5.0, **connect_args(node.address)) as db:
        return dict(db.admin("test_filter", **args))


def partition(
    spec: ClusterSpec, numbers: list[int], verbs: list[str] | None = None
) -> list[dict[str, Any]]:
    """Drop messages between every pair of the named nodes, both ways (only ``verbs`` if given)."""
    nodes = _live(spec, numbers)
    if len(nodes) < 2:
        raise ClusterError("name at least two different nodes to partition, e.g. '1 3'", USAGE)
    out = []
    for node in nodes:
        others = [o.address for o in nodes if o is not node]
        result = _filter(node, action="drop", to=others, verbs=verbs or None)
        out.append({"node": node.name, "address": node.address, **result})
    return out


def heal(spec: ClusterSpec) -> list[dict[str, Any]]:
    """Clear every filter rule on every running node."""
    out = []
    for node in spec.nodes:
        if node_process(spec, node).state != RUNNING:
            continue
        result = _filter(node, action="clear")
        out.append({"node": node.name, "address": node.address, **result})
    return out


def filters(spec: ClusterSpec) -> list[dict[str, Any]]:
    """Rules and counters of every running node's message filter."""
    out = []
    for node in spec.nodes:
        if node_process(spec, node).state != RUNNING:
            out.append({"node": node.name, "address": node.address, "running": False})
            continue
        result = _filter(node, action="list")
        out.append({"node": node.name, "address": node.address, "running": True, **result})
    return out


def clock_offset(spec: ClusterSpec, number: int, offset_ms: int) -> dict[str, Any]:
    """Shift one node's wall clock by ``offset_ms`` (until it restarts)."""
    node = _live(spec, [number])[0]
    with Client(node.address, timeout=5.0, **connect_args(node.address)) as db:
        result = db.admin("test_clock", offset_ms=offset_ms)
    return {"node": node.name, "address": node.address, **result}
