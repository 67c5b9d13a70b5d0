"""Bad configuration and a damaged data directory stop ringd with one line, never a traceback
(issue 8, item 5): exit 2 for a setting, 1 for the data directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cbor2
import pytest
from nodes import free_port


def run_ringd(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ringd.main",
            "--data-dir",
            str(tmp_path / "data"),
            "--listen",
            f"127.0.0.1:{free_port()}",
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, names: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ringd: error: ")
    assert names in lines[0], lines[0]


@pytest.mark.parametrize(
    ("flags", "names"),
    [
        (["--phi-threshold", "nan"], "phi-threshold"),
        (["--phi-threshold", "inf"], "phi-threshold"),
        (["--commitlog-group-window-ms", "inf"], "commitlog-group-window-ms"),
        (["--commitlog-group-window-ms", "1e9"], "commitlog-group-window-ms"),
        (["--drain-timeout-s", "-1"], "drain-timeout-s"),
        (["--drain-timeout-s", "nan"], "drain-timeout-s"),
        (["--num-tokens", "16.9"], "num-tokens"),
        (["--gossip-interval-ms", "1e400"], "gossip-interval-ms"),
        (["--clock-offset-ms", str(10**30)], "clock-offset-ms"),
        (["--max-row-bytes", "100"], "max-row-bytes"),
        (["--max-frame-bytes", "1000000"], "max-row-bytes"),
        (["--dc", ""], "dc"),
        (["--metrics-listen", "127.0.0.1:notaport"], "metrics-listen"),
        (["--no-such-flag"], "--no-such-flag"),
    ],
)
def test_bad_flag_is_one_line_exit_2(tmp_path: Path, flags: list[str], names: str) -> None:
    assert_one_line(run_ringd(tmp_path, *flags), 2, names)


@pytest.mark.parametrize(
    ("toml", "names"),
    [
        ("num_tokens = 16.9\n", "num-tokens"),
        ("memtable_flush_mb = 1.5\n", "memtable-flush-mb"),
        ("phi_threshold = nan\n", "phi-threshold"),
        ("commitlog_group_window_ms = inf\n", "commitlog-group-window-ms"),
        ("drain_timeout_s = -1\n", "drain-timeout-s"),
        ("enable_test_hooks = 1\n", "enable-test-hooks"),
        ("seeds = [1]\n", "seeds"),
    ],
)
def test_bad_toml_value_is_one_line_exit_2(tmp_path: Path, toml: str, names: str) -> None:
    config = tmp_path / "ringd.toml"
    config.write_text(toml)
    assert_one_line(run_ringd(tmp_path, "--config", str(config)), 2, names)


def test_integral_float_for_an_int_setting_is_accepted(tmp_path: Path) -> None:
    from ringd.config import load

    config = tmp_path / "ringd.toml"
    config.write_text("num_tokens = 8.0\n")
    assert load(["--config", str(config)]).num_tokens == 8


def test_config_file_not_utf8(tmp_path: Path) -> None:
    config = tmp_path / "ringd.toml"
    config.write_bytes(b'cluster_name = "caf\xe9"\n')
    assert_one_line(run_ringd(tmp_path, "--config", str(config)), 2, "not UTF-8")


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe garbage",
        cbor2.dumps([1, 2, 3]),
        cbor2.dumps({"host_id": 7, "tokens": [1], "generation": 1, "cluster_name": "ringd"}),
        cbor2.dumps({"host_id": "h", "tokens": ["x"], "generation": 1, "cluster_name": "ringd"}),
        cbor2.dumps({"host_id": "h", "tokens": [1], "generation": "1", "cluster_name": "ringd"}),
        None,  # a directory where the file should be: unreadable
    ],
)
def test_damaged_local_state_is_one_line_exit_1(tmp_path: Path, content: bytes | None) -> None:
    system = tmp_path / "data" / "system"
    system.mkdir(parents=True)
    path = system / "local.cbor"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    assert_one_line(run_ringd(tmp_path), 1, str(path))


def test_damaged_schema_is_one_line_exit_1(tmp_path: Path) -> None:
    system = tmp_path / "data" / "system"
    system.mkdir(parents=True)
    (system / "schema.cbor").write_bytes(cbor2.dumps({"keyspaces": [{"nom": 1}]}))
    assert_one_line(run_ringd(tmp_path), 1, "schema.cbor")
