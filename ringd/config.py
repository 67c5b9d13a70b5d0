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
    metrics_listen: str = field(
        default="", metadata={"help": "HOST:PORT serving Prometheus metrics (empty: off)"}
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
        default=1024,
        metadata={"help": "client connections held at once (peers and admins: also reserved)"},
    )
    reserved_connections: int = field(
        default=16,
        metadata={"help": "connections beyond max_connections that only peers and admins get"},
    )
    client_idle_timeout_s: float = field(
        default=300.0,
        metadata={"help": "close a client connection with no request for this long (0: never)"},
    )
    frame_timeout_s: float = field(
        default=30.0,
        metadata={"help": "close a connection whose started frame gets no bytes for this long"},
    )
    max_unfinished_frame_bytes: int = field(
        default=64 * 1024 * 1024,
        metadata={"help": "bytes all connections may hold in unfinished frames; more: OVERLOADED"},
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
    gossip_settle_s: float = field(
        default=5.0,
        metadata={"help": "at start, wait this long at most for gossip to settle (0: do not)"},
    )
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
    max_clock_offset_ms: int = field(
        default=500,
        metadata={
            "help": "refuse to coordinate writes while this node's clock is further than this "
            "off the cluster's (0: never)"
        },
    )
    anti_entropy: bool = field(
        default=False,
        metadata={"help": "repair this node's primary ranges in the background (docs/repair.md)"},
    )
    anti_entropy_interval_s: float = field(
        default=86400.0,
        metadata={"help": "anti-entropy: repair every range at least once per this many seconds"},
    )
    anti_entropy_mb_per_s: float = field(
        default=4.0, metadata={"help": "anti-entropy: validation I/O budget"}
    )
    replica_lag_probe_interval_s: float = field(
        default=10.0,
        metadata={
            "help": "write a canary to every node this often and measure replica lag (0: off)"
        },
    )
    stream_throughput_mb_per_s: float = field(
        default=24.0,
        metadata={"help": "streaming (bootstrap, decommission...): MiB/s received, 0: no limit"},
    )
    auto_bootstrap: bool = field(
        default=True,
        metadata={"help": "a new node joining a cluster streams its ranges before serving"},
    )
    allow_inconsistent_bootstrap: bool = field(
        default=False,
        metadata={"help": "bootstrap from another replica when the one losing a range is down"},
    )
    replace: str = field(
        default="",
        metadata={"help": "HOST:PORT of a dead node whose tokens this new node takes over"},
    )
    accept_stale_data: bool = field(
        default=False,
        metadata={"help": "start even if out of touch with the cluster for longer than gc_grace"},
    )
    log_level: str = field(default="info", metadata={"help": "debug, info, warning or error"})
    hinted_handoff_enabled: bool = field(
        default=True, metadata={"help": "keep hints for replicas that miss writes"}
    )
    hinted_handoff_disabled_datacenters: list[str] = field(
        default_factory=list, metadata={"help": "DC,... whose replicas get no hints"}
    )
    max_hint_window_ms: int = field(
        default=3 * 3600 * 1000,
        metadata={"help": "no new hints for a node that has been down longer than this"},
    )
    max_hints_size_per_host_mb: int = field(
        default=128, metadata={"help": "hints kept for one node at most; more are dropped"}
    )
    hinted_handoff_throttle_kb: int = field(
        default=1024,
        metadata={"help": "hint delivery KiB/s, shared among the other nodes; 0 = unthrottled"},
    )
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
    tls_cert_file: str = field(
        default="", metadata={"help": "this node's TLS certificate (PEM); empty: no TLS"}
    )
    tls_key_file: str = field(default="", metadata={"help": "the key of tls_cert_file (PEM)"})
    tls_ca_file: str = field(
        default="", metadata={"help": "CA certificates to verify peers with (PEM)"}
    )
    client_tls: str = field(
        default="off", metadata={"help": "clients: off, optional or required (TLS)"}
    )
    internode_tls: str = field(
        default="off",
        metadata={"help": "peers: off (plaintext), optional (connect with TLS) or required"},
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
        if self.metrics_listen:
            try:
                split_address(self.metrics_listen)
            except ValueError as exc:
                raise bad("metrics_listen", str(exc)) from None
            if self.metrics_listen == self.listen:
                raise bad("metrics_listen", "must differ from listen")
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
            ("reserved_connections", 0, 100_000),
            ("max_unfinished_frame_bytes", 64 * 1024, 1 << 40),
            ("max_frame_bytes", 64 * 1024, 1 << 30),
            ("clock_offset_ms", -MAX_CLOCK_OFFSET_MS, MAX_CLOCK_OFFSET_MS),
            ("max_hint_window_ms", 0, 30 * 86400 * 1000),
            ("max_hints_size_per_host_mb", 1, 1024 * 1024),
            ("hinted_handoff_throttle_kb", 0, 1024 * 1024),
            ("max_clock_offset_ms", 0, 3_600_000),
            ("max_future_timestamp_ms", 1000, 86_400_000),
        ):
            if not low <= getattr(self, name) <= high:
                raise bad(name, f"must be between {low} and {high}")
        if not 0 <= self.commitlog_group_window_ms <= 1000:
            raise bad("commitlog_group_window_ms", "must be between 0 and 1000")
        if not 0 <= self.client_idle_timeout_s <= 86400:
            raise bad("client_idle_timeout_s", "must be between 0 and 86400")
        if not 0.1 <= self.frame_timeout_s <= 3600:
            raise bad("frame_timeout_s", "must be between 0.1 and 3600")
        if self.max_unfinished_frame_bytes < self.max_frame_bytes:
            raise bad("max_unfinished_frame_bytes", "must be at least max_frame_bytes")
        if not 0 <= self.drain_timeout_s <= 3600:
            raise bad("drain_timeout_s", "must be between 0 and 3600")
        if not 0 <= self.gossip_settle_s <= 600:
            raise bad("gossip_settle_s", "must be between 0 and 600")
        if not 1 <= self.anti_entropy_interval_s <= 365 * 86400:
            raise bad("anti_entropy_interval_s", "must be between 1 and 31536000")
        if not 0 <= self.replica_lag_probe_interval_s <= 86400:
            raise bad("replica_lag_probe_interval_s", "must be between 0 (off) and 86400")
        if not 0 < self.anti_entropy_mb_per_s <= 100_000:
            raise bad("anti_entropy_mb_per_s", "must be positive and at most 100000")
        if self.replace:
            try:
                split_address(self.replace)
            except ValueError as exc:
                raise bad("replace", str(exc)) from None
        if not 0 <= self.stream_throughput_mb_per_s <= 100_000:
            raise bad("stream_throughput_mb_per_s", "must be between 0 and 100000")
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
        for name in ("client_tls", "internode_tls"):
            if getattr(self, name) not in ("off", "optional", "required"):
                raise bad(name, f"must be off, optional or required, not {getattr(self, name)!r}")
        wants_tls = self.client_tls != "off" or self.internode_tls != "off"
        if wants_tls and not (self.tls_cert_file and self.tls_key_file):
            raise bad(
                "tls_cert_file", "client_tls or internode_tls needs tls_cert_file and tls_key_file"
            )
        if self.internode_tls != "off" and not self.tls_ca_file:
            raise bad("tls_ca_file", "internode_tls needs tls_ca_file to verify peers with")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise bad("tls_key_file", "give both tls_cert_file and tls_key_file, or neither")
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
        if f.type in ("bool", bool) and f.default is True:
            parser.add_argument(
                _flag(f.name), action=argparse.BooleanOptionalAction, help=help_text
            )
        elif f.type in ("bool", bool):
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
