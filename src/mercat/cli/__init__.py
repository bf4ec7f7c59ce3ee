"""The `mercat` command.

Each part of mercat contributes its commands from its own module under `mercat.cli`; this
module only assembles them. Heavy libraries (numba, highspy, matplotlib) are imported inside
the command functions so that `mercat --help` stays instant.

Errors: any `MercatError` raised by a command becomes a one-line message on stderr and exit
code 2 (see `_MercatGroup`); bad option values are rejected by Typer with exit code 2 too.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from mercat.cli import (
    auctioneer,
    clearing,
    incentives,
    ledger,
    market,
    posted_price,
    pricing,
    privacy,
    reproduce,
    serve,
    simulate,
    storage,
    workbench,
)
from mercat.errors import MercatError


class _MercatGroup(TyperGroup):
    """The top-level group: a MercatError anywhere below it becomes `error: ...` and exit 2."""

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except MercatError as exc:
            # soft_wrap: the message stays one line however long (a path in it must not be
            # broken by a newline); escape: brackets in the message are text, not markup.
            Console(stderr=True, soft_wrap=True).print(
                f"[bold red]error:[/] {escape(str(exc))}", highlight=False
            )
            raise typer.Exit(code=2) from None


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
app.add_typer(clearing.app)
app.add_typer(posted_price.app)  # mercat dynamics
app.add_typer(reproduce.app)
app.add_typer(simulate.app, name="simulate")
app.add_typer(ledger.app, name="ledger")
app.add_typer(market.app, name="market")
app.add_typer(auctioneer.app)  # provider, bid, and the `auctioneer` group
app.add_typer(privacy.app, name="privacy")
app.add_typer(storage.app, name="storage")
app.add_typer(serve.app)  # mercat serve
app.add_typer(pricing.app)  # mercat price
app.add_typer(workbench.app)  # mercat sweep, mercat plot
app.add_typer(workbench.scenario_app, name="scenario")


def main() -> None:
    """Console-script entry point."""
    app()
