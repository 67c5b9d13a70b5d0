"""ringctl starts without what only some commands need, and has one completion mechanism."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from ringctl.app import app


def test_import_loads_neither_trio_nor_hdrhistogram() -> None:
    code = (
        "import sys, ringctl.app; "
        "print(sorted(m for m in ('trio', 'hdrh', 'hdrh.histogram') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_no_typer_completion_options() -> None:
    """completions/ come from ringctl.docgen; typer's own installer would be a second one."""
    out = CliRunner().invoke(app, ["--help"]).output
    assert "--install-completion" not in out and "--show-completion" not in out
