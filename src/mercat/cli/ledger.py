"""`mercat ledger ...`: create, inspect and audit a ledger store.

The store is chosen by `--url` (or MERCAT_LEDGER_URL): `sqlite:///path.db` by default,
`postgresql+psycopg://user@host/db` for scale. Amounts are printed in base units.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from mercat.cli._output import console, print_json, print_mapping, print_table

app = typer.Typer(
    help="The ledger: accounts, balances, stakes, escrow, journal.", no_args_is_help=True
)

DEFAULT_URL = "sqlite:///mercat-ledger.db"

UrlOption = typer.Option(
    None, "--url", help=f"Store URL (default: $MERCAT_LEDGER_URL or {DEFAULT_URL})."
)
JsonOption = typer.Option(False, "--json", help="Print JSON.")


def _url(url: str | None) -> str:
    return url or os.environ.get("MERCAT_LEDGER_URL") or DEFAULT_URL


def _open(url: str | None):  # type: ignore[no-untyped-def]
    from mercat.ledger import Ledger

    return Ledger(_url(url))


@app.command()
def init(
    url: str | None = UrlOption,
    operator_key: Path = typer.Option(
        Path("operator.key"), help="Operator's key file (hex seed); created (mode 600) if missing."
    ),
    mechanism: str = typer.Option("coll-stake", help="free, coll-stake, coll-rep or coll-sr."),
    penalty: float = typer.Option(1.0, help="Penalty P in tokens."),
    target: float = typer.Option(0.01, help="Target task failure rate; sets R = F·P/(1-F)."),
    initial_stake: float = typer.Option(10.0, help="S0 in tokens (the clamp of rep/sr)."),
    unit: int = typer.Option(10**6, help="Base units per token."),
    unstake_delay: int = typer.Option(10, help="Rounds unstaked tokens wait before release."),
    quorum: int = typer.Option(1, help="Oracles that must agree before a task settles."),
    as_json: bool = JsonOption,
) -> None:
    """Create a ledger: schema (Alembic migrations), rule, operator account."""
    from mercat.identity import Keypair
    from mercat.incentives.collective import mechanism as find_mechanism
    from mercat.ledger import IntegerRule, Ledger, LedgerConfig

    rule = IntegerRule.from_collective(
        find_mechanism(mechanism).rule(initial_stake, target, penalty), unit
    )
    if operator_key.exists():
        key = Keypair.from_file(operator_key)
    else:
        key = Keypair.generate()
        operator_key.touch(mode=0o600)
        operator_key.write_text(key.seed.hex() + "\n")
    config = LedgerConfig(
        operator=key.public, rule=rule, unstake_delay_rounds=unstake_delay, quorum=quorum, unit=unit
    )
    with Ledger.init(_url(url), config) as ledger:
        summary = {
            "url": _url(url),
            "operator": key.public,
            "operator_key": str(operator_key),
            "penalty": rule.penalty,
            "reward": rule.reward,
            "removal": rule.removal,
            "stake_floor": rule.stake_floor,
            "stake_cap": rule.stake_cap,
            "min_stake": ledger.config.min_stake,
            "unstake_delay_rounds": unstake_delay,
            "quorum": quorum,
            "unit": unit,
        }
    if as_json:
        print_json(summary)
    else:
        print_mapping("ledger initialised (amounts in base units)", summary)


@app.command()
def accounts(url: str | None = UrlOption, as_json: bool = JsonOption) -> None:
    """Every account: key, role, spendable balance."""
    with _open(url) as ledger:
        rows = [{"key": k, "role": r, "available": b} for k, r, b in ledger.accounts()]
    if as_json:
        print_json(rows)
    else:
        print_table("accounts", rows)


@app.command()
def balance(
    who: str = typer.Argument(..., help="An account key, an asset id, a request id, or a book."),
    url: str | None = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Balances of an account (spendable, unbonding, staked per asset), an asset's stake, a
    request's escrow, or any book by its name (`pool`, `world`, `hold:<round>:<task>`)."""
    from mercat.errors import UnknownAccountError

    with _open(url) as ledger:
        books = ledger.books()
        result: dict[str, int | str] = {}
        if f"avail:{who}" in books:
            result["available"] = books[f"avail:{who}"]
            result["unbonding"] = books[f"unbond:{who}"]
            for asset in ledger.assets():
                if asset.owner == who:
                    result[f"stake:{asset.id} ({asset.status})"] = asset.stake
        elif f"stake:{who}" in books:
            info = ledger.asset(who)
            result = {"owner": info.owner, "status": info.status, "stake": info.stake}
        elif f"escrow:{who}" in books:
            result = {"escrow": books[f"escrow:{who}"]}
        elif who in books:
            result = {who: books[who]}
        else:
            raise UnknownAccountError(f"no account, asset, request or book named {who!r}")
    if as_json:
        print_json(result)
    else:
        print_mapping(f"balance of {who}", result)


@app.command()
def journal(
    url: str | None = UrlOption,
    limit: int = typer.Option(50, min=1, help="At most this many entries."),
    after: int = typer.Option(0, min=0, help="Only entries with a larger id."),
    as_json: bool = JsonOption,
) -> None:
    """The journal, oldest first: each accepted message and its postings."""
    with _open(url) as ledger:
        entries = ledger.journal(limit=limit, after=after)
    rows = [
        {
            "id": e.id,
            "op": e.op,
            "signer": e.signer[:12],
            "postings": ", ".join(f"{book} {amount:+d}" for book, amount in e.postings),
        }
        for e in entries
    ]
    if as_json:
        print_json(
            [
                {**row, "signer": e.signer, "postings": e.postings}
                for row, e in zip(rows, entries, strict=True)
            ]
        )
    else:
        print_table("journal", rows)


@app.command()
def verify(
    url: str | None = UrlOption,
    signatures: bool = typer.Option(True, help="Also re-verify every entry's signature."),
    as_json: bool = JsonOption,
) -> None:
    """Recompute every balance from the journal and check conservation (exit 2 if not)."""
    with _open(url) as ledger:
        report = ledger.verify(signatures=signatures)
    summary = {
        "ok": report.ok,
        "entries": report.entries,
        "postings": report.postings,
        "books": report.books,
        "supply": report.supply,
        "settled_tasks": report.settled_tasks,
        "signatures_checked": report.signatures_checked,
    }
    if as_json:
        print_json(summary)
    else:
        print_mapping("ledger verified: balanced, conserved, explained by the journal", summary)
        console.print("OK")


@app.command()
def offers(url: str | None = UrlOption, as_json: bool = JsonOption) -> None:
    """Every asset's current offer, as its owner signed it."""
    with _open(url) as ledger:
        table = {asset: offer.to_wire() for asset, offer in ledger.offers().items()}
    if as_json:
        print_json(table)
        return
    print_table(
        "offers (amounts in base units)",
        [
            {"asset": a, "kind": o["kind"], "capacity": o["capacity"], "cost": o["cost"],
             "unit_costs": o["unit_costs"], "capabilities": ", ".join(o["capabilities"]),
             "cid": o["cid"] or ""}
            for a, o in table.items()
        ],
    )  # fmt: skip


@app.command()
def requests(
    url: str | None = UrlOption,
    status: str | None = typer.Option(None, help="open, assigned or closed."),
    as_json: bool = JsonOption,
) -> None:
    """Requests with their signed terms and where they are in their life cycle."""
    from mercat import validation as check

    if status is not None:
        check.choice("status", status, ("open", "assigned", "closed"))
    with _open(url) as ledger:
        records = ledger.request_records(status)
        escrows = {r.request: ledger.escrowed(r.request) for r in records}
    rows = [
        {"request": r.request, "owner": r.owner, "status": r.status, "round": r.round,
         "max_price": None if r.terms is None else r.terms.max_price,
         "escrow": escrows[r.request], "open_tasks": r.open_tasks,
         "terms": None if r.terms is None else r.terms.to_wire()}
        for r in records
    ]  # fmt: skip
    if as_json:
        print_json(rows)
    else:
        print_table("requests", [{k: v for k, v in r.items() if k != "terms"} for r in rows])


@app.command()
def tasks(
    url: str | None = UrlOption,
    round_: int | None = typer.Option(None, "--round", min=0, help="Only this round."),
    status: str | None = typer.Option(None, help="open or settled."),
    as_json: bool = JsonOption,
) -> None:
    """Tasks: assets, payouts, charge, and the oracles' verdict once settled."""
    from mercat import validation as check

    if status is not None:
        check.choice("status", status, ("open", "settled"))
    with _open(url) as ledger:
        rows = [
            {"round": t.round, "task": t.task, "request": t.request, "status": t.status,
             "assets": ", ".join(t.assets), "payouts": sum(t.payouts), "charge": t.charge,
             "paid": bool(t.success and t.sla_met) if t.status == "settled" else None}
            for t in ledger.tasks(round_, status)
        ]  # fmt: skip
    if as_json:
        print_json(rows)
    else:
        print_table("tasks", rows)
