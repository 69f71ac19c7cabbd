"""Tidy `--help`: every option names what it takes (NAME, DIR, N), flags show nothing.

Typer would print `<str>`, `<bool>` and `<int>` in the type column, and Rich markup
swallows a help text's "[default: …]" (leaving "Data directory ."). Rather than a
metavar on each of the ~80 options, the root group fixes them all once it is built.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperGroup, TyperOption

# Typer carries its own copy of click: its commands and parameters are of these types.
_Command = Any

# A value's placeholder by option name; otherwise by type (N, PATH) or the name itself.
_NAMED = {
    "session": "NAME",
    "name": "NAME",
    "data_dir": "DIR",
    "dir": "DIR",
    "directory": "DIR",
    "database": "URL",
    "url": "URL",
    "chat": "JID",
    "jid": "JID",
    "engine": "ENGINE",
    "scale": "SCALE",
    "host": "HOST",
    "out": "FILE",
    "file": "FILE",
    "query": "WORDS",
}


class _Argument(TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # the name column shows the metavar already


def _placeholder(param: TyperOption | TyperArgument) -> str:
    name = param.name or "value"
    if name in _NAMED:
        return _NAMED[name]
    if param.type_descriptor.is_path:
        return "PATH"
    if param.type_descriptor.is_ranged or param.bare_type() in ("int", "float"):
        return "N"
    return name.upper()


def tidy(command: _Command) -> None:
    for param in command.params:
        help_text = getattr(param, "help", None)
        if help_text:
            # Rich markup would take "[default: …]" for a tag and drop it.
            param.help = help_text.replace("[default", r"\[default")
        if isinstance(param, TyperOption):
            if param.metavar is None:
                param.metavar = "" if param.is_flag else _placeholder(param)
        elif isinstance(param, TyperArgument):
            if param.metavar is None:
                param.metavar = _placeholder(param)
            param.__class__ = _Argument
    _quiet_help_option(command)
    for sub in getattr(command, "commands", {}).values():
        tidy(sub)


class TidyGroup(TyperGroup):
    """The root group: tidies every command's options as it is built."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tidy(self)


def _quiet_help_option(command: _Command) -> None:
    """--help is made per context when asked for: give it no placeholder either."""
    made = command.get_help_option

    def get_help_option(ctx: Any) -> Any:
        option = made(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option
