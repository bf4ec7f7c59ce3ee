"""Audit a ledger from its journal alone.

`verify` recomputes every balance from the postings and checks, in one read transaction:
- every entry's postings sum to zero (double entry);
- every book's stored balance equals the sum of its postings (nothing changed a balance
  outside the journal), and no posting names a book that does not exist;
- the books sum to zero (conservation: the supply is exactly what `world` gave out);
- no book other than `world` is negative;
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
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from mercat.errors import BadSignatureError, LedgerIntegrityError, MalformedMessageError
from mercat.identity import verify as verify_signature
from mercat.ledger import schema as s
from mercat.ledger.authority import SignedRow, check_authority
from mercat.runtime.terms import TaskTerms


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
        unbalanced = c.execute(
            select(s.postings.c.entry_id, func.sum(s.postings.c.amount))
            .group_by(s.postings.c.entry_id)
            .having(func.sum(s.postings.c.amount) != 0)
        ).all()
        problems += [f"entry {e} is unbalanced by {total}" for e, total in unbalanced]

        recomputed = dict(
            c.execute(
                select(s.postings.c.book, func.sum(s.postings.c.amount)).group_by(s.postings.c.book)
            ).all()
        )
        stored = dict(c.execute(select(s.books.c.name, s.books.c.balance)).all())
        for book in sorted(set(recomputed) | set(stored)):
            if book not in stored:
                problems.append(f"postings to unknown book {book!r}")
            elif int(recomputed.get(book, 0)) != int(stored[book]):
                problems.append(
                    f"book {book!r} holds {stored[book]}, its postings sum to "
                    f"{recomputed.get(book, 0)}"
                )
        total = sum(int(v) for v in stored.values())
        if total != 0:
            problems.append(f"books sum to {total}, not 0: tokens were created or lost")
        problems += [
            f"book {name!r} is negative ({balance})"
            for name, balance in stored.items()
            if name != "world" and balance < 0
        ]

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
    problems += _authority_problems(engine, operator_of(engine), entries)
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
            except (BadSignatureError, MalformedMessageError, ValueError, KeyError) as exc:
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


def operator_of(engine: Engine) -> str:
    with engine.connect() as c:
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


def _authority_problems(engine: Engine, operator: str, entries: list) -> list[str]:  # type: ignore[type-arg]
    with engine.connect() as c:
        offers = dict(c.execute(select(s.offers.c.asset, s.offers.c.offer)).all())
        terms = dict(c.execute(select(s.requests.c.id, s.requests.c.terms)).all())
        tasks = c.execute(select(s.tasks)).all()
        members = c.execute(
            select(s.task_assets.c.round, s.task_assets.c.task, s.task_assets.c.asset,
                   s.task_assets.c.payout).order_by(s.task_assets.c.position)
        ).all()  # fmt: skip
    parts: dict[tuple[int, str], list[tuple[str, int]]] = {}
    for r, t, a, p in members:
        parts.setdefault((int(r), str(t)), []).append((str(a), int(p)))
    stored_tasks = {}
    for row in tasks:
        key = (int(row.round), str(row.task))
        assets = tuple(a for a, _ in parts.get(key, []))
        payouts = tuple(p for _, p in parts.get(key, []))
        charge = sum(payouts) if row.charge is None else int(row.charge)
        stored_tasks[key] = TaskTerms(
            row.task, row.request, assets, payouts, charge, int(row.fraction)
        )
    rows = [SignedRow(e.id, e.op, e.signer, e.payload) for e in sorted(entries, key=lambda e: e.id)]
    return check_authority(rows, operator, offers, terms, stored_tasks)
