"""The vocabulary of mercat's command line: one name per idea, shared by every command.

docs/cli.md writes the conventions down; tests/cli/test_vocabulary.py walks the command tree
and fails on a command that strays from them. A command takes its common options from here
(`ledger_option()`, `out_option()`, `mechanism_option()`, ...), so that a name, its short
flag and its help read the same everywhere:

    --ledger URL        a ledger's store URL (sqlite:///..., postgresql+psycopg://...)
    --out/-o PATH       where output goes (a file or a directory)
    --mechanism/-m NAME a clearing mechanism, as the mechanism registry names it
    --option/-O K=V     an option of that mechanism (repeatable)
    --collective NAME   a collective rule of seed 000 (or a plug-in rule)
    --node URL          a market node's URL;  --key PATH  the participant's key file
    --seed, --runs, --rounds, --json, --quick, --providers/--requesters/--oracles (counts)

**Old names, for one release.** A command (or a group, for all its commands) that renamed
an option names the old spelling: `@app.command(renamed={"--url": "--ledger"})` or
`MercatTyper(renamed=...)`. Before Click parses the arguments, `spell_new` replaces the old
spelling by the new one and prints one line on stderr: `note: --url is deprecated; use
--ledger`. The old spelling is never declared, so `--help` does not show it and it cannot
clash with another command's use of the same letter. Mechanism names get the same
treatment (`double` is read as `double-auction`).

**Choices.** Options with a fixed set of values are `Literal[...]` (Typer lists and checks
them); options whose values come from a registry that plug-ins extend write
`{choices:KIND}` in their help (see `mercat.cli._help`), looked up in `CHOICE_SOURCES` only
when that help is shown.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import typer

from mercat.errors import MercatError

# --- old names --------------------------------------------------------------------------------


def note(message: str) -> None:
    """One line on stderr that informs without failing: `note: ...`."""
    sys.stderr.write(f"note: {message}\n")
    sys.stderr.flush()


def check_renamed(old_to_new: Mapping[str, str]) -> dict[str, str]:
    """`old_to_new` checked: option spellings (`--url`, `-o`) to option spellings."""
    for old, new in old_to_new.items():
        if not (old.startswith("-") and new.startswith("-")) or old == new:
            raise ValueError(
                f"a renamed option maps one option name to another: {old!r} -> {new!r}"
            )
        if len(old) == 2 and old[1] == "-":
            raise ValueError(f"not an option name: {old!r}")
    return dict(old_to_new)


def spell_new(args: list[str], renamed: Mapping[str, str], takes_value: set[str]) -> list[str]:
    """`args` with every old option name replaced by its new one, a note on stderr for each.

    Reads the arguments as Click will: `--old=VALUE`, `-oVALUE` (a short name with its value
    attached), the value after an option that takes one is never renamed, and nothing after
    `--` is. `takes_value` holds the (new) names of the options that take a value.
    """
    out: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if token == "--":
            out.extend(args[i - 1 :])
            break
        if token.startswith("--"):
            name, eq, value = token.partition("=")
            if name in renamed:
                name = renamed[name]
                note(f"{token.partition('=')[0]} is deprecated; use {name}")
            out.append(name + eq + value)
            attached = bool(eq)
        elif token.startswith("-") and len(token) >= 2:
            name, value = token[:2], token[2:]
            if name in renamed:
                note(f"{name} is deprecated; use {renamed[name]}")
                name = renamed[name]
                out.extend([name, value] if name.startswith("--") and value else [name + value])
            else:
                out.append(token)
            attached = bool(value)
        else:
            out.append(token)
            continue
        if name in takes_value and not attached and i < len(args):
            out.append(args[i])  # the option's value, as it is
            i += 1
    return out


def renamed_options(command: Any) -> dict[str, str]:
    """The old names `command` itself accepts, old -> new (`MercatTyper(renamed=...)`)."""
    return dict(getattr(command, "renamed", None) or {})


MECHANISM_ALIASES: dict[str, str] = {
    "double": "double-auction",
    "double-coin": "double-auction-coin",
}
"""Old spellings of clearing mechanism names -> the registry's name (one release)."""


def canonical_mechanism(name: str) -> str:
    """A clearing mechanism's name as the registry spells it (an alias noted on stderr)."""
    new = MECHANISM_ALIASES.get(name)
    if new is None:
        return name
    note(f"mechanism {name!r} is deprecated; use {new}")
    return new


# --- choices from the registries --------------------------------------------------------------


@dataclass(frozen=True)
class ChoiceSource:
    """Where the names of one kind of plug-in come from, for a help text.

    `registry_names()` asks the registry itself (the reference: it imports the registry's
    module, and with it every member: numba, HiGHS, seconds on a loaded machine).
    `names_without_import()` is the fast path: mercat's own names as written here, then the
    installed entry points (listed, not imported); tests/cli/test_help.py holds the two
    equal for every kind. `listed_names()`, what `--help` shows, takes the registry's answer
    when its module is loaded already (then names `register()` added are in it too), the
    fast path otherwise.
    """

    kind: str  # as plug-in messages name it (mercat.plugins.GROUPS)
    module: str  # the registry's module
    names: Callable[[Any], list[str]]  # the module's registry -> its names
    builtin: tuple[str, ...]  # mercat's own, in the registry's order
    extra: tuple[str, ...] = ()  # names the command adds (`all` for reproduce)

    def registry_names(self) -> list[str]:
        return [*self.names(importlib.import_module(self.module)), *self.extra]

    def listed_names(self) -> list[str]:
        loaded = sys.modules.get(self.module)
        if loaded is not None:
            return [*self.names(loaded), *self.extra]
        return self.names_without_import()

    def names_without_import(self) -> list[str]:
        """mercat's own names, then the installed entry points' (nothing imported)."""
        from mercat import plugins

        found = [ep.name for ep in plugins.entry_points(plugins.GROUPS[self.kind])]
        return [*self.builtin, *(n for n in found if n not in self.builtin), *self.extra]


CHOICE_SOURCES: dict[str, ChoiceSource] = {
    source.kind: source
    for source in (
        ChoiceSource(
            "mechanism",
            "mercat.clearing.registry",
            lambda module: module.names(),
            ("optimal", "double-auction", "vcg", "posted-price", "collective",
             "distributed-auction"),
        ),
        ChoiceSource(
            "collective rule",
            "mercat.incentives.rules",
            lambda module: module.RULES.names(),
            ("free", "coll-stake", "coll-rep", "coll-sr"),
        ),
        ChoiceSource(
            "market-maker strategy",
            "mercat.clearing.posted_price.makers",
            lambda module: module.names(),
            ("perfect-information", "noisy-estimates"),
        ),
        ChoiceSource(
            "experiment",
            "mercat.report.experiments",
            lambda module: list(module.experiments()),
            ("fig3", "fig4", "fig5", "table1", "adversaries", "seed003", "seed001",
             "seed002-cloudchain",
             "seed002-storage", "seed002-privacy"),
            extra=("all",),
        ),
        ChoiceSource(
            "simulation",
            "mercat.workbench.simulation",
            lambda module: module.SIMULATIONS.names(),
            ("collective", "fedavg", "clearing", "marketplace", "cloudchain"),
        ),
    )
}  # fmt: skip
"""`{choices:KIND}` in a help text lists these names (mercat's own, then plug-ins)."""


def choices_text(kind: str) -> str:
    """The names KIND's registry lists now, for a help text; never fails (help must show)."""
    source = CHOICE_SOURCES.get(kind)
    if source is None:
        raise KeyError(f"no registry of {kind!r} for a help text; known: {list(CHOICE_SOURCES)}")
    try:
        return ", ".join(source.listed_names())
    except MercatError as exc:  # a broken plug-in: the help says so instead of failing
        return f"(the {kind} names cannot be listed: {exc})"


# --- the shared options -----------------------------------------------------------------------


def ledger_option(default: Any = None, help: str = "The ledger's store URL.") -> Any:
    """`--ledger URL`: every option that names a ledger."""
    return typer.Option(default, "--ledger", help=help)


def out_option(default: Any = None, help: str = "Write here.") -> Any:
    """`--out/-o PATH`: every option that names where output goes."""
    return typer.Option(default, "--out", "-o", help=help)


def mechanism_option(
    default: Any = "optimal",
    help: str = "Clearing mechanism",
    references: bool = True,
    more: str = "",
) -> Any:
    """`--mechanism/-m NAME`: a clearing mechanism, its choices listed from the registry
    (installed plug-ins included); `references`: a `module:Class` is accepted too; `more`: a
    sentence after the list."""
    tail = ", or module:Class" if references else ""
    return typer.Option(
        default,
        "--mechanism",
        "-m",
        callback=canonical_mechanism,
        help=f"{help}: {{choices:mechanism}}{tail} (docs/mechanisms.md). {more}".strip(),
    )


def fixed_mechanism_option(default: Any, choices: tuple[str, ...], help: str) -> Any:
    """`--mechanism/-m NAME` where only `choices` run (the distributed auctioneer's
    protocol); a list `default` makes it repeatable. Old names are read as new ones."""

    def check(name: str) -> str:
        name = canonical_mechanism(name)
        if name not in choices:
            raise typer.BadParameter(f"{name!r} is not one of {', '.join(choices)}")
        return name

    def check_all(names: list[str]) -> list[str]:
        return [check(name) for name in names]

    listed = ", ".join(choices)
    return typer.Option(
        default,
        "--mechanism",
        "-m",
        callback=check_all if isinstance(default, list) else check,
        help=f"{help}: {listed}.",
    )


def mechanism_settings_option() -> Any:
    """`--option/-O KEY=VALUE`: an option of the clearing mechanism (repeatable)."""
    return typer.Option(
        [],
        "--option",
        "-O",
        help="A mechanism option KEY=VALUE (repeatable; VALUE is JSON or a plain string), "
        "e.g. -O tick=0.001 -O makers=3 for posted-price, -O target_gap=0.001 for vcg.",
    )


def collective_option(default: Any = "coll-sr", help: str = "Collective rule") -> Any:
    """`--collective NAME`: a collective rule, its choices listed from the registry
    (installed plug-ins included) or a `module:Class`. Where only seed 000's four rules
    run (the SQL ledger), the option is `Literal[COMPILED_RULES]` instead."""
    return typer.Option(
        default,
        "--collective",
        help=f"{help}: {{choices:collective rule}}, or module:Class "
        "(docs/collective-incentives.md).",
    )


def json_option(help: str = "Print JSON.") -> Any:
    """`--json`: machine-readable output on stdout (progress and notes go to stderr)."""
    return typer.Option(False, "--json", help=help)


def seed_option(default: int = 1, help: str = "Root seed.") -> Any:
    return typer.Option(default, "--seed", min=0, help=help)


def node_option(help: str = "The node's URL, e.g. http://127.0.0.1:8000.") -> Any:
    """`--node URL`: the market node a participant talks to."""
    return typer.Option(..., "--node", help=help)


def key_option(default: Any, help: str) -> Any:
    """`--key PATH`: the participant's key file (64 hex digits) or `-` (one line of stdin)."""
    return typer.Option(default, "--key", help=help)
