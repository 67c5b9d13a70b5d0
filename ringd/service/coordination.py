"""What the write, read and scan paths share: the consistency asked for, replica plans (with
``UNAVAILABLE`` counted), the timeout errors, and awaiting a callback-style operation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from ringd.locator.consistency import ReplicaPlan
from ringd.locator.consistency import Unavailable as PlanUnavailable
from ringd.metrics import CoordinatorMetrics
from ringd.protocol.errors import ErrorCode, InvalidRequest, ProtocolError, Timeout, Unavailable
from ringd.schema import Keyspace
from ringd.words import plural

if TYPE_CHECKING:
    from ringd.service.topology import Topology


@dataclass
class Consistency:
    """What the client asked for: a level name, or an explicit count of replicas."""

    level: str = "QUORUM"
    count: int | None = None
    count_name: str = "w"

    def describe(self) -> str:
        return self.level or f"{self.count_name}={self.count}"

    @classmethod
    def from_args(cls, args: dict[str, Any], count_name: str) -> Consistency:
        level = args.get("consistency")
        count = args.get(count_name)
        if count is not None:
            if type(count) is not int or count < 1:
                raise InvalidRequest(f"{count_name} must be a positive integer")
            if level is not None:
                raise InvalidRequest(f"give either consistency or {count_name}, not both")
            return cls("", count, count_name)
        if level is None:
            return cls(count_name=count_name)
        if not isinstance(level, str):
            raise InvalidRequest("consistency must be a level name such as QUORUM")
        return cls(level.upper(), count_name=count_name)


def plan(
    topology: Topology,
    metrics: CoordinatorMetrics,
    keyspace: Keyspace,
    natural: list[str],
    consistency: Consistency,
    *,
    write: bool,
) -> ReplicaPlan:
    """The replica plan, or ``UNAVAILABLE`` (counted) when too few replicas are alive."""
    try:
        return topology.plan(keyspace, natural, consistency, write=write)
    except PlanUnavailable as exc:
        metrics.counters["write_unavailable" if write else "read_unavailable"] += 1
        raise unavailable(exc, consistency) from None


def unavailable(exc: PlanUnavailable, consistency: Consistency) -> Unavailable:
    where = f" in {exc.dc}" if getattr(exc, "dc", None) else ""
    level = consistency.describe()
    return Unavailable(
        f"cannot achieve consistency {level}: {plural(exc.required, 'replica')} required{where} "
        f"but only {exc.alive} alive",
        required=exc.required,
        alive=exc.alive,
        consistency=level,
        replicas=exc.replicas,
    )


def read_timeout(received: int, required: int, consistency: Consistency) -> Timeout:
    return Timeout(
        f"read timed out: {received} of {required} required replicas responded",
        ErrorCode.READ_TIMEOUT,
        received=received,
        required=required,
        consistency=consistency.describe(),
    )


async def wait(start: Callable[[Callable[[Any], None]], None]) -> Any:
    """Run a callback-style ``start(done)`` and wait for what ``done`` gets (raise errors)."""
    event = trio.Event()
    out: list[Any] = []

    def done(value: Any) -> None:
        out.append(value)
        event.set()

    start(done)
    await event.wait()
    if isinstance(out[0], ProtocolError):
        raise out[0]
    return out[0]
