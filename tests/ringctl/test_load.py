"""``ringctl load`` on real processes: Ctrl-C stops it cleanly (exit 130, one line with the rows
written), progress shows on a terminal and nothing when piped."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from nodes import Ringd, wait_for


def _rows(path: Path, n: int) -> Path:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"key": f"k{i}", "value": {"i": i, "pad": "p" * 40}}) + "\n")
    return path


def _exists(node: Ringd, key: str) -> bool:
    with node.client() as db:
        return db.get("demo", key, consistency="ONE") is not None


def test_ctrl_c_stops_load_with_a_count(node: Ringd, tmp_path: Path) -> None:
    source = _rows(tmp_path / "rows.jsonl", 400_000)
    with source.open("rb") as stdin:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ringctl", "load", "demo", "-", "--host", node.address],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    try:
        wait_for(lambda: _exists(node, "k2000"), 60, "load to write k2000")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1, err
    match = re.fullmatch(r"ringctl: error: interrupted: (\d+) rows written to demo .*\n", err)
    assert match, err
    written = int(match.group(1))
    assert 1000 <= written < 400_000
    assert _exists(node, f"k{written // 2}")  # the node keeps serving
    assert out == ""


def test_progress_on_a_terminal_and_none_when_piped(node: Ringd, tmp_path: Path) -> None:
    source = _rows(tmp_path / "rows.jsonl", 5_000)
    argv = [sys.executable, "-m", "ringctl", "load", "demo", str(source), "--host", node.address]
    piped = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert (
        piped.stderr == "" and piped.stdout == "loaded 5000 rows into demo (0 failed, 0 skipped)\n"
    )

    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run(
            argv,
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            timeout=120,
            env={**os.environ, "TERM": "xterm"},
        )
    finally:
        os.close(slave)
        reader.join(10)
        os.close(master)
    assert done.returncode == 0
    shown = b"".join(chunks).decode(errors="replace")
    assert "rows/s" in shown and "loading demo" in shown
