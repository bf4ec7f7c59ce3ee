"""Offers, requests and tasks on the ledger: what owners sign, the operator opens, oracles
attest and anyone settles. The money itself follows `mercat.runtime.money` (the same code
the in-memory book runs), through `SqlBookTxn`.

- `post_offer`: an asset's owner states its kind and terms (replacing an earlier offer); a
  CID names at most one asset.
- `post_request`: the signer posts terms and escrows their `max_price`; request and asset ids
  share one namespace (a round's market names both).
- `refund`: the owner (or the operator) withdraws an open request.
- `open_tasks`: the operator opens tasks of a round, each checked against the terms its
  request's and its assets' owners signed (`TermsViolationError` otherwise).
- `report`: anyone relays an oracle's signed report (pending before settlement, late after).
- `settle` / `settle_tasks`: once a quorum of oracles agrees on a task's outcome, the task
  pays (success with its SLA met) or not, the collective rule moves every active asset's
  stake, ruined assets are removed, and a request whose last task settled closes. Reports
  that disagree with the quorum are marked `disagree`, reports on a settled task `late`.
  Settling a settled task changes nothing: a message resent after a crash is answered
  "already applied"; a batch that mixes settled and open tasks is refused whole.

Assets that are no longer active when a task settles (removed by an earlier settlement while
this task was open) are left alone: they are out of the market, and a second penalty on an
asset at the removal level could take its stake below zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update

from mercat.errors import (
    AlreadyExistsError,
    AssetNotActiveError,
    DuplicateReportError,
    UnauthorizedError,
    UnknownOracleError,
    UnknownTaskError,
    WrongLedgerError,
)
from mercat.ledger import messages as m
from mercat.ledger import schema as s
from mercat.ledger.book_txn import SqlBookTxn, canonical_json
from mercat.ledger.bulk import insert_rows, select_in, update_rows
from mercat.ledger.context import Context, avail, escrow_book, hold_book, stake_book
from mercat.ledger.store import Txn
from mercat.oracle.quorum import QuorumRule, tally
from mercat.oracle.report import OracleReport, SignedReport
from mercat.runtime import money


def task_status(tx: Txn, round_: int, task: str) -> tuple[str, int | None] | None:
    """(status, settled entry) of a task, row-locked on PostgreSQL; None if unknown."""
    query = select(s.tasks.c.status, s.tasks.c.settled_entry).where(
        s.tasks.c.round == round_, s.tasks.c.task == task
    )
    if tx.locking:
        query = query.with_for_update()
    row = tx.execute(query).first()
    return None if row is None else (str(row.status), row.settled_entry)


def _id_taken(ctx: Context, identifier: str) -> bool:
    """Request and asset ids share one namespace: a round's market names both."""
    for table in (s.assets, s.requests):
        if ctx.tx.execute(select(table.c.id).where(table.c.id == identifier)).first():
            return True
    return False


# --- offers and requests -------------------------------------------------------------------


def post_offer(ctx: Context, op: m.PostOffer) -> dict[str, Any]:
    offer = op.offer
    owner, status = ctx.asset(offer.asset)
    if owner != ctx.signer:
        raise UnauthorizedError(f"asset {offer.asset!r} belongs to another account")
    if status != "active":
        raise AssetNotActiveError(f"asset {offer.asset!r} is {status}")
    if offer.cid is not None:
        holder = ctx.tx.execute(select(s.offers.c.asset).where(s.offers.c.cid == offer.cid))
        holder = holder.scalar()
        if holder is not None and holder != offer.asset:
            raise AlreadyExistsError(f"CID {offer.cid} is offered by asset {holder!r}")
    row = {
        "kind": offer.kind,
        "offer": canonical_json(offer.to_wire()),
        "cid": offer.cid,
        "entry_id": ctx.entry_id,
    }
    exists = ctx.tx.execute(select(s.offers.c.asset).where(s.offers.c.asset == offer.asset))
    if exists.first() is None:
        ctx.tx.execute(insert(s.offers).values(asset=offer.asset, **row))
    else:
        ctx.tx.execute(update(s.offers).where(s.offers.c.asset == offer.asset).values(**row))
    return {"asset": offer.asset}


def post_request(ctx: Context, op: m.PostRequest) -> dict[str, Any]:
    terms = op.terms
    if _id_taken(ctx, terms.request):
        raise AlreadyExistsError(f"id {terms.request!r} is taken (by a request or an asset)")
    ctx.tx.execute(
        insert(s.requests).values(
            id=terms.request, owner=ctx.signer, terms=canonical_json(terms.to_wire()),
            status="open", entry_id=ctx.entry_id,
        )
    )  # fmt: skip
    ctx.tx.create_books({escrow_book(terms.request): "escrow"})
    own, escrow = avail(ctx.signer), escrow_book(terms.request)
    balances = ctx.tx.lock_books([own, escrow])
    ctx.post({own: -terms.max_price, escrow: terms.max_price}, balances)
    return {"request": terms.request, "escrowed": terms.max_price}


def refund(ctx: Context, op: m.Refund) -> dict[str, Any]:
    txn = SqlBookTxn(ctx.tx, ctx.config.operator, ctx.entry_id)
    amount = money.withdraw_request(txn, op.request, ctx.signer)
    txn.flush()
    return {"refunded": amount}


# --- tasks ---------------------------------------------------------------------------------


def open_tasks(ctx: Context, op: m.OpenTasks) -> dict[str, Any]:
    ctx.require_operator("open tasks")
    txn = SqlBookTxn(ctx.tx, ctx.config.operator, ctx.entry_id)
    txn.prefetch_requests(t.request for t in op.tasks)
    txn.prefetch_assets(a for t in op.tasks for a in t.assets)
    txn.prefetch_tasks(op.round, (t.task for t in op.tasks))
    opened = money.open_tasks(txn, op.round, op.tasks, op.margin_to)  # type: ignore[arg-type]
    txn.flush()
    ctx.reach_round(op.round)
    return {"opened": len(opened), "held": sum(r.terms.held for r in opened)}


def _oracle_set(ctx: Context) -> set[str]:
    rows = ctx.tx.execute(select(s.accounts.c.key).where(s.accounts.c.role == "oracle"))
    return {str(key) for key in rows.scalars()}


def _check_report(ctx: Context, signed: SignedReport, oracles: set[str]) -> None:
    if signed.oracle not in oracles:
        raise UnknownOracleError(f"{signed.oracle[:16]}… is not in the oracle set")
    if signed.report.ledger != ctx.config.ledger_id:
        raise WrongLedgerError(f"a report by {signed.oracle[:16]}… was signed for another ledger")


def _report_row(ctx: Context, signed: SignedReport, status: str) -> dict[str, Any]:
    r = signed.report
    return {
        "round": r.round, "task": r.task, "oracle": signed.oracle, "success": r.success,
        "sla_met": r.sla_met, "latency_ms": r.latency_ms, "digest": r.digest,
        "signature": signed.signature.hex(), "status": status, "entry_id": ctx.entry_id,
    }  # fmt: skip


def report(ctx: Context, op: m.Report) -> dict[str, Any]:
    r = op.report.report
    _check_report(ctx, op.report, _oracle_set(ctx))
    status = task_status(ctx.tx, r.round, r.task)
    if status is None:
        raise UnknownTaskError(f"no task ({r.round}, {r.task!r})")
    duplicate = ctx.tx.execute(
        select(s.oracle_reports.c.oracle).where(
            s.oracle_reports.c.round == r.round,
            s.oracle_reports.c.task == r.task,
            s.oracle_reports.c.oracle == op.report.oracle,
        )
    ).first()
    if duplicate is not None:
        raise DuplicateReportError(f"oracle {op.report.oracle[:16]}… already reported {r.task!r}")
    kept_as = "late" if status[0] == "settled" else "pending"
    ctx.tx.execute(insert(s.oracle_reports).values(**_report_row(ctx, op.report, kept_as)))
    return {"status": kept_as}


def settle(ctx: Context, op: m.Settle) -> dict[str, Any]:
    """Settle one open task (the caller checked, under the task's lock, that it is open)."""
    outcome = _settle_batch(ctx, op.round, [m.TaskReports(op.task, op.reports)])
    return outcome[0] if outcome else {}


def settle_tasks(ctx: Context, op: m.SettleTasks) -> dict[str, Any]:
    """Settle a batch, all or nothing."""
    done = _settle_batch(ctx, op.round, op.settlements)
    return {
        "settled": len(done),
        "paid": sum(1 for d in done if d["paid"]),
        "removed": [a for d in done for a in d["removed"]],
        "tasks": done,
    }


def _settle_batch(
    ctx: Context, round_: int, items: Sequence[m.TaskReports]
) -> list[dict[str, Any]]:
    if ctx.role is None:
        raise UnauthorizedError("settling needs an account")
    names = [item.task for item in items]
    if len(set(names)) != len(names):
        raise DuplicateReportError("a batch names a task twice")
    oracles = _oracle_set(ctx)
    quorum = QuorumRule(ctx.config.quorum)
    txn = SqlBookTxn(ctx.tx, ctx.config.operator, ctx.entry_id)
    txn.prefetch_tasks(round_, names)
    todo = []
    records = []
    for item in items:
        record = txn.task(round_, item.task)
        if record is None:
            raise UnknownTaskError(f"no task ({round_}, {item.task!r})")
        if record.status == "settled":
            # A batch whose tasks are all settled was answered "already applied" before
            # this point (a resend); one that mixes settled and open tasks is refused whole,
            # as the in-memory book and the contracts refuse it.
            raise AlreadyExistsError(f"task ({round_}, {item.task!r}) is settled")
        for signed in item.reports:
            if (signed.report.round, signed.report.task) != (round_, item.task):
                raise UnknownTaskError(
                    f"a report names task {signed.report.task!r}, not {item.task!r}"
                )
            _check_report(ctx, signed, oracles)
        todo.append(item)
        records.append(record)
    if not todo:
        return []
    pending = _pending_reports(ctx, round_, [item.task for item in todo])
    verdicts = {}
    for item in todo:
        reports = list(item.reports)
        relayed = pending.get(item.task)
        if relayed:
            known = {r.oracle for r in relayed}
            again = [r.oracle for r in reports if r.oracle in known]
            if again:
                raise DuplicateReportError(
                    f"oracle {again[0][:16]}… already reported {item.task!r}"
                )
            reports = relayed + reports
        # Signatures of relayed reports were checked on arrival, of inline ones before the
        # transaction began; membership and duplicates are checked here.
        verdicts[item.task] = tally(reports, oracles, quorum, verify_signatures=False)

    # Everything a batch reads, in a few queries: the tasks' assets (their owners and
    # status), requests (owner and open tasks, not the terms) and every book they touch.
    assets = {a for r in records for a in r.terms.assets}
    requests = {r.terms.request for r in records}
    txn.prefetch_assets(assets)
    txn.prefetch_requests(requests, terms=False)
    books = {"pool", avail(ctx.config.operator)}
    books.update(hold_book(round_, r.terms.task) for r in records)
    for request in requests:
        books.add(escrow_book(request))
        books.add(avail(txn.request(request).owner))
    for asset in assets:
        books.add(stake_book(asset))
        books.add(avail(txn.asset(asset).owner))
    txn.prefetch_books(books)

    # The money rule's batch form: one posting for the batch (its twin, settling task by
    # task, is held equal to it in tests/runtime/test_batch.py and, through this ledger,
    # by the parity tests).
    paid_of = {task: v.success and v.sla_met for task, v in verdicts.items()}
    settlements = money.settle_tasks(
        txn, round_, [(item.task, paid_of[item.task]) for item in todo], ctx.config.rule
    )
    done = []
    for settled in settlements:
        verdict = verdicts[settled.task]
        txn.record_settlement(round_, settled.task, verdict, settled.effects)
        done.append(
            {"task": settled.task, "request": settled.request, "success": verdict.success,
             "sla_met": verdict.sla_met, "paid": settled.paid, "removed": list(settled.removed),
             "charge": settled.charge, "margin": settled.margin, "refunded": settled.refunded,
             "payouts": dict(settled.payouts),
             "effects": [[e.asset, e.owner, e.stake_before, e.stake_after, e.removed]
                         for e in settled.effects]}
        )  # fmt: skip
    txn.flush()
    _store_reports(ctx, round_, todo, verdicts)
    ctx.reach_round(round_)
    return done


def _pending_reports(
    ctx: Context, round_: int, tasks: Sequence[str]
) -> dict[str, list[SignedReport]]:
    out: dict[str, list[SignedReport]] = {}
    ledger = ctx.config.ledger_id
    for start in range(0, len(tasks), 4000):
        rows = select_in(
            ctx.tx,
            "SELECT task, oracle, success, sla_met, latency_ms, digest, signature "
            "FROM oracle_reports WHERE round = ? AND status = ? AND {in}", "task",
            tasks[start : start + 4000], round_, "pending",
        )  # fmt: skip
        for task, oracle, success, sla_met, latency_ms, digest, signature in rows:
            # the driver's own values: SQLite gives a boolean column as 0 or 1
            report = OracleReport(
                round_, task, bool(success), bool(sla_met), int(latency_ms), digest, ledger
            )
            out.setdefault(task, []).append(SignedReport(report, oracle, bytes.fromhex(signature)))
    return out


def _store_reports(
    ctx: Context, round_: int, items: Sequence[m.TaskReports], verdicts: dict[str, Any]
) -> None:
    """Keep every report of the settled tasks with what the quorum made of it: the inline
    ones are written with it, the relayed (pending) ones are marked."""
    marks: dict[tuple[str, str], str] = {}
    for task, verdict in verdicts.items():
        for oracle in verdict.agreeing:
            marks[(task, oracle)] = "agree"
        for oracle in verdict.disagreeing:
            marks[(task, oracle)] = "disagree"
    inline = set()
    rows = []
    for item in items:
        for signed in item.reports:
            r = signed.report
            inline.add((item.task, signed.oracle))
            rows.append(
                (r.round, r.task, signed.oracle, r.success, r.sla_met, r.latency_ms, r.digest,
                 signed.signature.hex(), marks.get((item.task, signed.oracle), "pending"),
                 ctx.entry_id)
            )  # fmt: skip
    insert_rows(ctx.tx, "oracle_reports", REPORT_COLUMNS, rows)
    relayed = [(st, round_, t, o) for (t, o), st in marks.items() if (t, o) not in inline]
    update_rows(ctx.tx, "oracle_reports", ("status",), ("round", "task", "oracle"), relayed)


REPORT_COLUMNS = ("round", "task", "oracle", "success", "sla_met", "latency_ms", "digest",
                  "signature", "status", "entry_id")  # fmt: skip
