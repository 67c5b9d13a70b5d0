"""Helpers for the ``ringctl cluster`` tests: ringctl as a subprocess with a private
RINGCTL_HOME, a port free on every node's address, and a clean-up that stops every process the
tests started."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from nodes import free_port

from ringctl.cluster.manager import is_node_process, read_pid


class Ringctl:
    """Runs ``ringctl`` in a subprocess with RINGCTL_HOME pointing at a test directory."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "RINGCTL_HOME": str(home)}
        self.env.pop("RINGCTL_HOST", None)

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ringctl", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def ok(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done = self(*args, timeout=timeout)
        assert done.returncode == 0, (
            f"ringctl {' '.join(args)} exited {done.returncode}\n"
            f"stdout: {done.stdout}\nstderr: {done.stderr}\n{self.logs()}"
        )
        return done

    def json(self, *args: str, timeout: float = 120) -> Any:
        return json.loads(self.ok(*args, "--json", timeout=timeout).stdout)

    def logs(self) -> str:
        """The end of every node log, to explain a failure."""
        parts = []
        for log in sorted(self.home.glob("clusters/*/node*/ringd.log")):
            lines = log.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {log}\n" + "\n".join(lines))
        return "\n".join(parts)

    def cleanup(self) -> None:
        """Stop every node under this home: ``cluster stop --kill`` for each cluster, then
        SIGKILL any pid file's process that is still that node's ringd. Then fail if a cluster
        was made on the default port: a test must never compete with the user's cluster."""
        specs = list(self.home.glob("clusters/*/cluster.json"))
        for spec in specs:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self("cluster", "stop", "--kill", "--name", spec.parent.name, timeout=60)
        for pid_file in self.home.glob("clusters/*/node*/ringd.pid"):
            pid = read_pid(pid_file)
            if pid is not None and is_node_process(pid, pid_file.parent / "data"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        on_default = [p.parent.name for p in specs if json.loads(p.read_text()).get("port") == 7400]
        assert not on_default, f"test cluster(s) {on_default} use the default port 7400"


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def cluster_port(nodes: int, *, avoid: tuple[int, ...] = ()) -> int:
    """A port other than 7400 that is free on 127.0.0.1 .. 127.0.0.<nodes>."""
    for _ in range(50):
        port = free_port()
        if port in avoid:
            continue
        if all(_bindable(f"127.0.0.{i}", port) for i in range(1, nodes + 1)):
            return port
    raise RuntimeError("no port free on every loopback address")


def ringd_processes(home: Path) -> list[int]:
    """Pids of every ringd whose command line names a path under ``home``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "ringd.main" in args and any(a.startswith(str(home)) for a in args):
            pids.append(int(proc.name))
    return pids
