"""The `mercat` command.

Each part of mercat contributes its commands from its own module under `mercat.cli`; this
module only assembles them. Heavy libraries (numba, highspy, matplotlib) are imported inside
the command functions so that `mercat --help` stays instant.

Errors: any `MercatError` raised by a command becomes a one-line message on stderr and exit
code 2 (see `_MercatGroup`); bad option values are rejected by Typer with exit code 2 too.
"""

from __future__ import annotations

import click
import typer
from typer.core import TyperGroup

from mercat.cli import incentives, reproduce
from mercat.errors import MercatError


class _CleanFailure(click.ClickException):
    """A MercatError on its way to the terminal: message only, exit code 2."""

    exit_code = 2


class _MercatGroup(TyperGroup):
    """The top-level group: converts MercatError anywhere below it into `_CleanFailure`."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except MercatError as exc:
            raise _CleanFailure(str(exc)) from None


app = typer.Typer(
    cls=_MercatGroup,
    help="mercat: decentralized compute marketplaces (incentives, clearing, auctions, ledger).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Command modules, one per part of mercat. Modules without a name merge their commands
# into the top level; named ones become groups (`mercat simulate collective ...`).
app.add_typer(incentives.app)
app.add_typer(reproduce.app)


def main() -> None:
    """Console-script entry point."""
    app()
