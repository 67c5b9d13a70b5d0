"""On-disk layout of local clusters, and what a cluster is (``ClusterSpec``).

    ROOT/                         $RINGCTL_HOME, else platformdirs.user_data_dir("ringctl")
      current                     the name of the current cluster, one line
      clusters/NAME/
        cluster.json              the ClusterSpec: nodes with dc, rack and address, options
        cluster.secret            the cluster secret peers prove (mode 0600)
        admin.password            the password of role admin, for ringctl (mode 0600)
        nodeN/
          ringd.toml              the node's configuration (written by the manager, editable)
          data/                   the node's data directory
          ringd.pid               pid of the running node (absent when stopped)
          ringd.log               stdout and stderr of every run, appended

Node N listens on ``127.0.0.N`` at the cluster's port, as ccm does (Linux routes all of
127.0.0.0/8 to loopback); with ``single_address`` every node uses 127.0.0.1 and node N the port
``port + N - 1``. Nothing here starts processes or talks to the network.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from ringd.config import DEFAULT_PORT, Config

HOME_ENV = "RINGCTL_HOME"
SPEC_FILE = "cluster.json"
CURRENT_FILE = "current"
DEFAULT_CLUSTER = "local"
DEFAULT_NODES = "3"
MAX_NODES = 254
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

# ringd settings the manager decides itself; --conf may not change them
MANAGED_SETTINGS = frozenset(
    {
        "listen",
        "data_dir",
        "cluster_name",
        "seeds",
        "dc",
        "rack",
        "num_tokens",
        "enable_test_hooks",
        "cluster_secret_file",
        "initial_admin_password_file",
    }
)
SECRET_FILE = "cluster.secret"
ADMIN_PASSWORD_FILE = "admin.password"
ADMIN_USER = "admin"
TLS_DIR = "tls"  # in the cluster's directory, when made with --tls: the CA and node certificates


class LayoutError(Exception):
    """A cluster description that cannot work (bad name, node counts, ports, settings)."""


def home() -> Path:
    """The root directory: ``$RINGCTL_HOME`` if set, else the platform's user data dir."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("ringctl"))


def clusters_dir() -> Path:
    return home() / "clusters"


def cluster_dir(name: str) -> Path:
    return clusters_dir() / name


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise LayoutError(
            f"cluster name {name!r} is not valid: use up to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def exists(name: str) -> bool:
    return (cluster_dir(name) / SPEC_FILE).is_file()


def names() -> list[str]:
    """Every cluster on disk, sorted."""
    root = clusters_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / SPEC_FILE).is_file())


def read_current() -> str | None:
    """The current cluster's name, if one is set and still exists."""
    try:
        name = (home() / CURRENT_FILE).read_text().strip()
    except OSError:
        return None
    if not name or not NAME_RE.match(name) or not exists(name):
        return None
    return name


def write_current(name: str) -> None:
    root = home()
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{CURRENT_FILE}.tmp"
    tmp.write_text(name + "\n")
    os.replace(tmp, root / CURRENT_FILE)


def clear_current() -> None:
    try:
        (home() / CURRENT_FILE).unlink()
    except FileNotFoundError:
        pass


@dataclass(frozen=True)
class NodeSpec:
    """One node of a cluster: its number (1-based), place and address."""

    number: int
    dc: str
    rack: str
    host: str
    port: int
    added: bool = False  # joined an existing cluster ('cluster add'): never a seed

    @property
    def name(self) -> str:
        return f"node{self.number}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class NodePaths:
    """Where one node's files are."""

    dir: Path

    @property
    def config(self) -> Path:
        return self.dir / "ringd.toml"

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def pid(self) -> Path:
        return self.dir / "ringd.pid"

    @property
    def log(self) -> Path:
        return self.dir / "ringd.log"


@dataclass
class ClusterSpec:
    """A cluster as created: its name, nodes and options. Stored as ``cluster.json``."""

    name: str
    nodes: list[NodeSpec]
    num_tokens: int = 16
    port: int = DEFAULT_PORT
    single_address: bool = False
    settings: dict[str, Any] = field(default_factory=dict)  # extra ringd settings (--conf)

    @property
    def dir(self) -> Path:
        return cluster_dir(self.name)

    @property
    def datacenters(self) -> list[str]:
        seen: list[str] = []
        for n in self.nodes:
            if n.dc not in seen:
                seen.append(n.dc)
        return seen

    @property
    def counts(self) -> list[int]:
        return [sum(1 for n in self.nodes if n.dc == dc) for dc in self.datacenters]

    @property
    def seeds(self) -> list[str]:
        """The first node of each datacenter the cluster was created with (a node added later
        bootstraps, which a seed never does)."""
        first: dict[str, str] = {}
        for n in self.nodes:
            if not n.added:
                first.setdefault(n.dc, n.address)
        return list(first.values())

    def add_node(self, dc: str | None) -> NodeSpec:
        """A new node after the last one, in ``dc`` (default: the first datacenter)."""
        if len(self.nodes) >= MAX_NODES:
            raise LayoutError(f"cluster {self.name!r} already has {MAX_NODES} nodes")
        if dc is not None and not NAME_RE.match(dc):
            raise LayoutError(f"--dc {dc!r}: letters, digits, '_', '.' and '-' only")
        number = max(n.number for n in self.nodes) + 1
        if self.single_address:
            host, port = "127.0.0.1", self.port + number - 1
            if port > 65535:
                raise LayoutError(f"node{number} would need port {port}, beyond 65535")
        else:
            host, port = f"127.0.0.{number}", self.port
        node = NodeSpec(number, dc or self.datacenters[0], "rack1", host, port, added=True)
        self.nodes.append(node)
        return node

    def node(self, number: int) -> NodeSpec:
        for n in self.nodes:
            if n.number == number:
                return n
        raise LayoutError(
            f"cluster {self.name!r} has no node {number} (it has nodes 1-{len(self.nodes)})"
        )

    def paths(self, node: NodeSpec | int) -> NodePaths:
        number = node if isinstance(node, int) else node.number
        return NodePaths(self.dir / f"node{number}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["nodes"] = [asdict(n) for n in self.nodes]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterSpec:
        nodes = [NodeSpec(**n) for n in data["nodes"]]
        known = {f.name for f in fields(cls)} - {"nodes"}
        return cls(nodes=nodes, **{k: v for k, v in data.items() if k in known})

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / SPEC_FILE
        tmp = self.dir / f".{SPEC_FILE}.tmp"
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        os.replace(tmp, path)


def load(name: str) -> ClusterSpec:
    """The spec of an existing cluster; ``LayoutError`` if there is none or it is unreadable."""
    path = cluster_dir(name) / SPEC_FILE
    try:
        data = json.loads(path.read_text())
        return ClusterSpec.from_json(data)
    except FileNotFoundError:
        raise LayoutError(f"no cluster named {name!r} under {clusters_dir()}") from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise LayoutError(f"cannot read {path}: {exc}") from None


def parse_counts(text: str) -> list[int]:
    """``3`` is one datacenter of 3 nodes; ``2:2`` two datacenters (dc1, dc2) of 2 each."""
    parts = text.strip().split(":")
    try:
        counts = [int(p) for p in parts]
    except ValueError:
        raise LayoutError(
            f"-n {text!r}: expected a node count, or counts per datacenter such as 2:2"
        ) from None
    if any(c < 1 for c in counts):
        raise LayoutError(f"-n {text!r}: every datacenter needs at least one node")
    if sum(counts) > MAX_NODES:
        raise LayoutError(f"-n {text!r}: at most {MAX_NODES} nodes")
    return counts


def plan(
    name: str,
    counts: list[int],
    *,
    port: int = DEFAULT_PORT,
    single_address: bool = False,
    num_tokens: int = 16,
    settings: dict[str, Any] | None = None,
) -> ClusterSpec:
    """The spec of a new cluster: node numbers, datacenters and addresses."""
    check_name(name)
    total = sum(counts)
    if not 1 <= total <= MAX_NODES:
        raise LayoutError(f"a cluster has 1 to {MAX_NODES} nodes, not {total}")
    last_port = port + total - 1 if single_address else port
    if port < 1 or last_port > 65535:
        raise LayoutError(f"--port {port}: the nodes' ports must lie within 1-65535")
    if not 1 <= num_tokens <= 1024:
        raise LayoutError(f"--num-tokens {num_tokens}: must be between 1 and 1024")
    nodes = []
    number = 0
    for dc_index, count in enumerate(counts, 1):
        for _ in range(count):
            number += 1
            host = "127.0.0.1" if single_address else f"127.0.0.{number}"
            node_port = port + number - 1 if single_address else port
            nodes.append(NodeSpec(number, f"dc{dc_index}", "rack1", host, node_port))
    spec = ClusterSpec(name, nodes, num_tokens, port, single_address, dict(settings or {}))
    check_settings(spec.settings)
    return spec


def parse_settings(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` ringd settings (``--conf``); values are TOML-ish: numbers, true/false, text."""
    settings: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise LayoutError(f"--conf {item!r}: expected KEY=VALUE, e.g. gossip_interval_ms=100")
        settings[key] = _setting_value(raw.strip())
    check_settings(settings)
    return settings


def _setting_value(raw: str) -> Any:
    if raw in ("true", "false"):
        return raw == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def check_settings(settings: dict[str, Any]) -> None:
    known = {f.name: f for f in fields(Config)}
    for key, value in settings.items():
        if key in MANAGED_SETTINGS:
            raise LayoutError(f"--conf {key}: the cluster manager sets this one itself")
        f = known.get(key)
        if f is None:
            raise LayoutError(f"--conf {key}: not a ringd setting (see 'ringd --help')")
        kind = str(f.type)
        ok = {
            "int": type(value) is int,
            "float": type(value) in (int, float),
            "bool": type(value) is bool,
            "str": isinstance(value, str),
        }.get(kind, False)
        if not ok:
            raise LayoutError(f"--conf {key}={value!r}: expected a {kind}")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


LOCAL_ANTI_ENTROPY_INTERVAL_S = 600


def node_settings(spec: ClusterSpec, node: NodeSpec) -> dict[str, Any]:
    """Every setting of one node's config file, in the order it is written."""
    paths = spec.paths(node)
    return {
        "listen": node.address,
        "data_dir": str(paths.data),
        "cluster_name": spec.name,
        "seeds": spec.seeds,
        "dc": node.dc,
        "rack": node.rack,
        "num_tokens": spec.num_tokens,
        "enable_test_hooks": True,
        # background repair, on a laptop's time scale (--conf overrides; docs/repair.md)
        "anti_entropy": True,
        "anti_entropy_interval_s": LOCAL_ANTI_ENTROPY_INTERVAL_S,
        **_auth_settings(spec.dir),
        **_tls_settings(spec.dir, node.host),
        **spec.settings,
    }


def _auth_settings(directory: Path) -> dict[str, str]:
    """The secret and initial admin password files, when the cluster has them (created before
    authentication existed, it has neither)."""
    found = {}
    for key, name in (
        ("cluster_secret_file", SECRET_FILE),
        ("initial_admin_password_file", ADMIN_PASSWORD_FILE),
    ):
        if (directory / name).exists():
            found[key] = str(directory / name)
    return found


def _tls_settings(directory: Path, host: str) -> dict[str, str]:
    """TLS required on both sides, when the cluster was made with ``--tls``."""
    tls = directory / TLS_DIR
    if not (tls / "ca.pem").exists():
        return {}
    return {
        "tls_cert_file": str(tls / f"node-{host}.pem"),
        "tls_key_file": str(tls / f"node-{host}-key.pem"),
        "tls_ca_file": str(tls / "ca.pem"),
        "client_tls": "required",
        "internode_tls": "required",
    }


def write_tls_files(directory: Path, hosts: list[str]) -> None:
    """A local CA and a certificate per host, for a cluster made with ``--tls``."""
    from ringd.auth.tls import make_local_ca

    make_local_ca(directory / TLS_DIR, sorted(set(hosts)))


def write_auth_files(directory: Path) -> None:
    """A new cluster's secret and admin password (random, mode 0600)."""
    from ringd.auth.peer import generate_secret_file
    from ringd.fsutil import atomic_write

    directory.mkdir(parents=True, exist_ok=True)
    generate_secret_file(directory / SECRET_FILE)
    password = secrets.token_urlsafe(24) + "\n"
    atomic_write(directory / ADMIN_PASSWORD_FILE, password.encode(), mode=0o600)


def admin_credentials(name: str) -> dict[str, str] | None:
    """The admin credentials ``ringctl cluster create`` stored for cluster ``name``, if any."""
    try:
        password = (cluster_dir(name) / ADMIN_PASSWORD_FILE).read_text().rstrip("\r\n")
    except (OSError, UnicodeDecodeError):
        return None
    return {"user": ADMIN_USER, "password": password}


def cluster_of(address: str) -> str | None:
    """The local cluster that has a node at ``address``, if any. Clusters made one after the
    other on the same port share addresses (only one can run at a time): the one whose node
    at ``address`` runs (or is paused) wins, else the current cluster, else the first by name."""
    from ringctl.cluster.manager import STOPPED, node_process  # manager imports this module

    found = []
    for name in names():
        try:
            spec = load(name)
        except Exception:  # a damaged cluster.json: not one to use
            continue
        for node in spec.nodes:
            if node.address == address:
                found.append((name, spec, node))
    if len(found) <= 1:
        return found[0][0] if found else None
    for name, spec, node in found:
        if node_process(spec, node, clean=False).state != STOPPED:
            return name
    current = read_current()
    return current if any(name == current for name, _, _ in found) else found[0][0]


def connect_args(address: str) -> dict[str, Any]:
    """What the cluster manager connects to its node at ``address`` with: the cluster's admin
    credentials and, for a cluster made with ``--tls``, its CA."""
    name = cluster_of(address)
    if name is None:
        return {"credentials": None}
    ca = cluster_dir(name) / TLS_DIR / "ca.pem"
    return {
        "credentials": admin_credentials(name),
        "tls_ca": str(ca) if ca.exists() else None,
    }


def credentials_for(address: str) -> dict[str, str] | None:
    """The stored admin credentials of the local cluster that has a node at ``address``."""
    name = cluster_of(address)
    return admin_credentials(name) if name is not None else None


def render_config(spec: ClusterSpec, node: NodeSpec) -> str:
    """The TOML config file of one node."""
    lines = [
        f"# ringd configuration of {node.name} of local cluster {spec.name!r}, written by",
        "# 'ringctl cluster'. Edit while the node is stopped; keys mirror ringd's flags.",
    ]
    lines += [f"{k} = {_toml_value(v)}" for k, v in node_settings(spec, node).items()]
    return "\n".join(lines) + "\n"


def write_config(spec: ClusterSpec, node: NodeSpec) -> Path:
    paths = spec.paths(node)
    paths.dir.mkdir(parents=True, exist_ok=True)
    tmp = paths.dir / ".ringd.toml.tmp"
    tmp.write_text(render_config(spec, node))
    os.replace(tmp, paths.config)
    return paths.config
