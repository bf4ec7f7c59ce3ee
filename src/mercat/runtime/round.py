"""A round, from the book to settled tasks, one function per stage.

    state  = book.state(r)                          the book: offers, requests, stakes
    market = snapshot(state)                        1. the round's Market       (snapshot.py)
    market = admission.admit(market)                   stake-weighted admission (admission.py)
    clearing = mechanism.clear(market.market)       2. any registered mechanism  (mercat.clearing)
    tasks  = assign(market, clearing)               3. integer tasks             (money.py)
    book.open_tasks(r, tasks)                          checked against owners' terms
    outcomes = executor.execute(tasks)              4. sampled, or agents' work  (execute.py)
    attestations = attestor.attest(outcomes)        5. verdicts, signed reports  (attest.py)
    book.settle(r, attestations)                    6. pay, refund, collective rule, removal
    log.emit(...)                                   7. events                    (events.py)

A simulation and a live market differ only in what they plug in: an in-memory book with
sampled execution and direct attestation, or the SQL ledger (or the contracts) with agents
and signed oracle reports. `run_round` returns a `RoundReport` with the round's numbers.

Randomness: every stage that draws takes the one `numpy.random.Generator` the round is given,
in the order above, so the same seed gives the same round on every book.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import numpy as np

from mercat.clearing.base import Mechanism
from mercat.market.economics import welfare
from mercat.market.model import Clearing, Market
from mercat.runtime import events as ev
from mercat.runtime.admission import StakeAdmission
from mercat.runtime.attest import Attestation, Attestor, DirectAttestation
from mercat.runtime.execute import Executor, Outcome
from mercat.runtime.money import TaskSettlement, assign
from mercat.runtime.records import MarginHolder, TaskRecord
from mercat.runtime.snapshot import BookState, RoundMarket, snapshot
from mercat.runtime.terms import TaskTerms


class Book(Protocol):
    """What a round needs of a book (the in-memory book, the SQL ledger, the contracts)."""

    unit: int

    def expire(self, round_: int) -> list[str]: ...

    def state(self, round_: int) -> BookState: ...

    def open_tasks(
        self, round_: int, tasks: Sequence[TaskTerms], margin_to: MarginHolder
    ) -> list[TaskRecord]: ...

    def settle(self, round_: int, attestations: Sequence[Attestation]) -> list[TaskSettlement]: ...

    def pool(self) -> int: ...


@dataclass
class RoundPlan:
    """The pluggable stages of a round. `margin_to` defaults to the mechanism's
    (`Mechanism.margin_holder`); `admission` applies stake-weighted admission; `view`, if
    given, narrows what the book shows before the snapshot (a sub-market: say, premium
    requests on cloud servers only, cleared before an open market; a later sub-market of
    the same round sees the capacity left through `mercat.runtime.views.capacity_left`).
    `task_prefix` names the round's tasks (prefix + 0, 1, ...): sub-markets cleared in one
    round need different prefixes, since task ids are unique within a round."""

    mechanism: Mechanism
    executor: Executor
    attestor: Attestor = field(default_factory=DirectAttestation)
    admission: StakeAdmission | None = None
    margin_to: MarginHolder | None = None
    log: ev.EventLog = field(default_factory=ev.NullLog)
    batch_size: int = 10_000
    view: Callable[[BookState], BookState] | None = None
    task_prefix: str = "t"

    @property
    def margin_holder(self) -> MarginHolder:
        return self.margin_to or self.mechanism.margin_holder  # type: ignore[return-value]


@dataclass(frozen=True)
class RoundReport:
    """What a round did, in numbers."""

    round: int
    market: Market
    clearing: Clearing | None
    tasks: tuple[TaskTerms, ...]
    outcomes: tuple[Outcome, ...]
    settlements: tuple[TaskSettlement, ...]
    expired: tuple[str, ...] = ()

    @property
    def requests(self) -> int:
        return len(self.market.requests)

    @property
    def servers(self) -> int:
        return len(self.market.nodes)

    @cached_property
    def welfare(self) -> float:
        """W(α) of the clearing on the round's market (0 when nothing cleared)."""
        return 0.0 if self.clearing is None else welfare(self.market, self.clearing.allocation)

    @property
    def paid(self) -> int:
        return sum(1 for s in self.settlements if s.paid)

    @property
    def failed(self) -> int:
        return len(self.settlements) - self.paid

    @property
    def removed(self) -> tuple[str, ...]:
        return tuple(a for s in self.settlements for a in s.removed)


def run_round(book: Book, round_: int, plan: RoundPlan, rng: np.random.Generator) -> RoundReport:
    """Run one round through every stage (module docstring)."""
    log = plan.log
    # Building events costs as much as a small round; nobody listens to a NullLog.
    observed = not isinstance(log, ev.NullLog)
    expired = tuple(book.expire(round_))
    state = book.state(round_)
    if plan.view is not None:
        state = plan.view(state)
    context = snapshot(state, divisible=plan.mechanism.divisible)
    if plan.admission is not None:
        context = plan.admission.admit(context, rng)
    market = context.market
    if observed:
        log.emit(ev.RoundOpened(round_, len(market.requests), len(market.nodes), expired))
    if not market.requests or not market.nodes:
        if observed:
            log.emit(ev.RoundClosed(round_, 0, 0, 0, 0, 0, book.pool(), 0))
            log.flush()
        return RoundReport(round_, market, None, (), (), (), expired)

    clearing = plan.mechanism.clear(market, seed=rng)
    tasks = assign(context, clearing, plan.task_prefix, subsidies=plan.margin_holder != "pool")
    if tasks:
        book.open_tasks(round_, tasks, plan.margin_holder)
    outcomes = plan.executor.execute(round_, tasks, context, rng)
    attestations = plan.attestor.attest(round_, outcomes, context, rng)
    settlements: list[TaskSettlement] = []
    for start in range(0, len(attestations), plan.batch_size):
        settlements += book.settle(round_, attestations[start : start + plan.batch_size])
    report = RoundReport(
        round_, market, clearing, tasks, tuple(outcomes), tuple(settlements), expired
    )
    if observed:
        _observe(log, report, context, attestations, book.pool())
    return report


def _observe(
    log: ev.EventLog,
    report: RoundReport,
    context: RoundMarket,
    attestations: Sequence[Attestation],
    pool: int,
) -> None:
    """Every stage's events, in the order the stages ran."""
    round_ = report.round
    assert report.clearing is not None
    log.emit(_cleared(round_, context, report.clearing, report.welfare))
    for t in report.tasks:
        log.emit(
            ev.TaskOpened(round_, t.task, t.request, t.assets, t.charge, t.paid_out, t.subsidy)
        )
    for o in report.outcomes:
        log.emit(ev.TaskExecuted(round_, o.task.task, o.success, o.latency_ms))
    for a in attestations:
        log.emit(ev.TaskAttested(round_, a.task, a.success, a.sla_met, len(a.reports)))
    settlements = report.settlements
    for s in settlements:
        change = sum(e.stake_after - e.stake_before for e in s.effects)
        log.emit(
            ev.TaskSettled(
                round_, s.task, s.request, s.paid, s.charge, s.margin, s.refunded, change
            )
        )
        for e in s.effects:
            if e.removed:
                log.emit(ev.AssetRemoved(round_, s.task, e.asset, e.owner, e.stake_after))
    log.emit(
        ev.RoundClosed(
            round_,
            len(report.tasks),
            report.paid,
            report.failed,
            sum(s.charge for s in settlements),
            sum(s.margin for s in settlements),
            pool,
            len(report.removed),
        )
    )
    log.flush()


def _cleared(round_: int, context: RoundMarket, clearing: Clearing, achieved: float) -> ev.Cleared:
    prices = {}
    for request_id in sorted(clearing.allocation.served_requests):
        request = context.market.request(request_id)
        units = sum(request.demand) or 1.0
        prices[request_id] = clearing.payment(request_id) / units
    return ev.Cleared(
        round_,
        clearing.mechanism,
        len(clearing.allocation.served_requests),
        achieved,
        float(sum(clearing.payments.values())),
        float(sum(clearing.rewards.values())),
        clearing.proven,
        prices,
    )
