"""The root ``ringctl`` typer app: data commands at the top level, groups as sub-apps."""

from __future__ import annotations

from typing import Annotated

import typer
import typer.main

from ringctl import credentials, target
from ringctl.commands import admin, cluster, data, hints, keyspace, repair, roles, stress, views

app = typer.Typer(
    name="ringctl",
    help="Talk to a ringd cluster: read and write data, run admin commands, run local clusters.\n\n"
    "Exit codes: 0 ok, 1 not found or check failed, 2 usage, 3 unavailable/timeout, "
    "4 cannot connect/unauthorised/not a node of the current cluster, 5 server error.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["--help"]},
    rich_markup_mode=None,
)


@app.callback()
def _root(
    verbose: Annotated[
        bool,
        typer.Option(
            "-v", "--verbose", help="Say which node, ringd version and cluster a command talks to."
        ),
    ] = False,
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            help="Log in as this role (else RINGCTL_USER, else the current cluster's admin).",
        ),
    ] = None,
    password_file: Annotated[
        str | None,
        typer.Option(
            "--password-file",
            metavar="FILE",
            help="Read the password from FILE (else RINGCTL_PASSWORD_FILE).",
        ),
    ] = None,
    tls_ca: Annotated[
        str | None,
        typer.Option(
            "--tls-ca",
            metavar="FILE",
            help="Connect with TLS and verify the node's certificate against the CA in FILE "
            "(else RINGCTL_TLS_CA, else the local cluster's own CA when it has one).",
        ),
    ] = None,
) -> None:
    target.verbose = verbose
    target.tls_ca = tls_ca
    credentials.user = user
    credentials.password_file = password_file


data.register(app)
app.add_typer(keyspace.app, name="keyspace")
admin.register(app)
views.register(app)
hints.register(app)
app.add_typer(roles.app, name="role")
app.add_typer(cluster.app, name="cluster")
stress.register(app)
repair.register(app)


def main() -> None:
    from ringctl.helpfmt import plain_help

    plain_help(typer.main.get_command(app))(prog_name="ringctl")
