"""ringd settles the garbage collector once it serves: start-up objects frozen, fewer young
collections. Checked in a child process, so that this test process keeps its own settings."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import gc
from ringd import gctune, main
import ringd.node
assert gc.get_freeze_count() == 0
gctune.settle()
assert gc.get_freeze_count() > 1000, gc.get_freeze_count()
assert gc.get_threshold()[0] == gctune.GEN0_THRESHOLD
seen = {}
class Node:
    def __init__(self, config, reload=None, *, on_ready=None):
        seen["on_ready"] = on_ready
    async def run(self):
        pass
ringd.node.Node = Node
main.load = lambda args: type("C", (), {"log_level": "warning"})()
main.main(["--config", "x"])
assert seen["on_ready"] is gctune.settle
print("ok")
"""


def test_settle_freezes_and_main_settles_once_serving() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
