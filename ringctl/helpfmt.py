"""Plain help text that reads well on an 80-column terminal.

ringctl's help is click's plain layout (``rich_markup_mode=None`` on every typer app): it wraps
at the terminal's width and puts an option whose name is too long on a line of its own, where
rich's boxed panels cut option names short. :func:`plain_help` also gives arguments and options
click's usual metavars: ``KEYSPACE`` rather than ``{keyspace}`` or ``keyspace <str>``, ``TEXT``
and ``INTEGER`` rather than ``<str>`` and ``<int range>``, and no type at all for flags.
"""

from __future__ import annotations

from typing import Any

from typer import _click
from typer.core import TyperArgument, TyperOption

_LABELS = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "Path": "PATH"}


class _Argument(TyperArgument):
    def _rich_display_name(self) -> str:
        name = self.display_name_raw.upper()
        return name if self.nargs == 1 else f"{name}..."

    def _usage_display_name(self) -> str:
        name = self._rich_display_name()
        return name if self.required else f"[{name}]"

    def display_type_rich(self, ctx: _click.Context) -> str | None:
        return None


class _Option(TyperOption):
    def display_type_rich(self, ctx: _click.Context) -> str | None:
        if self.metavar is not None:
            return self.metavar
        if self.type_descriptor.is_choice:
            return super().display_type_rich(ctx)
        label = _LABELS.get(self.bare_type(), self.bare_type().upper())
        return label if self.nargs == 1 else f"{label}..."


def plain_help(command: Any) -> Any:
    """Give every argument and option of ``command`` and its sub-commands click's metavars."""
    for param in command.params:
        if type(param) is TyperArgument:
            param.__class__ = _Argument
        elif type(param) is TyperOption:
            param.__class__ = _Option
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)
    return command
