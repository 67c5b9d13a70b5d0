"""``ringctl keyspace create|alter|list|drop``."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console

from ringctl import output, target
from ringctl.completion import KEYSPACES
from ringctl.layout import Col, compact_table
from ringctl.options import Host, Json, Timeout

app = typer.Typer(
    help="Create, change, list and drop keyspaces.", no_args_is_help=True, rich_markup_mode=None
)

NAME_HELP = "Keyspace name (letters, digits, underscores)."
NewName = Annotated[str, typer.Argument(help=NAME_HELP)]
Name = Annotated[str, typer.Argument(help=NAME_HELP, autocompletion=KEYSPACES)]
Rf = Annotated[int | None, typer.Option("--rf", help="Replication factor (SimpleStrategy).", min=1)]
Replication = Annotated[
    str | None,
    typer.Option(
        "--replication", help="Per-datacenter factors, e.g. dc1:3,dc2:2 (NetworkTopologyStrategy)."
    ),
]
GcGrace = Annotated[
    int | None,
    typer.Option("--gc-grace", help="Seconds tombstones are kept (default 864000).", min=0),
]
DefaultTtl = Annotated[
    int | None, typer.Option("--default-ttl", help="TTL in seconds for writes without one.", min=0)
]
Hints = Annotated[
    bool | None,
    typer.Option(
        "--hinted-handoff/--no-hinted-handoff", help="Keep hints for replicas that miss writes."
    ),
]
Sloppy = Annotated[
    bool | None,
    typer.Option(
        "--sloppy-quorum/--no-sloppy-quorum",
        help="Let live nodes past down replicas hold their writes (as hints) and count towards w.",
    ),
]


class ReadRepairMode(StrEnum):
    BLOCKING = "BLOCKING"
    NONE = "NONE"


ReadRepair = Annotated[
    ReadRepairMode | None,
    typer.Option(
        "--read-repair",
        case_sensitive=False,
        help="BLOCKING (default): a read whose replicas disagree repairs the stale ones before "
        "answering; NONE: it does not (docs/repair.md).",
    ),
]


def replication_setting(rf: int | None, replication: str | None) -> dict[str, Any] | None:
    if rf is not None and replication is not None:
        output.fail("give either --rf or --replication, not both", output.USAGE)
    if rf is not None:
        return {"class": "SimpleStrategy", "replication_factor": rf}
    if replication is None:
        return None
    setting: dict[str, Any] = {"class": "NetworkTopologyStrategy"}
    for part in replication.split(","):
        dc, sep, factor = part.strip().partition(":")
        if not sep or not dc or not factor.isdigit():
            output.fail(
                f"--replication {replication!r}: expected DC:FACTOR[,DC:FACTOR...]", output.USAGE
            )
        setting[dc] = int(factor)
    return setting


def _options(
    gc_grace: int | None,
    default_ttl: int | None,
    hints: bool | None,
    sloppy: bool | None,
    read_repair: ReadRepairMode | None,
) -> dict[str, Any]:
    values = {
        "gc_grace_seconds": gc_grace,
        "default_ttl": default_ttl,
        "hinted_handoff": hints,
        "sloppy_quorum": sloppy,
        "read_repair": None if read_repair is None else read_repair.value,
    }
    return {k: v for k, v in values.items() if v is not None}


def _warn(result: dict[str, Any]) -> None:
    """The node's warnings about the replication, one line each on stderr."""
    for text in result.get("warnings") or ():
        output.err_console.print(f"warning: {text}", markup=False, highlight=False, soft_wrap=True)


def _describe(ks: dict[str, Any]) -> str:
    repl = ", ".join(f"{k}={v}" for k, v in ks["replication"].items())
    return f"{ks['name']}: {repl}; gc_grace={ks['gc_grace_seconds']}s"


@app.command()
def create(
    name: NewName,
    rf: Rf = None,
    replication: Replication = None,
    gc_grace: GcGrace = None,
    default_ttl: DefaultTtl = None,
    hinted_handoff: Hints = None,
    sloppy_quorum: Sloppy = None,
    read_repair: ReadRepair = None,
    if_not_exists: Annotated[
        bool,
        typer.Option("--if-not-exists", help="Succeed, changing nothing, if it already exists."),
    ] = False,
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Define a keyspace (default: SimpleStrategy, replication factor 1)."""
    setting = replication_setting(rf, replication)
    options = _options(gc_grace, default_ttl, hinted_handoff, sloppy_quorum, read_repair)
    with output.errors(), target.client(host, timeout) as db:
        ks = db.keyspace_create(name, replication=setting, if_not_exists=if_not_exists, **options)
    _warn(ks)

    def render(k: dict[str, Any]) -> None:
        if k.get("created", True):
            output.console.print(f"created {_describe(k)}", markup=False, highlight=False)
        else:
            output.console.print(
                f"keyspace {k['name']} already exists (unchanged)", markup=False, highlight=False
            )

    output.emit(ks, as_json, render)


@app.command()
def alter(
    name: Name,
    rf: Rf = None,
    replication: Replication = None,
    gc_grace: GcGrace = None,
    default_ttl: DefaultTtl = None,
    hinted_handoff: Hints = None,
    sloppy_quorum: Sloppy = None,
    read_repair: ReadRepair = None,
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Change a keyspace's replication or options."""
    changes = _options(gc_grace, default_ttl, hinted_handoff, sloppy_quorum, read_repair)
    setting = replication_setting(rf, replication)
    if setting is not None:
        changes["replication"] = setting
    if not changes:
        output.fail("nothing to change: give --rf, --replication or an option", output.USAGE)
    with output.errors(), target.client(host, timeout) as db:
        ks = db.keyspace_alter(name, **changes)
    _warn(ks)
    output.emit(
        ks, as_json, lambda k: output.console.print(f"altered {_describe(k)}", markup=False)
    )


@app.command("list")
def list_(
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
    names: Annotated[
        bool,
        typer.Option("--names", help="Print only the names, one a line (for scripts and shells)."),
    ] = False,
) -> None:
    """List keyspaces with their replication and options."""
    if names and as_json:
        output.fail("give either --json or --names, not both", output.USAGE)
    with output.errors(), target.client(host, timeout) as db:
        result = db.keyspace_list()
    if names:
        for ks in result["keyspaces"]:
            print(ks["name"])
        return
    output.emit(result, as_json, lambda r: render_keyspaces(r, output.console))


KEYSPACE_COLUMNS = (
    Col("Keyspace", whole=True),
    Col("Replication", min_width=16),
    Col("gc_grace", whole=True, justify="right"),
    Col("TTL", whole=True, justify="right"),
    Col("Hints"),
    Col("Sloppy"),
)


def replication_text(replication: dict[str, Any]) -> str:
    """``Simple rf=3`` or ``NetworkTopology dc1=3, dc2=2``: short enough for 80 columns."""
    cls = str(replication.get("class", "?")).rsplit(".", 1)[-1].removesuffix("Strategy")
    factors = ", ".join(f"{k}={v}" for k, v in replication.items() if k != "class")
    factors = factors.replace("replication_factor=", "rf=")
    return f"{cls} {factors}".strip()


def render_keyspaces(r: dict[str, Any], console: Console) -> None:
    """One row per keyspace; the replication folds rather than being cut."""
    rows = [
        [
            k["name"],
            replication_text(k["replication"]),
            k["gc_grace_seconds"],
            k["default_ttl"],
            "on" if k["hinted_handoff"] else "off",
            "on" if k["sloppy_quorum"] else "off",
        ]
        for k in r["keyspaces"]
    ]
    console.print(compact_table(KEYSPACE_COLUMNS, rows))


@app.command()
def drop(
    name: Name,
    if_exists: Annotated[
        bool, typer.Option("--if-exists", help="Succeed if it does not exist.")
    ] = False,
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Drop a keyspace and delete its data on every node."""
    with output.errors(), target.client(host, timeout) as db:
        result = db.keyspace_drop(name, if_exists=if_exists)
    output.emit(
        result,
        as_json,
        lambda r: output.console.print(
            f"dropped {name}" if r["dropped"] else f"{name} did not exist"
        ),
    )
