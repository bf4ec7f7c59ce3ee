"""The `mercat` command.

Each part of mercat contributes its commands from its own module under `mercat.cli`; this
module only assembles them. Heavy libraries (numba, highspy, matplotlib) are imported inside
the command functions so that `mercat --help` stays instant.

Errors: any `MercatError` raised by a command, and any bad option or value (Click's usage
errors), becomes a one-line `error: ...` on stderr and exit code 2 (see `_MercatGroup`).
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.text import Text

from mercat.cli import (
    agent,
    auctioneer,
    clearing,
    devnet,
    incentives,
    ledger,
    market,
    oracle,
    posted_price,
    pricing,
    privacy,
    reproduce,
    request,
    serve,
    simulate,
    storage,
    workbench,
)
from mercat.cli._help import MercatGroup, MercatTyper
from mercat.cli._output import guard_streams
from mercat.errors import MercatError


def _fail(message: str) -> typer.Exit:
    """Print `error: message` as one line on stderr; the exit (code 2) to raise."""
    # One line: a line break in the message, with the indentation around it, becomes one
    # space; the spaces within a line are the message's own and stay ("n1  1.0", a path with
    # two spaces). soft_wrap: the line is not broken however long (a path in it must stay
    # whole). A Text, not markup: brackets and colons (":smile:") print as they are.
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    Console(stderr=True, soft_wrap=True).print(
        Text.assemble(("error:", "bold red"), " ", line), highlight=False
    )
    return typer.Exit(code=2)


def _asks_for_help(exc: Exception) -> bool:
    """A group called without a command: its help is the answer, not an error. (Typer
    vendors Click and exports only the base class of its exceptions, so the class is
    recognised by name.)"""
    return type(exc).__name__ == "NoArgsIsHelpError"


def _usage_error(exc: typer.TyperException) -> typer.Exit:
    """A bad option or value, as one line that names the command (not Click's usage box)."""
    ctx = getattr(exc, "ctx", None)
    where = f"{ctx.command_path}: " if ctx is not None else ""
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    # Typer prefixes a refused choice with pydantic's "Value error, ": noise to a user.
    message = exc.format_message().replace("Value error, ", "")
    return _fail(f"{where}{message}{hint}")


class _MercatGroup(MercatGroup):
    """The top-level group: a MercatError anywhere below it, or a bad option or value of any
    command, becomes one line `error: ...` on stderr and exit code 2. Asking for help (no
    arguments to a group) still prints the help."""

    def make_context(self, info_name, args, parent=None, **extra):  # type: ignore[no-untyped-def]
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except typer.TyperException as exc:  # an option of `mercat` itself
            if _asks_for_help(exc):
                raise
            raise _usage_error(exc) from None

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # a full disk shows here, while it can still be one line
            return result
        except MercatError as exc:
            raise _fail(str(exc)) from None
        except typer.TyperException as exc:  # a subcommand's option, or a bad value
            if _asks_for_help(exc):
                raise
            raise _usage_error(exc) from None


app = MercatTyper(
    cls=_MercatGroup,
    help="mercat: decentralized compute marketplaces (incentives, clearing, auctions, ledger).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(asked: bool) -> None:
    if asked:
        from mercat import __version__

        typer.echo(f"mercat {__version__}")
        raise typer.Exit()


@app.callback()
def _top_level(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print mercat's version and exit.",
    ),
) -> None:
    """mercat: decentralized compute marketplaces (incentives, clearing, auctions, ledger)."""


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
app.add_typer(agent.app)  # mercat agent
app.add_typer(oracle.app)  # mercat oracle
app.add_typer(request.app, name="request")
app.add_typer(devnet.app, name="devnet")
app.add_typer(workbench.app)  # mercat sweep, mercat plot
app.add_typer(workbench.scenario_app, name="scenario")


def main() -> None:
    """Console-script entry point."""
    guard_streams()
    app()
