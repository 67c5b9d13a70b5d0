"""Range scans (``scan``, ringctl dump): a page of rows in token order, each token range read
from its replicas at the consistency level (``scan_local``) and merged."""

from __future__ import annotations

import logging

import trio

from ringd.db.cells import Row
from ringd.dht.tokens import MAX_TOKEN, MIN_TOKEN
from ringd.locator.consistency import ReplicaPlan
from ringd.metrics import CoordinatorMetrics
from ringd.net.messaging import Messaging
from ringd.protocol.errors import ProtocolError
from ringd.schema import Keyspace
from ringd.service import coordination
from ringd.service.coordination import Consistency, read_timeout
from ringd.service.messages import Cursor, ScanLocalRequest, ScanLocalResponse
from ringd.service.replica import Replica, row_bytes
from ringd.service.topology import Topology

log = logging.getLogger(__name__)

SCAN_PAGE = 500

Page = tuple[list[tuple[int, bytes, Row]], bool]


class Scans:
    """The range-scan path of the coordinator."""

    def __init__(
        self,
        *,
        topology: Topology,
        replica: Replica,
        messaging: Messaging,
        metrics: CoordinatorMetrics,
        range_timeout: float,
    ) -> None:
        self.topology = topology
        self.replica = replica
        self.messaging = messaging
        self.metrics = metrics
        self.range_timeout = range_timeout  # one token range, every replica

    async def scan_page(
        self, keyspace: Keyspace, after: Cursor | None, limit: int, consistency: Consistency
    ) -> tuple[list[tuple[int, bytes, Row]], Cursor | None]:
        """Up to ``limit`` rows in token order after ``after``, merged from the replicas of each
        token range at ``consistency``; and the cursor to continue from (None at the end).

        A cursor is ``(token, key)``: continue after that row; ``key`` None means after every
        row of that token.
        """
        start = trio.current_time()
        topology = self.topology
        rows: list[tuple[int, bytes, Row]] = []
        size, budget = 0, self.replica.page_bytes
        cursor: Cursor | None = after or (MIN_TOKEN, None)
        while cursor is not None and len(rows) < limit and size < budget:
            segment = topology.segment_after(keyspace, cursor)
            if segment is None:
                cursor = None
                break
            end, natural = segment
            plan = coordination.plan(
                topology, self.metrics, keyspace, natural, consistency, write=False
            )
            page, complete = await self._scan_range(
                keyspace, plan, cursor, end, limit - len(rows), consistency
            )
            rows.extend(page)
            size += sum(len(k) + row_bytes(r) for _, k, r in page)
            if complete:
                cursor = None if end == MAX_TOKEN else (end, None)
            else:
                cursor = (page[-1][0], page[-1][1])
        self.metrics.range_latency.add(trio.current_time() - start)
        return rows, cursor

    async def _scan_range(
        self,
        keyspace: Keyspace,
        plan: ReplicaPlan,
        after: Cursor,
        end: int,
        limit: int,
        consistency: Consistency,
    ) -> tuple[list[tuple[int, bytes, Row]], bool]:
        """Rows of one token range after ``after``; and whether the range is exhausted."""
        replies: dict[str, Page] = {}
        request = ScanLocalRequest(keyspace.name, after, end, limit)
        with trio.move_on_after(self.range_timeout):
            async with trio.open_nursery() as nursery:
                for host in plan.contacts:
                    nursery.start_soon(self._scan_one, host, request, replies)
        if len(replies) < len(plan.contacts):
            raise read_timeout(len(replies), plan.required, consistency)
        # rows up to the smallest last row among full pages are complete on every replica
        bound: tuple[int, bytes] | None = None
        for page, full in replies.values():
            if full and page:
                last = (page[-1][0], page[-1][1])
                bound = last if bound is None or last < bound else bound
        merged: dict[tuple[int, bytes], Row] = {}
        for page, _ in replies.values():
            for token, key, row in page:
                if bound is not None and (token, key) > bound:
                    continue
                have = merged.get((token, key))
                merged[(token, key)] = row if have is None else have.merge(row)
        out = [(t, k, merged[(t, k)]) for t, k in sorted(merged)]
        return out, bound is None

    async def _scan_one(self, host: str, request: ScanLocalRequest, out: dict[str, Page]) -> None:
        try:
            if host == self.topology.local_host_id:
                out[host] = self.replica.scan_local(
                    request.ks, request.after, request.end, request.limit
                )
                return
            value = await self.messaging.call(
                self.topology.address(host), "scan_local", request.to_wire()
            )
            response = ScanLocalResponse.from_wire(value, request.limit)
            out[host] = response.rows, response.full
        except (ProtocolError, OSError) as exc:
            log.debug("scan of %s failed: %s", host, exc)
