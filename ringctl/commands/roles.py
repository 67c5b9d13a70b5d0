"""Client roles: ``ringctl role create|alter|drop|list`` (admin only).

Roles are kept per node for now. Without ``--host`` against the current local cluster, a change
goes to every running node of the cluster (and says which); with ``--host`` (or
``RINGCTL_HOST``) it goes to that node only. A password comes from ``--password-file`` or, on a
terminal, from a prompt: never from the command line.
"""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ringctl import credentials, output, target
from ringctl.cluster import layout, manager
from ringctl.completion import CHOICES, Complete
from ringctl.options import Host, Json, Timeout
from ringd.auth.roles import KINDS

app = typer.Typer(
    help="Client roles (admin only). Without --host, a change applies to every running node "
    "of the current local cluster; with --host, to that node only (roles are per node).",
    no_args_is_help=True,
)

Name = Annotated[str, typer.Argument(help="Role name (1-64 of letters, digits, _ . -).")]
PasswordFile = Annotated[
    str | None,
    typer.Option(
        "--password-file",
        metavar="FILE",
        help="Read the role's password from the first line of FILE (else prompt on a terminal).",
    ),
]


def _nodes(host: str | None) -> tuple[list[str], str | None]:
    """The addresses a change goes to, and the local cluster's name when it is all its nodes."""
    if host is not None:
        return [host], None
    current = manager.current_cluster()
    if current is None:
        return [target.resolve(None).address], None
    name, first = current
    if first is None:
        first = target.resolve(None).address  # says that no node of the cluster runs, exit 4
    running = [n.address for n in manager.running_nodes(layout.load(name))]
    return running or [first], name


def _apply(host: str | None, timeout: float | None, op: str, **args: Any) -> list[str]:
    """Send ``op`` to every node it applies to; the addresses it was applied on."""
    addresses, cluster = _nodes(host)
    done: list[str] = []
    for address in addresses:
        try:
            with output.errors(), target.client(address, timeout) as db:
                db.admin(op, timeout=timeout, **args)
        except SystemExit:
            if done:
                output.err_console.print(
                    f"ringctl: {op} was applied on {', '.join(done)} before {address} failed",
                    markup=False,
                    highlight=False,
                )
            raise
        done.append(address)
    return done


def _where(done: list[str], host: str | None) -> str:
    if host is None and len(done) > 1:
        return f"on {len(done)} nodes of the current cluster ({', '.join(done)})"
    return f"on {done[0]} only" if host is not None else f"on {done[0]}"


def _password(path: str | None) -> str:
    if path is not None:
        return credentials.read_password(Path(path))
    if not sys.stdin.isatty():
        output.fail("give the role's password with --password-file FILE", output.USAGE)
    first = getpass.getpass("Password: ")
    if not first or getpass.getpass("Password again: ") != first:
        output.fail("the passwords are empty or differ", output.USAGE)
    return first


def create(
    name: Name,
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            metavar="KIND",
            help="admin, readwrite or readonly.",
            autocompletion=Complete(CHOICES, KINDS),
        ),
    ],
    password_file: PasswordFile = None,
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Create a role of a kind with a password."""
    if kind not in KINDS:
        output.fail(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}", output.USAGE)
    password = _password(password_file)
    done = _apply(host, timeout, "role_create", name=name, kind=kind, password=password)
    _report(as_json, done, f"Created role {name} ({kind}) {_where(done, host)}")


def alter(
    name: Name,
    password_file: PasswordFile = None,
    host: Host = None,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Give a role a new password."""
    password = _password(password_file)
    done = _apply(host, timeout, "role_alter", name=name, password=password)
    _report(as_json, done, f"Changed the password of role {name} {_where(done, host)}")


def drop(name: Name, host: Host = None, timeout: Timeout = None, as_json: Json = False) -> None:
    """Drop a role (not the last admin)."""
    done = _apply(host, timeout, "role_drop", name=name)
    _report(as_json, done, f"Dropped role {name} {_where(done, host)}")


def _report(as_json: bool, done: list[str], line: str) -> None:
    output.emit({"nodes": done}, as_json, lambda _r: output.say(line))


def _when(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def list_roles(host: Host = None, timeout: Timeout = None, as_json: Json = False) -> None:
    """The roles of the target node: name, kind, when created."""
    with output.errors(), target.client(host, timeout) as db:
        result = db.admin("role_list", timeout=timeout)

    def render(r: dict[str, Any]) -> None:
        rows = [[x["name"], x["kind"], _when(x["created"])] for x in r["roles"]]
        output.console.print(output.table(None, ["Name", "Kind", "Created"], rows))

    output.emit(result, as_json, render)


app.command()(create)
app.command()(alter)
app.command()(drop)
app.command("list")(list_roles)
