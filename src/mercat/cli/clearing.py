"""`mercat clear` and `mercat generate`: clearing markets from JSON files, and making them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import typer
from rich.markup import escape

from mercat.cli._help import MercatTyper
from mercat.cli._options import (
    json_option,
    mechanism_option,
    mechanism_settings_option,
    out_option,
    seed_option,
)
from mercat.cli._output import console, err_console, print_json, print_mapping, print_table
from mercat.errors import InvalidParameterError

app = MercatTyper()

SHOWN_ROWS = 40
"""Human output lists at most this many requests and nodes (--json lists all)."""

MarketKind = Literal["random", "double-auction", "standard-auction", "running-example"]
GENERATORS = get_args(MarketKind)


def mechanism_options(mechanism_class: type, pairs: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings as constructor keywords: VALUE read as JSON when it parses (3,
    0.001, true, ["a", "b"]), else kept as a string. Unknown or repeated keys are errors."""
    import json

    from mercat.clearing.report import accepted_options
    from mercat.untrusted import check_json_depth

    accepted = accepted_options(mechanism_class)
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InvalidParameterError(f"--option must look like KEY=VALUE, got {pair!r}")
        if key not in accepted:
            known = ", ".join(accepted) or "none"
            raise InvalidParameterError(
                f"mechanism {mechanism_class.name!r} has no option {key!r}; its options: {known}"
            )
        if key in options:
            raise InvalidParameterError(f"--option {key} given twice")
        check_json_depth(text, what=f"--option {key}", error=InvalidParameterError)
        try:
            options[key] = json.loads(text)
        except ValueError:  # not JSON (or an integer of more than 4300 digits): a string
            options[key] = text
    return options


@app.command(renamed={"-o": "-O"})
def clear(
    market_file: Path = typer.Argument(..., help="Market JSON file (docs/market-format.md)."),
    mechanism: str = mechanism_option("optimal"),
    seed: int = seed_option(0, help="Seed for mechanisms that draw random numbers."),
    time_limit: float | None = typer.Option(
        None, "--time-limit", help="Solver time limit in seconds (mechanisms that solve MILPs)."
    ),
    option: list[str] = mechanism_settings_option(),
    as_json: bool = json_option(),
    timings: bool = typer.Option(
        False,
        "--timings",
        help="Keep the solvers' wall-clock times in the diagnostics (without them, one "
        "seed gives the same output byte for byte).",
    ),
) -> None:
    """Clear a market: allocation, payments, rewards, welfare, margin and the checks."""
    from mercat.clearing import registry
    from mercat.clearing.report import accepted_options, clearing_report, configure
    from mercat.market.market_io import load_market

    mechanism_class = registry.resolve(mechanism)  # unknown names fail before the file is read
    pairs = list(option)
    if time_limit is not None:  # --time-limit is -O time_limit=…: given both ways, it is refused
        if "time_limit" not in accepted_options(mechanism_class):
            raise InvalidParameterError(f"mechanism {mechanism!r} takes no --time-limit")
        pairs.append(f"time_limit={time_limit!r}")
    options = mechanism_options(mechanism_class, pairs)
    market = load_market(market_file)
    result = configure(mechanism_class, options).clear(market, seed=seed)
    report = clearing_report(market, result, str(market_file), timings=timings)
    if as_json:
        print_json(report)
        return
    _print_clearing(market, result, report)


def _shown_margin(report: dict[str, Any]) -> float:
    """The margin as the table shows it: 0 where it is rounding residue (-1.1e-16 beside
    "budget balanced: True" read as a loss), that is where the report's own checks find the
    clearing both budget balanced and non-extractive, within their tolerance."""
    checks = report["checks"]
    if checks["budget_balanced"] and checks["non_extractive"]:
        return 0.0
    return report["margin"]


def _print_clearing(market: Any, result: Any, report: dict[str, Any]) -> None:
    from mercat.market.economics import node_cost, request_value

    allocation = result.allocation
    rows = []
    for t in market.requests[:SHOWN_ROWS]:
        shares = allocation.shares_of(t.id)
        nodes = ", ".join(
            n if abs(f - 1.0) < 1e-12 else f"{n} ({f:.4g})" for n, f in sorted(shares.items())
        )
        value = request_value(market, allocation, t.id) if shares else 0.0
        pay = result.payment(t.id)
        rows.append(
            {
                "request": t.id,
                "nodes": nodes or "-",
                "value": value,
                "pays": pay,
                "utility": value - pay,
            }
        )
    print_table(f"{result.mechanism}: requests", rows)
    rows = []
    for n in market.nodes[:SHOWN_ROWS]:
        cost = node_cost(market, allocation, n.id)
        reward = result.reward(n.id)
        used = "yes" if allocation.requests_on(n.id) else "no"
        rows.append(
            {"node": n.id, "used": used, "cost": cost, "reward": reward, "utility": reward - cost}
        )
    print_table(f"{result.mechanism}: nodes", rows)
    hidden = max(0, len(market.requests) - SHOWN_ROWS) + max(0, len(market.nodes) - SHOWN_ROWS)
    if hidden:
        console.print(f"({hidden} more rows; --json lists everything)")
    checks = report["checks"]
    cert = report["certificate"]
    print_mapping(
        "clearing",
        {
            "welfare W": report["welfare"],
            "margin M": _shown_margin(report),
            "surplus S": report["surplus"],
            "valid (α ∈ V)": checks["valid"],
            "individually rational": checks["individually_rational"],
            "budget balanced (M ≥ 0)": checks["budget_balanced"],
            "welfare bound": "-" if cert["bound"] is None else cert["bound"],
            "gap": "-" if cert["gap"] is None else cert["gap"],
            "proven optimal": cert["proven"],
        },
    )
    for reason in checks["validity_reasons"] + checks["ir_violations"]:
        err_console.print(f"[yellow]warning:[/] {escape(reason)}")


@app.command(renamed={"-m": "--nodes", "--size": "--requests"})
def generate(
    kind: MarketKind = typer.Argument(..., help="The kind of market."),
    out: Path | None = out_option(help="Write here (default: stdout)."),
    size: int = typer.Option(20, "--requests", "-n", min=0, help="Requests (users)."),
    nodes: int = typer.Option(8, "--nodes", min=1, help="Nodes (providers)."),
    seed: int = seed_option(0, help="Seed: the same seed writes the same market."),
    divisible: bool = typer.Option(False, "--divisible", help="random: a divisible market."),
) -> None:
    """Write a market as JSON: random (every constraint kind), seed-003 auctions, seed 001."""
    from mercat.market import generators
    from mercat.market.market_io import dumps_market

    if kind == "random":
        market = generators.random_market(seed, size, nodes, divisible=divisible)
    elif kind == "double-auction":
        market = generators.double_auction_market(seed, size, nodes)
    elif kind == "standard-auction":
        market = generators.standard_auction_market(seed, size, nodes)
    else:
        market = generators.running_example()
    text = dumps_market(market)
    if out is None:
        typer.echo(text, nl=False)
        return
    from mercat.files import write_text_atomic

    try:
        write_text_atomic(out, text)  # a failed write leaves no half market behind
    except OSError as exc:
        from mercat.errors import InvalidParameterError

        raise InvalidParameterError(f"cannot write {str(out)!r}: {exc.strerror}") from None
    # A generated market's name already gives its size ("random market (12 requests, 4 nodes)").
    err_console.print(f"wrote {escape(market.name)!r} to {escape(str(out))}")
