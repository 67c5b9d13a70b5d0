"""Node configuration: one table of settings, read from a TOML file and command-line flags.

Every setting is a flag (``--data-dir``) and a TOML key (``data_dir``); flags win over the file,
the file over defaults. ``load`` validates everything once, at start, and raises ``ConfigError``
with a one-line reason.
"""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from ringd.net.address import split_address

DEFAULT_PORT = 7400
SYNC_MODES = ("periodic", "batch", "group")
DISK_FAILURE_POLICIES = ("stop_writes", "die")


class ConfigError(Exception):
    """A configuration that cannot work; the message says which setting and why."""


def _default_data_dir() -> str:
    return str(Path(platformdirs.user_data_dir("ringd")) / "node")


@dataclass
class Config:
    listen: str = field(
        default=f"127.0.0.1:{DEFAULT_PORT}", metadata={"help": "HOST:PORT to serve"}
    )
    data_dir: str = field(default_factory=_default_data_dir, metadata={"help": "data directory"})
    cluster_name: str = field(
        default="ringd", metadata={"help": "nodes only join a cluster of the same name"}
    )
    seeds: list[str] = field(default_factory=list, metadata={"help": "HOST:PORT,... of seed nodes"})
    dc: str = field(default="dc1", metadata={"help": "datacenter of this node"})
    rack: str = field(default="rack1", metadata={"help": "rack of this node"})
    num_tokens: int = field(default=16, metadata={"help": "virtual nodes (tokens) of this node"})
    commitlog_sync: str = field(default="periodic", metadata={"help": "periodic, batch or group"})
    commitlog_sync_period_ms: int = field(
        default=1000, metadata={"help": "periodic: fsync interval"}
    )
    commitlog_group_window_ms: float = field(default=2.0, metadata={"help": "group: fsync window"})
    memtable_flush_mb: int = field(
        default=64, metadata={"help": "flush a keyspace's memtable at this size"}
    )
    disk_failure_policy: str = field(
        default="stop_writes",
        metadata={"help": "on a disk failure (full, I/O error): stop_writes or die"},
    )
    max_connections: int = field(
        default=1024, metadata={"help": "connections held at once (clients and peers)"}
    )
    max_frame_bytes: int = field(
        default=16 * 1024 * 1024, metadata={"help": "largest frame accepted"}
    )
    gossip_interval_ms: int = field(default=250, metadata={"help": "time between gossip rounds"})
    phi_threshold: float = field(default=8.0, metadata={"help": "phi above which a node is down"})
    write_timeout_ms: int = field(
        default=2000, metadata={"help": "coordinator wait for write acks"}
    )
    read_timeout_ms: int = field(
        default=5000, metadata={"help": "coordinator wait for read replies"}
    )
    drain_timeout_s: float = field(
        default=10.0, metadata={"help": "on SIGTERM, wait this long for requests in flight"}
    )
    enable_test_hooks: bool = field(
        default=False, metadata={"help": "allow fault injection (tests only)"}
    )
    clock_offset_ms: int = field(
        default=0, metadata={"help": "shift this node's wall clock (tests only)"}
    )
    log_level: str = field(default="info", metadata={"help": "debug, info, warning or error"})

    @property
    def host(self) -> str:
        return split_address(self.listen)[0]

    @property
    def port(self) -> int:
        return split_address(self.listen)[1]

    def validate(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"{name.replace('_', '-')}: {why}")

        for name in ("listen",):
            try:
                split_address(getattr(self, name))
            except ValueError as exc:
                raise bad(name, str(exc)) from None
        for seed in self.seeds:
            try:
                split_address(seed, DEFAULT_PORT)
            except ValueError as exc:
                raise bad("seeds", str(exc)) from None
        if self.commitlog_sync not in SYNC_MODES:
            raise bad(
                "commitlog_sync",
                f"must be one of {', '.join(SYNC_MODES)}, not {self.commitlog_sync!r}",
            )
        if not 1 <= self.num_tokens <= 1024:
            raise bad("num_tokens", "must be between 1 and 1024")
        for name in (
            "commitlog_sync_period_ms",
            "gossip_interval_ms",
            "write_timeout_ms",
            "read_timeout_ms",
        ):
            if getattr(self, name) <= 0:
                raise bad(name, "must be positive")
        if self.commitlog_group_window_ms < 0 or self.drain_timeout_s < 0:
            raise bad("commitlog_group_window_ms", "must not be negative")
        if not 1 <= self.memtable_flush_mb <= 64 * 1024:
            raise bad("memtable_flush_mb", "must be between 1 and 65536")
        if self.disk_failure_policy not in DISK_FAILURE_POLICIES:
            raise bad(
                "disk_failure_policy",
                f"must be one of {', '.join(DISK_FAILURE_POLICIES)}, "
                f"not {self.disk_failure_policy!r}",
            )
        if not 1 <= self.max_connections <= 1_000_000:
            raise bad("max_connections", "must be between 1 and 1000000")
        if not 64 * 1024 <= self.max_frame_bytes <= 1 << 30:
            raise bad("max_frame_bytes", "must be between 65536 and 1073741824")
        if self.phi_threshold <= 0:
            raise bad("phi_threshold", "must be positive")
        if not self.cluster_name or not self.dc or not self.rack:
            raise bad("cluster_name", "cluster name, dc and rack must not be empty")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise bad("log_level", "must be debug, info, warning or error")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ringd",
        description="ringd: one node of a leaderless, replicated key-value store.",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--config", metavar="FILE", help="TOML file whose keys mirror these flags")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    for f in fields(Config):
        help_text = f.metadata.get("help", "")
        if f.type in ("bool", bool):
            parser.add_argument(_flag(f.name), action="store_true", help=help_text)
        else:
            parser.add_argument(_flag(f.name), metavar=f.name.upper(), help=help_text)
    return parser


def _coerce(name: str, kind: Any, value: Any) -> Any:
    kind = str(kind)
    try:
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            raise ValueError
        if kind == "list[str]":
            if isinstance(value, str):
                return [s.strip() for s in value.split(",") if s.strip()]
            if isinstance(value, list) and all(isinstance(s, str) for s in value):
                return list(value)
            raise ValueError
        if kind == "str":
            if not isinstance(value, str):
                raise ValueError
            return value
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{name.replace('_', '-')}: {value!r} is not a valid {kind}")


def load(argv: list[str] | None = None) -> Config:
    """Parse flags (and the TOML file they name) into a validated ``Config``."""
    ns = vars(argument_parser().parse_args(argv))
    values: dict[str, Any] = {}
    if "config" in ns:
        path = Path(ns.pop("config"))
        try:
            raw = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"config: cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config: {path} is not valid TOML: {exc}") from None
        known = {f.name for f in fields(Config)}
        for key, value in raw.items():
            name = key.replace("-", "_")
            if name not in known:
                raise ConfigError(f"config: unknown setting {key!r} in {path}")
            values[name] = value
    ns.pop("version", None)
    values.update(ns)
    types = {f.name: f.type for f in fields(Config)}
    config = Config(**{k: _coerce(k, types[k], v) for k, v in values.items()})
    config.validate()
    return config
