"""Audit a ledger from its journal alone.

`verify` recomputes every balance from the postings and checks, in one read transaction:
- every entry's postings sum to zero (double entry);
- every book's stored balance equals the sum of its postings (nothing changed a balance
  outside the journal), and no posting names a book that does not exist;
- the books sum to zero (conservation: the supply is exactly what `world` gave out);
- no book other than `world` is negative;
- every settled task was settled by exactly one entry, and every `settle` entry settled
  a distinct task (each settlement applied exactly once);
- optionally, every entry's stored payload carries a valid signature of its signer, and
  its op, signer and nonce columns match the payload.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from mercat.errors import BadSignatureError, LedgerIntegrityError, MalformedMessageError
from mercat.identity import verify as verify_signature
from mercat.ledger import schema as s


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
        settle_entries = set(
            c.execute(select(s.entries.c.id).where(s.entries.c.op == "settle")).scalars()
        )
        by_entry = [row.settled_entry for row in settled]
        if len(set(by_entry)) != len(by_entry) or set(by_entry) != settle_entries:
            problems.append(
                f"{len(settled)} settled tasks but {len(settle_entries)} settle entries "
                f"({len(set(by_entry))} distinct among the tasks)"
            )

        counts = c.execute(select(func.count()).select_from(s.postings)).scalar_one()
        entries = c.execute(select(s.entries.c.id, s.entries.c.op, s.entries.c.signer,
                                   s.entries.c.nonce, s.entries.c.payload,
                                   s.entries.c.signature)).all()  # fmt: skip
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
