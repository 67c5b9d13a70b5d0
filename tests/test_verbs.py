"""The merged handler table matches the verb table: one handler per verb, of the right kind,
and every request/response class the verb table names exists and speaks the wire."""

from __future__ import annotations

from typing import Any

import pytest

from ringd import verbs
from ringd.protocol.messages import SERVER_VERBS, VERBS


def _handlers() -> dict[str, Any]:
    def inline(s: Any, a: Any) -> None: ...

    async def task(s: Any, a: Any) -> None: ...

    return {
        n: task if v.mode == "task" else inline for n, v in VERBS.items() if n not in SERVER_VERBS
    }


def test_every_verb_has_exactly_one_handler() -> None:
    table = _handlers()
    assert verbs.merge(table) == table
    put = {"put": table.pop("put")}
    with pytest.raises(ValueError, match="no handler for verbs: put"):
        verbs.merge(table)
    with pytest.raises(ValueError, match="two handlers for verb put"):
        verbs.merge(table, put, put)
    with pytest.raises(ValueError, match="not in the verb table"):
        verbs.merge(table, put, {"nope": put["put"]})
    with pytest.raises(ValueError, match="hello, which the server answers"):
        verbs.merge(table, put, {"hello": put["put"]})
    # a batch verb may have a handler of its own (the server otherwise runs its items)
    assert "mutate_batch" in verbs.merge(table, put, {"mutate_batch": put["put"]})


def test_a_handler_must_match_its_mode() -> None:
    table = _handlers()
    table["scan"] = table["get"]  # scan runs in a task: its handler must be async
    with pytest.raises(ValueError, match="scan does not match its mode"):
        verbs.merge(table)


def test_named_message_types_exist() -> None:
    named = [(v.name, t) for v in VERBS.values() for t in (v.request, v.response) if t]
    assert {"mutate", "read_local", "scan_local", "schema_push", "schema_pull"} <= {
        n for n, _ in named
    }
    for name, type_name in named:
        cls = verbs.message_type(type_name)
        assert callable(cls.from_wire) and callable(cls.to_wire), (name, type_name)
