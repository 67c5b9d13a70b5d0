"""The hinted-handoff verbs (ringctl statushandoff, enable/disable/pause/resume, truncatehints,
get/setmaxhintwindow, sethintedhandoffthrottlekb, listpendinghints). Settings changed here are
this node's, until it restarts, as nodetool's are."""

from __future__ import annotations

from typing import Any

from ringd.db.cells import row_digest
from ringd.hints.cluster import ClusterView
from ringd.hints.service import HintsService
from ringd.net.server import Handler, Session
from ringd.protocol.errors import InvalidRequest, Unavailable
from ringd.protocol.messages import arg
from ringd.service.messages import MutateHintedRequest, ReadLocalRequest, ReadLocalResponse


def status(service: HintsService) -> dict[str, Any]:
    s = service.settings
    return {
        "running": s.enabled,
        "paused": s.paused,
        "disabled_dcs": sorted(s.disabled_dcs),
        "max_hint_window_ms": s.max_hint_window_ms,
        "throttle_kb": s.throttle_kb,
        "max_hints_size_per_host": s.max_hints_size_per_host,
    }


def verbs(service: HintsService, cluster: ClusterView) -> dict[str, Handler]:
    settings = service.settings

    def hints_status(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        return status(service)

    def hints_set(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        enabled = arg(args, "enabled", bool, None)
        paused = arg(args, "paused", bool, None)
        enable_dc = arg(args, "enable_dc", str, None)
        disable_dc = arg(args, "disable_dc", str, None)
        window = arg(args, "max_hint_window_ms", int, None)
        throttle = arg(args, "throttle_kb", int, None)
        if window is not None and not 0 <= window <= 30 * 86400 * 1000:
            raise InvalidRequest("max_hint_window_ms must be between 0 and 30 days")
        if throttle is not None and not 0 <= throttle <= 1024 * 1024:
            raise InvalidRequest("throttle_kb must be between 0 and 1048576")
        for dc in (enable_dc, disable_dc):
            if dc is not None and not 0 < len(dc) <= 256:
                raise InvalidRequest("a datacenter name is 1-256 characters")
        # everything checked: now change
        if enabled is not None:
            settings.enabled = enabled
        if paused is not None:
            settings.paused = paused
            if not paused:
                service.wake()
        if enable_dc is not None:
            settings.disabled_dcs.discard(enable_dc)
        if disable_dc is not None:
            settings.disabled_dcs.add(disable_dc)
        if window is not None:
            settings.max_hint_window_ms = window
        if throttle is not None:
            settings.throttle_kb = throttle
        return status(service)

    def hints_truncate(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        address = arg(args, "address", str, None)
        if address is None:
            return {"files": service.truncate()}
        hosts = [h for h in service.store.hosts if cluster.address_of(h) == address]
        return {"files": sum(service.truncate(h) for h in hosts)}

    def hints_pending(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        hosts = []
        for entry in service.pending():
            h = entry["host_id"]
            hosts.append(
                {
                    **entry,
                    "address": cluster.address_of(h),
                    "dc": cluster.dc_of(h),
                    "rack": cluster.rack_of(h),
                    "status": "UP" if cluster.is_alive(h) else "DOWN",
                }
            )
        return {
            "hosts": hosts,
            "throttle_kb": settings.throttle_kb,
            "totals": service.totals(),
            "by_host": service.by_host(),
        }

    def mutate_hinted(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        """Sloppy quorum: hold a write for a down replica (as a hint) and acknowledge it."""
        request = MutateHintedRequest.from_wire(args)
        if not service.hold(request.for_host, request.ks, request.key, request.row):
            raise Unavailable(
                f"cannot hold a write for {request.for_host}: hints for it are not kept "
                "(handoff off, past the hint window, or its hints are full)",
                required=1,
                alive=0,
            )
        return {}

    def read_hinted(s: Session, args: dict[str, Any]) -> dict[str, Any]:
        """Sloppy quorum: the row this node holds for down replicas (as ``read_local``)."""
        req = ReadLocalRequest.from_wire(args)
        row = service.held_row(req.ks, req.key)
        if req.digest:
            return ReadLocalResponse(None, row_digest(row), 0).to_wire()
        return ReadLocalResponse(row, None, 0).to_wire()

    return {
        "mutate_hinted": mutate_hinted,
        "read_hinted": read_hinted,
        "hints_status": hints_status,
        "hints_set": hints_set,
        "hints_truncate": hints_truncate,
        "hints_pending": hints_pending,
    }
