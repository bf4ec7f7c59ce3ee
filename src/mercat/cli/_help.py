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
  shown. Neither building the command tree nor showing a command's help imports a registry
  (`_options.ChoiceSource`), so `mercat --help` and `mercat clear --help` stay instant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from mercat.cli._options import check_renamed, choices_text, renamed_options, spell_new

T = TypeVar("T")

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
    mode = getattr(command, "rich_markup_mode", None)

    def names(found: re.Match[str]) -> str:
        return _literal(choices_text(found.group(1)), mode) or ""

    for param in command.params:
        text = getattr(param, "help", None)
        if text and "{choices:" in text:
            param.help = CHOICES.sub(names, text)


def _renamed_here(ctx: Any) -> dict[str, str]:
    """The old option names that apply in `ctx`: its command's and its groups' (the nearest
    wins)."""
    chain = []
    while ctx is not None:
        chain.append(renamed_options(ctx.command))
        ctx = ctx.parent
    found: dict[str, str] = {}
    for table in reversed(chain):
        found.update(table)
    return found


def _takes_value(command: Any) -> set[str]:
    return {
        name
        for param in command.params
        if param.param_type_name == "option"
        and not getattr(param, "is_flag", False)
        and not getattr(param, "count", False)
        for name in param.opts
    }


class _MercatHelp:
    """The help rules of mercat's commands and groups: literal help text, registry choices
    resolved when help is shown. Mixed in before Click's class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _literal_help(self)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        resolve_choices(self)
        super().format_help(ctx, formatter)  # type: ignore[misc]


class MercatCommand(_MercatHelp, TyperCommand):
    """A mercat command: mercat's help rules, and old option names (`renamed`) read as their
    new ones with a note."""

    renamed: ClassVar[dict[str, str]] = {}

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        renamed = _renamed_here(ctx)
        if renamed:
            args = spell_new(list(args), renamed, _takes_value(self))
        return super().parse_args(ctx, args)


class MercatGroup(_MercatHelp, TyperGroup):
    """A group of mercat commands, with mercat's help rules; its `renamed` names apply to
    every command below it."""

    renamed: ClassVar[dict[str, str]] = {}


def _with_renamed(base: type[T], renamed: Mapping[str, str] | None) -> type[T]:
    """`base`, or a subclass of it that accepts the old option names `renamed`."""
    if not renamed:
        return base
    table = check_renamed(renamed)
    return type(base.__name__, (base,), {"renamed": table, "__module__": base.__module__})


class MercatTyper(typer.Typer):
    """`typer.Typer` whose groups are `MercatGroup`s and whose commands are `MercatCommand`s;
    `renamed={"--old": "--new"}` (here, for a whole group, or on `command`) keeps an old
    option name working for a release (mercat.cli._options)."""

    def __init__(
        self,
        *args: Any,
        cls: type[TyperGroup] | None = None,
        renamed: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, cls=_with_renamed(cls or MercatGroup, renamed), **kwargs)

    def command(
        self,
        *args: Any,
        cls: type[TyperCommand] | None = None,
        renamed: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        return super().command(*args, cls=_with_renamed(cls or MercatCommand, renamed), **kwargs)
