"""Audit a ledger from its journal alone.

`verify` recomputes every balance from the postings and checks, in one read transaction:
- every entry's postings sum to zero (double entry);
- every book's stored balance equals the sum of its postings (nothing changed a balance
  outside the journal), and no posting names a book that does not exist;
- the books sum to zero (conservation: the supply is exactly what `world` gave out);
- every amount and balance is an integer in its range (`mercat.runtime.limits`): no book
  other than `world` is negative, none reaches 2^62 (a value a store holds that is not such
  an integer, a float or text written behind the ledger's back, is reported, never summed);
- every settled task was settled by one entry, a `settle` or `settle_tasks` entry that
  names it (each settlement applied exactly once), and every such entry settled a task;
- optionally, every entry's stored payload carries a valid signature of its signer, and
  its op, signer and nonce columns match the payload;
- authority (`mercat.ledger.authority`): replaying the signed messages, every task stays
  within what its request's and its assets' owners signed, operator-only operations were
  signed by the operator, and the offers, terms and tasks tables hold what was signed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from mercat.errors import (
    BadSignatureError,
    LedgerIntegrityError,
    MalformedMessageError,
    MercatError,
)
from mercat.identity import verify as verify_signature
from mercat.ledger import schema as s
from mercat.ledger.authority import SignedRow, check_authority
from mercat.runtime.accounts import WORLD
from mercat.runtime.limits import MAX_BALANCE
from mercat.runtime.terms import TaskTerms
from mercat.untrusted import shown

_RANGE = f"not an integer in [-{MAX_BALANCE}, {MAX_BALANCE}]"
_INT64 = (-(2**63), 2**63 - 1)


def exact_int(value: object, lowest: int = _INT64[0], highest: int = _INT64[1]) -> int | None:
    """`value` if a store handed back an integer in [lowest, highest], else None. A column
    the ledger wrote holds nothing else; SQLite keeps whatever was written behind its back
    (a float, text), and `verify` reports it instead of computing with it."""
    if type(value) is int and lowest <= value <= highest:
        return value
    return None


def stored_int(value: object, what: str, lowest: int = _INT64[0], highest: int = _INT64[1]) -> int:
    """`exact_int` for a read: LedgerIntegrityError (one line, naming `what`) otherwise."""
    number = exact_int(value, lowest, highest)
    if number is None:
        raise LedgerIntegrityError(
            f"{what} holds {shown(value)}, not an integer in [{lowest}, {highest}]: the store was "
            "changed outside the ledger; run `mercat ledger verify`"
        )
    return number


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    postings: int
    books: int
    supply: int
    settled_tasks: int
    signatures_checked: int
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_ledger(engine: Engine, *, signatures: bool = True, raise_on_problem: bool = True
                  ) -> VerifyReport:  # fmt: skip
    """Check the journal against the balances (see module docstring)."""
    problems: list[str] = []
    with engine.connect() as c:
        if c.dialect.name == "postgresql":
            # One snapshot for every read below: under READ COMMITTED each statement sees
            # the commits made since the last one, and a message settled meanwhile would
            # show as postings without their balances. (SQLite: the read takes the lock.)
            c.execution_options(isolation_level="REPEATABLE READ")
        # Summed here, not by SQL: a tampered store may hold floats, text or sums beyond 64
        # bits (SQLite's SUM raises on an overflow), and each is a finding, not a crash.
        entry_sums: dict[int, int] = defaultdict(int)
        recomputed: dict[str, int] = defaultdict(int)
        rows = c.execute(select(s.postings.c.entry_id, s.postings.c.book, s.postings.c.amount))
        for entry_id, book, raw in rows:
            amount = exact_int(raw, -MAX_BALANCE, MAX_BALANCE)
            if amount is None:
                problems.append(
                    f"entry {entry_id}: posting to {shown(book)} of {shown(raw)}, {_RANGE}"
                )
                continue
            entry_sums[entry_id] += amount
            recomputed[book] += amount
        problems += [
            f"entry {e} is unbalanced by {total}" for e, total in entry_sums.items() if total
        ]
        stored: dict[str, int] = {}
        for book, raw in c.execute(select(s.books.c.name, s.books.c.balance)):
            lowest, highest = (-MAX_BALANCE, 0) if book == WORLD else (0, MAX_BALANCE)
            balance = exact_int(raw, lowest, highest)
            if balance is None:
                problems.append(
                    f"book {shown(book)} holds {shown(raw)}, "
                    f"not an integer in [{lowest}, {highest}]"
                )
                balance = exact_int(raw)  # still compared with its postings if an integer
                if balance is None:
                    continue
            stored[book] = balance
        for book in sorted(set(recomputed) | set(stored)):
            if book not in stored:
                problems.append(f"postings to unknown book {shown(book)}")
            elif recomputed.get(book, 0) != stored[book]:
                problems.append(
                    f"book {shown(book)} holds {stored[book]}, its postings sum to "
                    f"{recomputed.get(book, 0)}"
                )
        total = sum(stored.values())
        if total != 0:
            problems.append(f"books sum to {total}, not 0: tokens were created or lost")

        settled = c.execute(
            select(s.tasks.c.round, s.tasks.c.task, s.tasks.c.settled_entry).where(
                s.tasks.c.status == "settled"
            )
        ).all()
        settle_rows = c.execute(
            select(s.entries.c.id, s.entries.c.op, s.entries.c.payload).where(
                s.entries.c.op.in_(("settle", "settle_tasks"))
            )
        ).all()
        problems += _settlement_problems(settled, settle_rows)

        counts = c.execute(select(func.count()).select_from(s.postings)).scalar_one()
        entries = c.execute(select(s.entries.c.id, s.entries.c.op, s.entries.c.signer,
                                   s.entries.c.nonce, s.entries.c.payload,
                                   s.entries.c.signature)).all()  # fmt: skip
        problems += _authority_problems(c, operator_of(c), entries)
    checked = 0
    if signatures:
        for row in entries:
            try:
                payload = json.loads(row.payload)
                if (payload["op"], payload["signer"], payload["nonce"]) != (
                    row.op, row.signer, row.nonce,
                ):  # fmt: skip
                    raise MalformedMessageError("columns differ from the payload")
                verify_signature(row.signer, row.payload.encode(), bytes.fromhex(row.signature))
                checked += 1
            except (
                BadSignatureError, MalformedMessageError, ValueError, KeyError, TypeError,
                AttributeError,
            ) as exc:  # fmt: skip
                problems.append(f"entry {row.id}: {exc}")
    report = VerifyReport(
        entries=len(entries),
        postings=int(counts),
        books=len(stored),
        supply=-int(stored.get("world", 0)),
        settled_tasks=len(settled),
        signatures_checked=checked,
        problems=tuple(problems),
    )
    if raise_on_problem and problems:
        raise LedgerIntegrityError(f"{len(problems)} problem(s): " + "; ".join(problems[:5]))
    return report


def operator_of(c: Connection) -> str:
    key = c.execute(select(s.accounts.c.key).where(s.accounts.c.role == "operator")).scalar()
    return str(key)


def _settlement_problems(settled: list, settle_rows: list) -> list[str]:  # type: ignore[type-arg]
    """Each settled task by one settle entry that names it; each settle entry settled one."""
    problems = []
    named: dict[int, set[tuple[int, str]]] = {}
    for entry_id, op, payload in settle_rows:
        try:
            body = json.loads(payload)["body"]
            if op == "settle":
                named[entry_id] = {(int(body["round"]), str(body["task"]))}
            else:
                named[entry_id] = {
                    (int(body["round"]), str(i["task"])) for i in body["settlements"]
                }
        except (ValueError, KeyError, TypeError):
            problems.append(f"entry {entry_id}: a settlement payload that does not parse")
            named[entry_id] = set()
    used: set[int] = set()
    for round_, task, entry in settled:
        if entry not in named:
            problems.append(
                f"task ({round_}, {task!r}) was settled by entry {entry}, not a settlement"
            )
        elif (int(round_), str(task)) not in named[entry]:
            problems.append(
                f"task ({round_}, {task!r}) was settled by entry {entry}, which does not name it"
            )
        used.add(entry)
    idle = sorted(set(named) - used)
    if idle:
        problems.append(f"settlement entries that settled nothing: {idle[:5]}")
    return problems


def _authority_problems(c: Connection, operator: str, entries: list) -> list[str]:  # type: ignore[type-arg]
    """Read in the same transaction as `entries`: a table row and the entry that wrote it
    are seen together or not at all."""
    offers = dict(c.execute(select(s.offers.c.asset, s.offers.c.offer)).all())
    terms = dict(c.execute(select(s.requests.c.id, s.requests.c.terms)).all())
    tasks = c.execute(select(s.tasks)).all()
    members = c.execute(
        select(s.task_assets.c.round, s.task_assets.c.task, s.task_assets.c.asset,
               s.task_assets.c.payout).order_by(s.task_assets.c.position)
    ).all()  # fmt: skip
    problems: list[str] = []
    parts: dict[tuple[object, object], list[tuple[str, object]]] = {}
    for r, t, a, p in members:
        parts.setdefault((r, t), []).append((str(a), p))
    stored_tasks = {}
    for row in tasks:
        # Every number as the ledger wrote it (an exact integer below 2^62), or the task is
        # reported as it is instead of being rebuilt.
        key = (row.round, row.task)
        numbers = [row.round, row.fraction, *(p for _, p in parts.get(key, []))]
        numbers += [] if row.charge is None else [row.charge]
        if any(exact_int(n, 0, MAX_BALANCE) is None for n in numbers):
            problems.append(f"task ({shown(row.round)}, {shown(row.task)}) holds a value {_RANGE}")
            continue
        assets = tuple(a for a, _ in parts.get(key, []))
        payouts = tuple(int(p) for _, p in parts.get(key, []))  # type: ignore[call-overload]
        charge = sum(payouts) if row.charge is None else int(row.charge)
        try:
            stored_tasks[(int(row.round), str(row.task))] = TaskTerms(
                row.task, row.request, assets, payouts, charge, int(row.fraction)
            )
        except MercatError as exc:
            problems.append(
                f"task ({shown(row.round)}, {shown(row.task)}) is not a valid task: {exc}"
            )
    rows = [SignedRow(e.id, e.op, e.signer, e.payload) for e in sorted(entries, key=lambda e: e.id)]
    return problems + check_authority(rows, operator, offers, terms, stored_tasks)
