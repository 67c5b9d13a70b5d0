"""Which user and password ringctl logs in with: ``--user``/``--password-file``, else
``RINGCTL_USER``/``RINGCTL_PASSWORD_FILE``, else the admin credentials ``ringctl cluster create``
stored for the current local cluster (or the local cluster the ``--host`` node belongs to) (mode 0600 in its directory). A password is never taken from
the command line itself: it would show in ``ps`` and shell history."""

from __future__ import annotations

import os
from pathlib import Path

from ringctl import output
from ringctl.cluster.layout import admin_credentials, credentials_for

USER_ENV = "RINGCTL_USER"
PASSWORD_FILE_ENV = "RINGCTL_PASSWORD_FILE"

user: str | None = None  # set by ``ringctl --user``
password_file: str | None = None  # set by ``ringctl --password-file``


def resolve(cluster: str | None, address: str) -> dict[str, str] | None:
    """The credentials for a command whose target is ``address``, of local cluster ``cluster``
    (None: not the current one; a node of another local cluster gets that cluster's)."""
    name = user or os.environ.get(USER_ENV) or None
    path = password_file or os.environ.get(PASSWORD_FILE_ENV) or None
    if name is None and path is None:
        return admin_credentials(cluster) if cluster is not None else credentials_for(address)
    if name is None or path is None:
        output.fail(
            "give both a user (--user or RINGCTL_USER) and a password file "
            "(--password-file or RINGCTL_PASSWORD_FILE)",
            output.USAGE,
        )
    return {"user": name, "password": read_password(Path(path))}


def read_password(path: Path) -> str:
    """The first line of ``path`` (a usage error, one line, if it cannot be read)."""
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        output.fail(f"cannot read password file {path}: {exc}", output.USAGE)
    password = text.splitlines()[0] if text else ""
    if not password:
        output.fail(f"password file {path} is empty", output.USAGE)
    return password
