"""The on-disk layout and cluster specs: names, node counts, addresses, config files, current."""

from __future__ import annotations

import tomllib
from pathlib import Path

import platformdirs
import pytest

from ringctl.cluster import layout
from ringctl.cluster.layout import LayoutError
from ringd.config import load as load_ringd_config


def test_home_is_platformdirs_unless_ringctl_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RINGCTL_HOME", raising=False)
    assert layout.home() == Path(platformdirs.user_data_dir("ringctl"))
    monkeypatch.setenv("RINGCTL_HOME", "/some/where")
    assert layout.cluster_dir("c1") == Path("/some/where/clusters/c1")


@pytest.mark.parametrize(("text", "counts"), [("3", [3]), ("2:2", [2, 2]), (" 1:2:3 ", [1, 2, 3])])
def test_parse_counts(text: str, counts: list[int]) -> None:
    assert layout.parse_counts(text) == counts


@pytest.mark.parametrize("text", ["0", "2:0", "x", "2:", "", "300", "-1"])
def test_parse_counts_rejects(text: str) -> None:
    with pytest.raises(LayoutError):
        layout.parse_counts(text)


@pytest.mark.parametrize("name", ["", "-x", "a/b", "..", "a b", "x" * 65])
def test_bad_names(name: str) -> None:
    with pytest.raises(LayoutError):
        layout.check_name(name)


def test_plan_one_address_per_node(home: Path) -> None:
    spec = layout.plan("c", [2, 2], port=7600)
    assert [n.address for n in spec.nodes] == [
        "127.0.0.1:7600",
        "127.0.0.2:7600",
        "127.0.0.3:7600",
        "127.0.0.4:7600",
    ]
    assert [n.dc for n in spec.nodes] == ["dc1", "dc1", "dc2", "dc2"]
    assert spec.datacenters == ["dc1", "dc2"] and spec.counts == [2, 2]
    assert spec.seeds == ["127.0.0.1:7600", "127.0.0.3:7600"]
    assert spec.paths(3).dir == home / "clusters" / "c" / "node3"


def test_plan_single_address_uses_consecutive_ports(home: Path) -> None:
    spec = layout.plan("c", [3], port=9000, single_address=True)
    assert [n.address for n in spec.nodes] == [
        "127.0.0.1:9000",
        "127.0.0.1:9001",
        "127.0.0.1:9002",
    ]
    with pytest.raises(LayoutError, match="65535"):
        layout.plan("c", [3], port=65534, single_address=True)


def test_spec_round_trips_through_json(home: Path) -> None:
    spec = layout.plan("c", [1, 2], port=7601, num_tokens=8, settings={"phi_threshold": 6.0})
    spec.save()
    again = layout.load("c")
    assert again == spec
    assert layout.names() == ["c"]


def test_config_file_is_valid_ringd_config(home: Path) -> None:
    spec = layout.plan("c", [2, 1], port=7601, num_tokens=4, settings={"gossip_interval_ms": 100})
    path = layout.write_config(spec, spec.node(3))
    raw = tomllib.loads(path.read_text())
    assert raw["enable_test_hooks"] is True
    config = load_ringd_config(["--config", str(path)])
    assert config.listen == "127.0.0.3:7601"
    assert config.dc == "dc2" and config.rack == "rack1"
    assert config.cluster_name == "c"
    assert config.seeds == ["127.0.0.1:7601", "127.0.0.3:7601"]
    assert config.num_tokens == 4 and config.gossip_interval_ms == 100
    assert config.data_dir == str(home / "clusters" / "c" / "node3" / "data")
    assert config.enable_test_hooks


def test_settings_are_checked_against_ringd_config() -> None:
    assert layout.parse_settings(["phi-threshold=5", "log_level=debug"]) == {
        "phi_threshold": 5,
        "log_level": "debug",
    }
    for bad in ["nonsense=1", "listen=1.2.3.4:5", "gossip_interval_ms=fast", "novalue"]:
        with pytest.raises(LayoutError):
            layout.parse_settings([bad])


def test_current_cluster_file(home: Path) -> None:
    assert layout.read_current() is None
    layout.write_current("ghost")
    assert layout.read_current() is None  # names a cluster that does not exist
    layout.plan("c", [1]).save()
    layout.write_current("c")
    assert (home / "current").read_text().strip() == "c"
    assert layout.read_current() == "c"
    layout.clear_current()
    assert layout.read_current() is None


def test_local_clusters_run_anti_entropy_on_a_laptop_interval(home: Path) -> None:
    spec = layout.plan("c", [3], port=7601, num_tokens=4)
    config = load_ringd_config(["--config", str(layout.write_config(spec, spec.node(1)))])
    assert config.anti_entropy and config.anti_entropy_interval_s == 600
    off = layout.plan("d", [3], port=7601, num_tokens=4, settings={"anti_entropy": False})
    config = load_ringd_config(["--config", str(layout.write_config(off, off.node(1)))])
    assert not config.anti_entropy
