"""How every `mercat` command shows its help: text printed as written, choices from the registries.

Every command module builds its commands with `MercatTyper` (a `typer.Typer` whose commands
and groups are `MercatCommand` and `MercatGroup`); tests/cli/test_vocabulary.py fails on a
command built otherwise. Two things set them apart:

- **Help text is text.** Typer renders help through Rich markup, where `[bidders]` or
  `[seed, r]` would vanish as an unknown style tag. Every help text (of the command and of
  its options and arguments) is escaped once, when the command is built, so brackets print
  as written. Help in mercat never relies on markup.
- **Choices from the registries, looked up only when asked for.** An option whose values
  come from a registry that plug-ins extend (clearing mechanisms, collective rules, ...)
  writes `{choices:KIND}` in its help (`_options.CHOICE_SOURCES` names the kinds); the
  placeholder becomes the registry's names, plug-ins included, when that command's help is
  shown. Building the command tree imports no registry, so `mercat --help` stays instant.
"""

from __future__ import annotations

import re
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

CHOICES = re.compile(r"\{choices:([a-z -]+)\}")
"""A registry placeholder in a help text: `{choices:mechanism}`."""


def _literal(text: str | None, markup_mode: Any) -> str | None:
    """`text` as it should reach the help renderer: escaped where Rich markup would parse it."""
    if not text or markup_mode != "rich":
        return text
    return escape(text)


def _literal_help(command: Any) -> None:
    """Escape the help texts of `command` and of its parameters, once, as it is built."""
    mode = getattr(command, "rich_markup_mode", None)
    command.help = _literal(command.help, mode)
    command.short_help = _literal(command.short_help, mode)
    for param in command.params:
        if getattr(param, "help", None):
            param.help = _literal(param.help, mode)


def resolve_choices(command: Any) -> None:
    """Replace each `{choices:KIND}` in the help of `command`'s parameters by the names the
    registry of KIND lists now (mercat's own, then plug-ins)."""
    from mercat.cli._options import choices_text

    mode = getattr(command, "rich_markup_mode", None)

    def names(found: re.Match[str]) -> str:
        return _literal(choices_text(found.group(1)), mode) or ""

    for param in command.params:
        text = getattr(param, "help", None)
        if text and "{choices:" in text:
            param.help = CHOICES.sub(names, text)


class MercatCommand(TyperCommand):
    """A mercat command: literal help text, registry choices resolved when help is shown."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _literal_help(self)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        resolve_choices(self)
        super().format_help(ctx, formatter)


class MercatGroup(TyperGroup):
    """A group of mercat commands, with the same help rules as `MercatCommand`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _literal_help(self)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        resolve_choices(self)
        super().format_help(ctx, formatter)


class MercatTyper(typer.Typer):
    """`typer.Typer` whose groups are `MercatGroup`s and whose commands are `MercatCommand`s."""

    def __init__(self, *args: Any, cls: type[TyperGroup] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, cls=cls or MercatGroup, **kwargs)

    def command(self, *args: Any, cls: type[TyperCommand] | None = None, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or MercatCommand, **kwargs)
