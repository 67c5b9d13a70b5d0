"""CPU time of node processes (from /proc/PID/stat) and of this client (getrusage).

A node's pid comes from the local cluster's pid files (``ringctl cluster``), else from the
process holding the node's listening socket (/proc/net/tcp, then /proc/PID/fd; only processes
this user may inspect). Without /proc, or when any live node of the ring has no local pid, the
cluster's CPU is unknown (None): a sum over some of the nodes would mislead.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
from pathlib import Path

from ringd.net.address import split_address

PROC = Path("/proc")


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` in seconds, or None if it cannot be read."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()  # after "pid (comm) "; fields[0] is the state
    try:
        ticks = int(fields[11]) + int(fields[12])  # utime and stime: fields 14 and 15 of stat
    except (IndexError, ValueError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _hex_address(host: str, port: int) -> set[str]:
    """The /proc/net/tcp spellings of HOST:PORT, and of the wildcard address on PORT."""
    try:
        packed = socket.inet_aton(socket.gethostbyname(host))
    except OSError:
        return set()
    ip = packed[::-1].hex().upper()  # little-endian on the machines /proc/net/tcp is read on
    return {f"{ip}:{port:04X}", f"00000000:{port:04X}"}


def _listening_inodes(address: str) -> set[str]:
    host, port = split_address(address)
    wanted = _hex_address(host, port)
    inodes = set()
    try:
        lines = (PROC / "net" / "tcp").read_text().splitlines()[1:]
    except OSError:
        return set()
    for line in lines:
        parts = line.split()
        if len(parts) > 9 and parts[3] == "0A" and parts[1] in wanted:  # 0A: LISTEN
            inodes.add(parts[9])
    return inodes


def listener_pid(address: str) -> int | None:
    """The pid of the process listening on ``address`` (IPv4), if this user can see it."""
    inodes = {f"socket:[{inode}]" for inode in _listening_inodes(address)}
    if not inodes:
        return None
    for proc in PROC.iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(proc.name)
    return None


def local_cluster_pids() -> dict[str, int]:
    """address -> pid of every running node of the current local cluster (pid files)."""
    from ringctl.cluster import layout, manager

    try:
        name = layout.read_current()
        if name is None:
            return {}
        spec = layout.load(name)
        return {
            node.address: pid
            for node in spec.nodes
            if (pid := manager.node_process(spec, node, clean=False).pid) is not None
        }
    except (layout.LayoutError, OSError, ValueError):
        return {}


def node_pids(addresses: list[str]) -> dict[str, int] | None:
    """The pid of every address, or None if any cannot be found."""
    known = local_cluster_pids()
    pids = {}
    for address in addresses:
        pid = known.get(address) or listener_pid(address)
        if pid is None:
            return None
        pids[address] = pid
    return pids


class ClusterCpu:
    """CPU seconds the given node processes spent between ``start`` and ``stop``."""

    def __init__(self, pids: dict[str, int] | None) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}
        self.spent: dict[str, float] | None = None

    def start(self) -> None:
        if self.pids is None:
            return
        for address, pid in self.pids.items():
            seconds = process_cpu_seconds(pid)
            if seconds is None:
                self.pids = None
                return
            self._start[address] = seconds

    def stop(self) -> None:
        if self.pids is None:
            return
        spent = {}
        for address, pid in self.pids.items():
            seconds = process_cpu_seconds(pid)
            if seconds is None:  # the node exited during the run
                return
            spent[address] = round(seconds - self._start[address], 3)
        self.spent = spent
