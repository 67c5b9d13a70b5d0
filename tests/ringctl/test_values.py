"""What ``put`` accepts: strict JSON (or --raw text), values from stdin or a file, hex keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nodes import Ringd
from typer.testing import CliRunner

from ringctl.app import app


def _run(node: Ringd, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    done = CliRunner().invoke(app, list(args), env={"RINGCTL_HOST": node.address}, input=stdin)
    return done.exit_code, done.stdout, done.stderr


def _row(node: Ringd, key: str | bytes) -> dict | None:
    with node.client() as db:
        return db.get("demo", key)


def test_text_that_starts_like_json_must_be_json(node: Ringd) -> None:
    code, _, err = _run(node, "put", "demo", "k7", '{"name": "Bob"')
    assert code == 2
    assert "VALUE starts like JSON but is not valid JSON" in err and "--raw" in err
    assert _row(node, "k7") is None
    assert _run(node, "put", "demo", "k7", "[1, 2")[0] == 2
    assert _run(node, "put", "demo", "k7", '{"name": "Bob"', "--raw")[0] == 0
    assert _row(node, "k7")["columns"] == {"value": '{"name": "Bob"'}
    assert _run(node, "put", "demo", "k8", "plain words")[0] == 0  # text that is not JSON-like
    assert _row(node, "k8")["columns"] == {"value": "plain words"}


@pytest.mark.parametrize(
    "value", ["NaN", "Infinity", "-Infinity", '{"x": NaN}', "[1e400]", '{"n": 1e999}']
)
def test_nan_and_infinity_are_refused(node: Ringd, value: str) -> None:
    code, _, err = _run(node, "put", "demo", "nan", "--", value)
    assert code == 2, err
    assert "--raw" in err and len(err.strip().splitlines()) == 1
    assert _row(node, "nan") is None


def test_numbers_beyond_64_bits_and_deep_nesting_are_usage_errors(node: Ringd) -> None:
    code, _, err = _run(node, "put", "demo", "big", json.dumps({"n": 2**70}))
    assert code == 2 and "does not fit in 64 bits" in err
    code, _, err = _run(node, "put", "demo", "deep", "[" * 100_000 + "]" * 100_000)
    assert code == 2 and "nests deeper than 16 levels" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = _run(node, "put", "demo", "deep", "[" * 17 + "]" * 17)
    assert code == 2 and "nests deeper" in err
    assert _run(node, "put", "demo", "deep", "[" * 16 + "]" * 16)[0] == 0
    code, _, err = _run(node, "put", "demo", "ts", "1", "--timestamp", str(2**64))
    assert code == 2 and "--timestamp" in err and "CBOR" not in err


def test_value_from_stdin_and_from_a_file_over_128_kib(node: Ringd, tmp_path: Path) -> None:
    big = "x" * (300 * 1024)
    code, _, err = _run(node, "put", "demo", "stdin", "-", stdin=big + "\n")
    assert code == 0, err
    assert _row(node, "stdin")["columns"] == {"value": big}
    path = tmp_path / "value.json"
    path.write_text(json.dumps({"blob": big, "n": 1}))
    code, _, err = _run(node, "put", "demo", "file", "--value-file", str(path))
    assert code == 0, err
    assert _row(node, "file")["columns"] == {"blob": big, "n": 1}
    assert _run(node, "put", "demo", "both", "1", "--value-file", str(path))[0] == 2
    assert _run(node, "put", "demo", "none")[0] == 2
    code, _, err = _run(node, "put", "demo", "f", "--value-file", str(tmp_path / "missing"))
    assert code == 2 and "cannot read" in err


def test_keys_as_hex_for_put_get_delete(node: Ringd) -> None:
    key = b"\x00\xff\xfe"
    assert _run(node, "put", "demo", "00fffe", '{"v": 1}', "--key-hex")[0] == 0
    assert _row(node, key)["columns"] == {"v": 1}
    code, out, _ = _run(node, "get", "demo", "--key-hex", "00fffe", "--json")
    assert code == 0 and json.loads(out)["key"] == {"$bytes": "00fffe"}
    code, out, _ = _run(node, "get", "demo", "--key-hex", "00fffe")
    assert "demo/0x00fffe" in out
    assert _run(node, "delete", "demo", "00fffe", "--key-hex")[0] == 0
    assert _row(node, key) is None
    code, _, err = _run(node, "get", "demo", "zz", "--key-hex")
    assert code == 2 and "not hexadecimal" in err
