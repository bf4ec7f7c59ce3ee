"""Every `mercat` command and its options, from Click's command tree (nothing is run).

    python -m mercat.cli._inventory          # one line per option
    python -m mercat.cli._inventory --json   # the same as JSON

tests/cli/test_vocabulary.py reads the same rows to hold the commands to docs/cli.md.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, get_origin

import typer
from typer.core import TyperGroup

from mercat.cli._options import renamed_options


@dataclass(frozen=True)
class Param:
    """One option or argument of one command, as `--help` and the parser see it."""

    command: str  # "ledger init" ("" for mercat itself)
    kind: str  # "option" or "argument"
    name: str  # the Python name
    opts: tuple[str, ...]  # every spelling: ("--out", "-o"), ("--wait", "--no-wait")
    type: str  # the annotation: int, float, str, Path, bool, list[str], Literal
    choices: tuple[str, ...]  # a fixed set of values, () when open
    help: str
    hidden: bool


def tree(app: typer.Typer | None = None) -> Any:
    """The Click command of `app` (mercat's own by default)."""
    if app is None:
        from mercat.cli import app as mercat_app

        app = mercat_app
    return typer.main.get_command(app)


def commands(root: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, command) for `root` and everything below it, groups included, in help order."""
    yield path, root
    if isinstance(root, TyperGroup):
        for name in root.list_commands(None):  # type: ignore[arg-type]
            yield from commands(root.get_command(None, name), (*path, name))  # type: ignore[arg-type]


def _type_name(param: Any) -> str:
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None:
        return type(param).__name__
    annotation = descriptor.annotation
    if getattr(descriptor, "choices", None) is not None:
        return "Literal"
    if get_origin(annotation) is not None:  # list[str]
        return str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", None) or str(annotation)


def params(path: tuple[str, ...], command: Any) -> list[Param]:
    """The options and arguments of one command (its --help excluded)."""
    rows = []
    for param in command.params:
        if param.name == "help":
            continue
        descriptor = getattr(param, "type_descriptor", None)
        choices = getattr(descriptor, "choices", None) or ()
        rows.append(
            Param(
                command=" ".join(path),
                kind=param.param_type_name,
                name=param.name,
                opts=(*param.opts, *param.secondary_opts),
                type=_type_name(param),
                choices=tuple(str(getattr(c, "value", c)) for c in choices),
                # as written: the escape that keeps Rich from reading [..] as markup undone
                help=(getattr(param, "help", None) or "").replace("\\[", "["),
                hidden=bool(getattr(param, "hidden", False)),
            )
        )
    return rows


def renamed_along(root: Any, path: tuple[str, ...]) -> dict[str, str]:
    """The old option names that the command at `path` accepts: its own and its groups'."""
    found: dict[str, str] = {}
    command = root
    for name in path:
        found.update(renamed_options(command))
        command = command.get_command(None, name)
    found.update(renamed_options(command))
    return found


def inventory(root: Any = None) -> list[Param]:
    """Every parameter of every command."""
    root = tree() if root is None else root
    return [row for path, command in commands(root) for row in params(path, command)]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    rows = inventory()
    if "--json" in args:
        print(json.dumps([asdict(row) for row in rows], indent=1))
        return
    for row in rows:
        choices = f" [{'|'.join(row.choices)}]" if row.choices else ""
        spelled = "/".join(row.opts) or row.name
        print(f"{row.command or 'mercat'}: {spelled} {row.type}{choices}")


if __name__ == "__main__":
    main()
