"""`mercat ledger ...`: create, inspect and audit a ledger store.

The store is chosen by `--ledger` (or MERCAT_LEDGER_URL; `--url` is its old name):
`sqlite:///path.db` by default, `postgresql+psycopg://user@host/db` for scale. Amounts are
printed in base units.

Every setting is checked before anything is written: a refused `init` leaves neither a store
nor a key file behind, and the reading commands open a SQLite file read-only until they know
it is a ledger.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal

import typer

from mercat.cli._help import MercatTyper
from mercat.cli._options import json_option, ledger_option
from mercat.cli._output import console, print_json, print_mapping, print_table
from mercat.errors import InvalidParameterError, LedgerUnavailableError

app = MercatTyper(
    help="The ledger: accounts, balances, stakes, escrow, journal.",
    no_args_is_help=True,
    renamed={"--url": "--ledger", "--mechanism": "--collective", "--initial-stake": "--stake"},
)

DEFAULT_URL = "sqlite:///mercat-ledger.db"

UrlOption = ledger_option(
    help=f"The ledger's store URL (default: $MERCAT_LEDGER_URL or {DEFAULT_URL})."
)
JsonOption = json_option()


def _url(url: str | None) -> str:
    """The store's URL: `--ledger`, else MERCAT_LEDGER_URL (unset or empty: the default). An
    empty `--ledger` is refused, not replaced by the default."""
    if url is not None:
        if not url.strip():
            raise LedgerUnavailableError("--ledger is empty; give the store's URL or leave it out")
        return url
    return os.environ.get("MERCAT_LEDGER_URL") or DEFAULT_URL


def _open(url: str | None):  # type: ignore[no-untyped-def]
    from mercat.ledger import Ledger

    return Ledger(_url(url))


@app.command()
def init(
    url: str | None = UrlOption,
    operator_key: Path = typer.Option(
        Path("operator.key"), help="Operator's key file (hex seed); created (mode 600) if missing."
    ),
    mechanism: Literal["free", "coll-stake", "coll-rep", "coll-sr"] = typer.Option(
        "coll-stake",
        "--collective",
        help="Collective rule the ledger enforces (it stores seed 000's four).",
    ),
    penalty: float = typer.Option(1.0, help="Penalty P in tokens."),
    target: float = typer.Option(0.01, help="Target task failure rate; sets R = F·P/(1-F)."),
    initial_stake: float = typer.Option(
        10.0, "--stake", help="S0, the initial stake in tokens (the clamp of rep/sr)."
    ),
    unit: int = typer.Option(10**6, help="Base units per token."),
    unstake_delay: int = typer.Option(10, help="Rounds unstaked tokens wait before release."),
    quorum: int = typer.Option(1, help="Oracles that must agree before a task settles."),
    as_json: bool = JsonOption,
) -> None:
    """Create a ledger: schema (Alembic migrations), rule, operator account."""
    from mercat.identity import Keypair
    from mercat.incentives.collective import mechanism as find_mechanism
    from mercat.ledger import IntegerRule, Ledger, LedgerConfig
    from mercat.ledger.config import MAX_QUORUM, MAX_UNIT, MAX_UNSTAKE_DELAY
    from mercat.ledger.store import store_url

    # Everything is checked before anything is written.
    target_url = _url(url)
    store_url(target_url)
    _check_range("--unit", unit, 1, MAX_UNIT)
    _check_range("--unstake-delay", unstake_delay, 0, MAX_UNSTAKE_DELAY)
    _check_range("--quorum", quorum, 1, MAX_QUORUM)
    for option, tokens in (("--penalty", penalty), ("--stake", initial_stake)):
        _check_tokens(option, tokens, unit)
    rule = IntegerRule.from_collective(
        find_mechanism(mechanism).rule(initial_stake, target, penalty), unit
    )
    key_exists = operator_key.exists()
    if key_exists:
        key = Keypair.from_file(operator_key)
    else:
        if not operator_key.parent.is_dir():
            raise InvalidParameterError(
                f"cannot create the operator key {operator_key}: no folder {operator_key.parent}"
            )
        key = Keypair.generate()
    config = LedgerConfig(
        operator=key.public, rule=rule, unstake_delay_rounds=unstake_delay, quorum=quorum, unit=unit
    )
    # The key goes to disk before the ledger names it as its operator (a ledger whose
    # operator key was lost could never deposit again), and is removed if the ledger could
    # not be created.
    if not key_exists:
        _write_key(operator_key, key.seed.hex() + "\n")
    try:
        ledger = Ledger.init(target_url, config)
    except BaseException:
        if not key_exists:
            operator_key.unlink(missing_ok=True)
        raise
    with ledger:
        summary = {
            "url": target_url,
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


def _check_range(option: str, value: int, lowest: int, highest: int) -> None:
    if not lowest <= value <= highest:
        raise InvalidParameterError(f"{option} must be in [{lowest}, {highest}], got {value}")


def _check_tokens(option: str, tokens: float, unit: int) -> None:
    """An amount of tokens given on the command line: finite, positive, and a whole number
    of base units below 2^62 at `unit` base units per token."""
    from mercat.runtime.limits import MAX_BALANCE

    if not math.isfinite(tokens) or tokens <= 0:
        raise InvalidParameterError(f"{option} must be a finite number of tokens > 0, got {tokens}")
    if tokens * unit > MAX_BALANCE:
        raise InvalidParameterError(
            f"{option} {tokens:g} tokens is {tokens * unit:.3g} base units at --unit {unit}; "
            f"amounts stay below 2^62 ({MAX_BALANCE + 1:.3g})"
        )


def _write_key(path: Path, text: str) -> None:
    """Create the key file, readable by its owner only; refuse to replace a file that
    appeared meanwhile."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise InvalidParameterError(
            f"cannot create the operator key {path}: {exc.strerror}"
        ) from None
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


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
    limit: int = typer.Option(50, help="At most this many entries."),
    after: int = typer.Option(0, help="Only entries with a larger id."),
    as_json: bool = JsonOption,
) -> None:
    """The journal, oldest first: each accepted message and its postings."""
    from mercat.ledger.ledger import MAX_JOURNAL_PAGE
    from mercat.runtime.terms import MAX_INT

    _check_range("--limit", limit, 1, MAX_JOURNAL_PAGE)
    _check_range("--after", after, 0, MAX_INT - 1)
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
    status: Literal["open", "assigned", "closed"] | None = typer.Option(
        None, help="Only requests in this state."
    ),
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
    status: Literal["open", "settled"] | None = typer.Option(
        None, help="Only tasks in this state."
    ),
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
