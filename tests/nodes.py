"""Real ringd processes for integration tests: free ports, temporary data dirs, clean shutdown.

Every process started here is stopped (SIGTERM, then SIGKILL) by the fixture that made it, also
when the test fails. Waiting is polling with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ringctl.client import Client, ConnectError
from ringd.auth.peer import generate_secret_file
from ringd.config import DEFAULT_PORT


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host``, never ringd's default port (the user's cluster may want it)."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port != DEFAULT_PORT:
            return port


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    delay = 0.01
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the condition may fail while things settle
            last_exc = exc
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last_exc!r}")


class Ringd:
    """One ringd process."""

    def __init__(
        self, data_dir: Path, host: str = "127.0.0.1", port: int | None = None, **flags: Any
    ):
        self.host = host
        self.port = port or free_port(host)
        assert self.port != DEFAULT_PORT, "tests never use the default port"
        self.data_dir = data_dir
        # every node of a test shares one cluster secret (peers authenticate, as in production);
        # clients log in only where a test asks for authenticator="password"
        if "cluster_secret_file" not in flags:
            secret = data_dir.parent / "cluster.secret"
            if not secret.exists():
                data_dir.parent.mkdir(parents=True, exist_ok=True)
                generate_secret_file(secret)
            flags["cluster_secret_file"] = secret
        flags.setdefault("authenticator", "none")
        # the replica lag probe's canaries (every 10 s by default) would add mutations to tests
        # that count messages exactly; tests of the probe turn it on
        flags.setdefault("replica_lag_probe_interval_s", 0)
        self.flags = flags
        #: run in the child before ringd starts (e.g. to lower a resource limit)
        self.preexec_fn: Callable[[], None] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}.log"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def argv(self) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "ringd.main",
            "--listen",
            self.address,
            "--data-dir",
            str(self.data_dir),
        ]
        for name, value in self.flags.items():
            flag = "--" + name.replace("_", "-")
            if value is True:
                argv.append(flag)
            elif value is not None and value is not False:
                argv += [flag, ",".join(value) if isinstance(value, list) else str(value)]
        return argv

    def start(self, wait: bool = True) -> Ringd:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            self.argv(),
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            preexec_fn=self.preexec_fn,  # noqa: PLW1509 - only sets a resource limit
        )
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"ringd exited with {self.proc.returncode}:\n{self.log()}")
            with Client(self.address, timeout=2) as db:
                db.ping()
            return True

        try:
            wait_for(ready, timeout, f"ringd on {self.address}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- log ---\n{self.log()}") from None

    def client(self, **kwargs: Any) -> Client:
        return Client(self.address, **kwargs)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait (SIGKILL if it does not exit in time); the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"ringd on {self.address} did not stop on SIGTERM") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def connect_raw(address: str, timeout: float = 5.0) -> socket.socket:
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    return sock


def still_serving(address: str) -> bool:
    try:
        with Client(address, timeout=5) as db:
            return bool(db.ping())
    except ConnectError:
        return False


def statuses(node: Ringd) -> dict[str, str]:
    """address -> UP/DOWN as ``node`` sees the cluster."""
    with Client(node.address, timeout=5) as db:
        return {n["address"]: n["status"] for n in db.admin("status")["nodes"]}


def wait_all_up(nodes: list[Ringd], timeout: float = 30.0) -> None:
    want = {n.address: "UP" for n in nodes}

    def up() -> bool:
        return all(statuses(n) == want for n in nodes if n.running)

    wait_for(up, timeout, f"all of {sorted(want)} to see each other UP")


def wait_status(observer: Ringd, address: str, status: str, timeout: float = 30.0) -> float:
    """Wait until ``observer`` reports ``address`` as ``status``; the seconds it took."""
    start = time.monotonic()
    wait_for(
        lambda: statuses(observer).get(address) == status,
        timeout,
        f"{observer.address} to see {address} {status}",
    )
    return time.monotonic() - start


def create_keyspace(
    nodes: list[Ringd],
    name: str,
    replication: dict[str, Any] | int = 3,
    *,
    via: Ringd | None = None,
    timeout: float = 10.0,
    **options: Any,
) -> None:
    """Create keyspace ``name`` through ``via`` (default: the first node) with ``replication``
    (a strategy map, or a SimpleStrategy replication factor) and wait until every running node
    of ``nodes`` lists it."""
    if isinstance(replication, int):
        replication = {"class": "SimpleStrategy", "replication_factor": replication}
    with (via or nodes[0]).client() as db:
        db.keyspace_create(name, replication=replication, **options)

    def everywhere() -> bool:
        for n in nodes:
            if n.running:
                with n.client() as db:
                    if name not in [k["name"] for k in db.keyspace_list()["keyspaces"]]:
                        return False
        return True

    wait_for(everywhere, timeout, f"keyspace {name} on every node")


def run_ringctl(
    *args: str, host: str | None = None, home: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ringctl ARGS`` with its output captured and stdin closed: RINGCTL_HOST is
    ``host`` (unset for None), RINGCTL_HOME is ``home`` when given (else the test run's)."""
    env = {k: v for k, v in os.environ.items() if k != "RINGCTL_HOST"}
    if host is not None:
        env["RINGCTL_HOST"] = host
    if home is not None:
        env["RINGCTL_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "ringctl", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def ringctl(node: Ringd, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ringctl ARGS`` against ``node`` (RINGCTL_HOST), capturing its output."""
    return run_ringctl(*args, host=node.address)
