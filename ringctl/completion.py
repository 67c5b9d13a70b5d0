"""What the values of an argument or option complete to in the shell.

A :class:`Complete` is given as ``autocompletion=`` to ``typer.Option`` or ``typer.Argument``.
``ringctl.docgen`` reads it to write the completion into the static bash, zsh and fish scripts,
and typer calls it when it completes at run time. Kinds:

    choices    a fixed list of values (consistency levels), carried in the scripts
    cluster    local cluster names: the directories of $RINGCTL_HOME/clusters with a cluster.json
    keyspace   keyspace names, which the scripts ask ``ringctl keyspace list --names`` for
"""

from __future__ import annotations

from dataclasses import dataclass

CHOICES = "choices"
CLUSTER = "cluster"
KEYSPACE = "keyspace"


@dataclass(frozen=True)
class Complete:
    """One way to complete a value: ``kind``, and for ``choices`` the values themselves."""

    kind: str
    choices: tuple[str, ...] = ()

    def __call__(self, incomplete: str) -> list[str]:
        """The values starting with ``incomplete`` (keyspaces only through the scripts)."""
        if self.kind == CLUSTER:
            from ringctl.cluster import layout

            values = layout.names()
        else:
            values = list(self.choices)
        return [v for v in values if v.startswith(incomplete)]


CLUSTERS = Complete(CLUSTER)
KEYSPACES = Complete(KEYSPACE)
