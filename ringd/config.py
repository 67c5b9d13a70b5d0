"""Node configuration: one table of settings, read from a TOML file and command-line flags.

Every setting is a flag (``--data-dir``) and a TOML key (``data_dir``); flags win over the file,
the file over defaults. ``load`` validates everything once, at start, and raises ``ConfigError``
with a one-line reason.
"""

from __future__ import annotations

import argparse
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn

import platformdirs

from ringd.net.address import split_address

DEFAULT_PORT = 7400
SYNC_MODES = ("periodic", "batch", "group")
MAX_CLOCK_OFFSET_MS = 10 * 365 * 86400 * 1000
DISK_FAILURE_POLICIES = ("stop_writes", "die")
AUTHENTICATORS = ("password", "none")


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
    max_row_bytes: int = field(
        default=8 * 1024 * 1024,
        metadata={"help": "largest row (encoded) a write may make; larger writes are INVALID"},
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
    max_future_timestamp_ms: int = field(
        default=60_000,
        metadata={"help": "writes with a timestamp further ahead of this node's clock are INVALID"},
    )
    cluster_secret_file: str = field(
        default="",
        metadata={
            "help": "file with the cluster secret peers prove (empty: peers unauthenticated)"
        },
    )
    authenticator: str = field(
        default="password", metadata={"help": "client logins: password (roles) or none"}
    )
    initial_admin_password_file: str = field(
        default="",
        metadata={"help": "first start with no roles: create role admin with this file's password"},
    )

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
        for name, low, high in (
            ("commitlog_sync_period_ms", 1, 3_600_000),
            ("gossip_interval_ms", 1, 60_000),
            ("write_timeout_ms", 1, 3_600_000),
            ("read_timeout_ms", 1, 3_600_000),
            ("memtable_flush_mb", 1, 64 * 1024),
            ("max_connections", 1, 1_000_000),
            ("max_frame_bytes", 64 * 1024, 1 << 30),
            ("clock_offset_ms", -MAX_CLOCK_OFFSET_MS, MAX_CLOCK_OFFSET_MS),
            ("max_future_timestamp_ms", 1000, 86_400_000),
        ):
            if not low <= getattr(self, name) <= high:
                raise bad(name, f"must be between {low} and {high}")
        if not 0 <= self.commitlog_group_window_ms <= 1000:
            raise bad("commitlog_group_window_ms", "must be between 0 and 1000")
        if not 0 <= self.drain_timeout_s <= 3600:
            raise bad("drain_timeout_s", "must be between 0 and 3600")
        if not 0 < self.phi_threshold <= 1000:
            raise bad("phi_threshold", "must be positive and at most 1000")
        row_high = self.max_frame_bytes // 2
        if not 1024 <= self.max_row_bytes <= row_high:
            raise bad(
                "max_row_bytes",
                f"must be between 1024 and half of max-frame-bytes ({row_high})",
            )
        for name in ("cluster_name", "dc", "rack"):
            if not getattr(self, name):
                raise bad(name, "must not be empty")
        if self.disk_failure_policy not in DISK_FAILURE_POLICIES:
            raise bad(
                "disk_failure_policy",
                f"must be one of {', '.join(DISK_FAILURE_POLICIES)}, "
                f"not {self.disk_failure_policy!r}",
            )
        if self.authenticator not in AUTHENTICATORS:
            raise bad("authenticator", f"must be password or none, not {self.authenticator!r}")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise bad("log_level", "must be debug, info, warning or error")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``ConfigError``) instead of usage and exit."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def argument_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                return int(value)
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not math.isfinite(number):
                raise ConfigError(f"{name.replace('_', '-')}: {value!r} is not a finite number")
            return number
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
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"config: cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"config: {path} is not UTF-8 text (byte {exc.start}); TOML files must be UTF-8"
            ) from None
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
