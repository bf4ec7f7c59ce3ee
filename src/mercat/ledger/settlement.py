"""Tasks on the ledger: open (escrow → hold), oracle reports, settle (idempotent).

Settling task (round, task) once a quorum of oracles agrees on its outcome:

1. the price held for it goes to the owners of its assets (success: payouts[i] to the
   owner of asset i) or back to the request's escrow (failure);
2. the collective rule (`IntegerRule`) moves every active asset's stake: reward from the
   pool, penalty into the pool, clamp excess back to the pool; all assets alike, blindly;
3. an asset at the removal level is marked removed; its remaining stake stays in its stake
   book until the owner unstakes it or replaces the asset;
4. reports that disagree with the quorum are marked `disagree`, reports on a settled task
   are kept as `late`.

Assets that are no longer active when the task settles (removed by an earlier settlement
while this task was open) are left alone: they are out of the market, and a second penalty
on an asset already at the removal level could take its stake below zero.

Idempotence: the task row (locked first) says whether it is settled; settling a settled
task changes nothing and consumes no nonce, so a worker that crashed after commit can
resend the same signed message and be told "already applied".
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, insert, select, update

from mercat.errors import (
    AlreadyExistsError,
    AssetNotActiveError,
    DuplicateReportError,
    RewardPoolExhaustedError,
    UnauthorizedError,
    UnknownOracleError,
    UnknownTaskError,
)
from mercat.ledger import messages as m
from mercat.ledger import schema as s
from mercat.ledger.context import POOL, Context, avail, escrow_book, hold_book, stake_book
from mercat.ledger.store import Txn
from mercat.oracle.quorum import QuorumRule, tally
from mercat.oracle.report import OracleReport, SignedReport


def task_status(tx: Txn, round_: int, task: str) -> tuple[str, int | None] | None:
    """(status, settled entry) of a task, row-locked on PostgreSQL; None if unknown."""
    query = select(s.tasks.c.status, s.tasks.c.settled_entry).where(
        s.tasks.c.round == round_, s.tasks.c.task == task
    )
    if tx.locking:
        query = query.with_for_update()
    row = tx.execute(query).first()
    return None if row is None else (str(row.status), row.settled_entry)


def open_task(ctx: Context, op: m.OpenTask) -> dict[str, Any]:
    ctx.require_operator("open tasks")
    ctx.request_owner(op.request)
    if task_status(ctx.tx, op.round, op.task) is not None:
        raise AlreadyExistsError(f"task ({op.round}, {op.task!r}) exists")
    hold = hold_book(op.round, op.task)
    ctx.tx.create_books({hold: "hold"})
    # Lock the assets' stake books too: an owner cannot retire an asset while it joins.
    balances = ctx.tx.lock_books([escrow_book(op.request), hold, *map(stake_book, op.assets)])
    for asset in op.assets:
        status = ctx.asset(asset)[1]
        if status != "active":
            raise AssetNotActiveError(f"asset {asset!r} is {status}")
    ctx.tx.execute(
        insert(s.tasks).values(
            round=op.round, task=op.task, request=op.request, status="open",
            opened_entry=ctx.entry_id,
        )
    )  # fmt: skip
    ctx.tx.execute(
        insert(s.task_assets),
        [
            {"round": op.round, "task": op.task, "position": i, "asset": a, "payout": p}
            for i, (a, p) in enumerate(zip(op.assets, op.payouts, strict=True))
        ],
    )
    price = sum(op.payouts)
    ctx.post({escrow_book(op.request): -price, hold: price}, balances)
    ctx.reach_round(op.round)
    return {"held": price}


def _oracle_set(ctx: Context) -> set[str]:
    rows = ctx.tx.execute(select(s.accounts.c.key).where(s.accounts.c.role == "oracle"))
    return {str(key) for key in rows.scalars()}


def _store_report(ctx: Context, signed: SignedReport, status: str) -> None:
    r = signed.report
    ctx.tx.execute(
        insert(s.oracle_reports).values(
            round=r.round, task=r.task, oracle=signed.oracle, success=r.success,
            sla_met=r.sla_met, latency_ms=r.latency_ms, digest=r.digest,
            signature=signed.signature.hex(), status=status, entry_id=ctx.entry_id,
        )
    )  # fmt: skip


def _check_report(ctx: Context, signed: SignedReport, oracles: set[str]) -> None:
    if signed.oracle not in oracles:
        raise UnknownOracleError(f"{signed.oracle[:16]}… is not in the oracle set")
    r = signed.report
    duplicate = ctx.tx.execute(
        select(s.oracle_reports.c.oracle).where(
            s.oracle_reports.c.round == r.round,
            s.oracle_reports.c.task == r.task,
            s.oracle_reports.c.oracle == signed.oracle,
        )
    ).first()
    if duplicate is not None:
        raise DuplicateReportError(f"oracle {signed.oracle[:16]}… already reported {r.task!r}")


def report(ctx: Context, op: m.Report) -> dict[str, Any]:
    r = op.report.report
    _check_report(ctx, op.report, _oracle_set(ctx))
    status = task_status(ctx.tx, r.round, r.task)
    if status is None:
        raise UnknownTaskError(f"no task ({r.round}, {r.task!r})")
    kept_as = "late" if status[0] == "settled" else "pending"
    _store_report(ctx, op.report, kept_as)
    return {"status": kept_as}


def _pending_reports(ctx: Context, round_: int, task: str) -> list[SignedReport]:
    rows = ctx.tx.execute(
        select(s.oracle_reports).where(
            s.oracle_reports.c.round == round_,
            s.oracle_reports.c.task == task,
            s.oracle_reports.c.status == "pending",
        )
    )
    return [
        SignedReport(
            OracleReport(row.round, row.task, row.success, row.sla_met, row.latency_ms, row.digest),
            row.oracle,
            bytes.fromhex(row.signature),
        )
        for row in rows
    ]


def settle(ctx: Context, op: m.Settle) -> dict[str, Any]:
    """Settle an open task (the caller has checked, under the task's lock, that it is open)."""
    if ctx.role is None:
        raise UnauthorizedError("settling needs an account")
    oracles = _oracle_set(ctx)
    for signed in op.reports:
        if (signed.report.round, signed.report.task) != (op.round, op.task):
            raise UnknownTaskError(f"a report names task {signed.report.task!r}, not {op.task!r}")
        _check_report(ctx, signed, oracles)
    reports = _pending_reports(ctx, op.round, op.task) + list(op.reports)
    # Signatures of relayed reports were checked on arrival, of inline ones before the
    # transaction began; membership and duplicates are checked here.
    verdict = tally(reports, oracles, QuorumRule(ctx.config.quorum), verify_signatures=False)
    for signed in op.reports:
        _store_report(ctx, signed, "pending")
    for oracle, status in [(o, "agree") for o in verdict.agreeing] + [
        (o, "disagree") for o in verdict.disagreeing
    ]:
        ctx.tx.execute(
            update(s.oracle_reports)
            .where(
                s.oracle_reports.c.round == op.round,
                s.oracle_reports.c.task == op.task,
                s.oracle_reports.c.oracle == oracle,
            )
            .values(status=status)
        )
    effects = _apply_outcome(ctx, op.round, op.task, verdict.success)
    ctx.tx.execute(
        update(s.tasks)
        .where(s.tasks.c.round == op.round, s.tasks.c.task == op.task)
        .values(
            status="settled", settled_entry=ctx.entry_id, success=verdict.success,
            sla_met=verdict.sla_met, latency_ms=verdict.latency_ms, digest=verdict.digest,
        )
    )  # fmt: skip
    ctx.reach_round(op.round)
    return {"success": verdict.success, "sla_met": verdict.sla_met, **effects}


def _apply_outcome(ctx: Context, round_: int, task: str, success: bool) -> dict[str, Any]:
    request = ctx.tx.execute(
        select(s.tasks.c.request).where(s.tasks.c.round == round_, s.tasks.c.task == task)
    ).scalar_one()
    members = ctx.tx.execute(
        select(s.task_assets.c.position, s.task_assets.c.asset, s.task_assets.c.payout,
               s.assets.c.owner)
        .join(s.assets, s.assets.c.id == s.task_assets.c.asset)
        .where(s.task_assets.c.round == round_, s.task_assets.c.task == task)
        .order_by(s.task_assets.c.position)
    ).all()  # fmt: skip
    hold = hold_book(round_, task)
    books = [hold, escrow_book(request), POOL]
    books += [stake_book(row.asset) for row in members] + [avail(row.owner) for row in members]
    balances = ctx.tx.lock_books(books)

    moves: dict[str, int] = {}

    def add(book: str, amount: int) -> None:
        moves[book] = moves.get(book, 0) + amount

    # 1. the price: to the nodes' owners, or back to the request.
    add(hold, -balances[hold])
    if success:
        for row in members:
            add(avail(row.owner), row.payout)
        # Payouts sum to the hold exactly (open_task held their sum).
    else:
        add(escrow_book(request), balances[hold])

    # 2-3. the collective rule on every active asset, then removal. Statuses are read
    # under the books' locks (an asset's status changes only with its stake book locked).
    status = dict(
        ctx.tx.execute(
            select(s.assets.c.id, s.assets.c.status).where(
                s.assets.c.id.in_([row.asset for row in members])
            )
        ).all()
    )
    rule = ctx.config.rule
    removed, effects = [], []
    for row in members:
        book = stake_book(row.asset)
        before = balances[book]
        active = status[row.asset] == "active"
        after = rule.updated_stake(before, success) if active else before
        gone = active and rule.removal and rule.is_ruined(after)
        add(book, after - before)
        add(POOL, before - after)
        if gone:
            removed.append(row.asset)
        effects.append({"p": row.position, "before": before, "after": after, "gone": gone})
    if removed:
        ctx.tx.execute(update(s.assets).where(s.assets.c.id.in_(removed)).values(status="removed"))
    ctx.tx.execute(
        update(s.task_assets)
        .where(
            s.task_assets.c.round == round_,
            s.task_assets.c.task == task,
            s.task_assets.c.position == bindparam("p"),
        )
        .values(stake_before=bindparam("before"), stake_after=bindparam("after"),
                removed=bindparam("gone")),
        effects,
    )  # fmt: skip
    if balances[POOL] + moves.get(POOL, 0) < 0:
        raise RewardPoolExhaustedError(
            f"the reward pool holds {balances[POOL]}, the settlement needs {-moves[POOL]} from it"
        )
    ctx.post(moves, balances)
    return {"removed": removed}
