"""Wait for gossip to settle before serving clients, as Cassandra's ``waitToSettle``.

A starting node whose seeds include another node waits (at most ``timeout`` seconds) until at
least one peer is alive (gossip heard from it) and what gossip knows (the endpoints, their
generations, the versions of their application states but the volatile ones, and who is alive)
has not changed for ``rounds`` gossip rounds in a row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import trio

from ringd.gms.gossiper import Gossiper
from ringd.gms.state import AppState

log = logging.getLogger(__name__)

#: gossip rounds without a change after which gossip counts as settled
SETTLE_ROUNDS = 3
#: application states that change all the time and say nothing about the ring
VOLATILE = frozenset({AppState.LOAD.value, AppState.CLOCK_OFFSET_MS.value})


@dataclass(frozen=True)
class Settled:
    settled: bool
    waited: float  # seconds
    known: int  # peers gossip knows
    alive: int  # of them alive


def _fingerprint(gossiper: Gossiper) -> Any:
    local = gossiper.local_host_id
    return (
        tuple(gossiper.live_members()),
        tuple(
            (
                host_id,
                state.generation,
                tuple(
                    sorted((k, v.version) for k, v in state.app_states.items() if k not in VOLATILE)
                ),
            )
            for host_id, state in sorted(gossiper.endpoint_states().items())
            if host_id != local
        ),
    )


async def wait_to_settle(
    gossiper: Gossiper, timeout: float, *, rounds: int = SETTLE_ROUNDS
) -> Settled:
    """Poll once per gossip interval until gossip settled or ``timeout`` passed; log and
    return what it waited for."""
    start = trio.current_time()
    settled = False
    last, stable = None, 0
    with trio.move_on_after(timeout):
        while True:
            await trio.sleep(gossiper.interval)
            current = _fingerprint(gossiper)
            stable = stable + 1 if current == last else 0
            last = current
            if len(gossiper.live_members()) > 1 and stable >= rounds:
                settled = True
                break
    known = len(gossiper.endpoint_states()) - 1
    result = Settled(settled, trio.current_time() - start, known, len(gossiper.live_members()) - 1)
    if settled:
        log.info(
            "gossip settled after %.1f s: %d peers known, %d up",
            result.waited,
            result.known,
            result.alive,
        )
    else:
        log.warning(
            "gossip did not settle within %g s (%d peers known, %d up); serving anyway",
            timeout,
            result.known,
            result.alive,
        )
    return result
