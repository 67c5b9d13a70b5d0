"""Dependencies point down: only ringd/node.py (which wires the services) and ringd/main.py
(which starts it) may import ringd.node; every service gets its collaborators instead."""

from __future__ import annotations

import ast
from pathlib import Path

RINGD = Path(__file__).resolve().parents[1] / "ringd"
ALLOWED = {"node.py", "main.py"}


def _imports_node(tree: ast.AST) -> bool:
    for n in ast.walk(tree):
        if isinstance(n, ast.Import) and any(a.name == "ringd.node" for a in n.names):
            return True
        if isinstance(n, ast.ImportFrom):
            if n.module == "ringd.node":
                return True
            if n.module == "ringd" and any(a.name == "node" for a in n.names):
                return True
    return False


def test_nothing_below_node_imports_node() -> None:
    offenders = [
        str(path.relative_to(RINGD))
        for path in sorted(RINGD.rglob("*.py"))
        if str(path.relative_to(RINGD)) not in ALLOWED
        and _imports_node(ast.parse(path.read_text(), str(path)))
    ]
    assert offenders == []


def test_the_check_sees_every_form_of_import() -> None:
    for source in (
        "import ringd.node",
        "from ringd.node import Node",
        "from ringd import node",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ringd.node import Node",
    ):
        assert _imports_node(ast.parse(source)), source
    assert not _imports_node(ast.parse("from ringd import verbs"))
