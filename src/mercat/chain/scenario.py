"""Random market scenarios, and their replay on any book.

`random_scenario` draws a list of operations (`mercat.chain.ops`) from a seed: accounts and
deposits, servers and a named app with their offers, then rounds of requests, tasks (what
a mechanism's clearing of the round's market assigns, `mercat.runtime.money.assign`),
settlements with random outcomes and SLA verdicts, withdrawals, expiries, unstaking,
releases and replacement of removed assets. Among them are operations a market must
refuse: tasks that charge beyond an escrow, pay a server below its ask, bind an asset
nobody offered or a removed one, skip a named asset, give a server a capability it lacks
or more than its capacity, subsidise from the pool, name an unknown request or repeat an
id; a second settlement, a settlement of an unknown task; a retirement while a task runs,
an unstake below the minimum, a release before the delay, an overdraft, a stranger's
offer or withdrawal, a taken id or CID. The Python reference (`ReferenceBook`) says which
are refused and with which error (`Op.expect`).

`apply(book, op)` sends one operation to a book with the reference's methods (the
reference, `ChainBook`, the SQL ledger through an adapter); `replay` runs a whole
scenario and checks every refusal against `Op.expect`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mercat.chain.ops import (
    AdvanceRound,
    Fund,
    FundPool,
    Op,
    OpenAccount,
    OpenTasks,
    PostOffer,
    PostRequest,
    Register,
    Release,
    ReplaceAsset,
    SettleTasks,
    TaskVerdict,
    Unstake,
    Withdraw,
    WithdrawRequest,
)
from mercat.chain.reference import ReferenceBook
from mercat.clearing import registry
from mercat.errors import MercatError
from mercat.incentives.integer_rule import IntegerRule
from mercat.runtime.attest import Attestation
from mercat.runtime.money import assign
from mercat.runtime.snapshot import snapshot
from mercat.runtime.terms import Offer, RequestTerms, TaskTerms

APP_CID = "bafkapp"


@dataclass(frozen=True)
class ScenarioConfig:
    """Shape of a random scenario. Amounts are in base units; `stake` is what every asset
    enters with (None: two and a half penalties, so an asset is removed by its third
    failure unless rewards lift it)."""

    owners: int = 2
    requesters: int = 2
    servers: int = 5
    rounds: int = 5
    requests_per_round: int = 5
    stake: int | None = None
    funding: int = 400_000
    pool_funding: int = 50_000
    failure_rate: float = 0.3
    late_rate: float = 0.15
    refusals: float = 0.5  # chance of each kind of refused operation in a round
    mechanism: str = "optimal"


def apply(book: Any, op: Op) -> Any:
    """Send one operation to `book` (a `ReferenceBook`, `ChainBook` or ledger adapter)."""
    match op:
        case OpenAccount(account=a):
            return book.open_account(a)
        case Fund(account=a, amount=x):
            return book.deposit(a, x)
        case Withdraw(account=a, amount=x):
            return book.withdraw(a, x)
        case FundPool(account=a, amount=x):
            return book.fund_pool(a, x)
        case Register(owner=o, asset=a, stake=s):
            return book.add_asset(o, a, s)
        case PostOffer(owner=o, offer=offer):
            return book.post_offer(o, offer)
        case Unstake(owner=o, asset=a, amount=x):
            return book.unstake(o, a, x)
        case Release(account=a):
            return book.release(a)
        case ReplaceAsset(owner=o, old=old, new=new, stake=s):
            return book.replace_asset(o, old, new, s)
        case AdvanceRound(round=r):
            return book.advance_round(r)
        case PostRequest(owner=o, terms=terms):
            return book.post_request(o, terms)
        case WithdrawRequest(signer=s, request=r):
            return book.withdraw_request(s, r)
        case OpenTasks(round=r, tasks=tasks, margin_to=margin_to):
            return book.open_tasks(r, tasks, margin_to)
        case SettleTasks(round=r, verdicts=verdicts):
            attestations = [
                Attestation(v.task, v.success, v.sla_met, 1 if v.sla_met else 2) for v in verdicts
            ]
            return book.settle(r, attestations)
    raise TypeError(f"not an operation: {op!r}")


def refused_with(book: Any, op: Op) -> str | None:
    """Apply `op`; the name of the error class it raised, None if it was accepted."""
    try:
        apply(book, op)
    except MercatError as exc:
        return type(exc).__name__
    return None


def replay(
    book: Any, ops: Sequence[Op], checkpoint: Callable[[int, Op], None] | None = None
) -> list[str | None]:
    """Apply `ops` to `book` in order. An operation marked `expect` must raise that error
    (or a subclass) and one not marked must pass: AssertionError otherwise. `checkpoint`
    is called after each operation. Returns the expected error of each (None: accepted)."""
    raised: list[str | None] = []
    for i, op in enumerate(ops):
        try:
            apply(book, op)
        except MercatError as exc:
            names = {cls.__name__ for cls in type(exc).__mro__}
            if op.expect is None or op.expect not in names:
                raise AssertionError(f"op {i} {op!r} raised {exc!r}") from exc
            raised.append(op.expect)
        else:
            if op.expect is not None:
                raise AssertionError(f"op {i} {op!r} was accepted; expected {op.expect}")
            raised.append(None)
        if checkpoint is not None:
            checkpoint(i, op)
    return raised


# --- drawing a scenario ----------------------------------------------------------------------


class _Draw:
    """The state of one scenario being drawn: the reference, the generator, the ops."""

    def __init__(self, rule: IntegerRule, config: ScenarioConfig, seed: int, **book: Any):
        self.config = config
        self.rng = np.random.default_rng(seed)
        self.ref = ReferenceBook(rule, **book)
        self.ops: list[Op] = []
        self.owners = [f"owner{i}" for i in range(config.owners)]
        self.requesters = [f"requester{i}" for i in range(config.requesters)]
        self.stake = config.stake or 5 * rule.penalty // 2 + 1
        self.mechanism = registry.create(config.mechanism)

    def emit(self, op: Op) -> bool:
        expect = refused_with(self.ref, op)
        self.ops.append(replace(op, expect=expect))
        return expect is None

    def maybe(self) -> bool:
        return bool(self.rng.random() < self.config.refusals)

    def pick(self, items: Sequence[Any]) -> Any:
        return items[int(self.rng.integers(len(items)))]

    def server_offer(self, asset: str) -> Offer:
        rng = self.rng
        return Offer(
            asset,
            capacity={"gpu": int(rng.integers(2, 6)), "mem": int(rng.integers(8, 33))},
            cost=int(rng.integers(0, 300)),
            unit_costs={"gpu": int(rng.integers(0, 60)), "mem": int(rng.integers(0, 3))},
            capabilities=["cuda"] if rng.random() < 0.6 else [],
        )

    def request_terms(self, name: str, round_: int) -> RequestTerms:
        rng = self.rng
        return RequestTerms(
            name,
            max_price=int(rng.integers(500, 4000)),
            demand={"gpu": int(rng.integers(1, 4)), "mem": int(rng.integers(0, 9))},
            replicas=2 if rng.random() < 0.2 else 1,
            capabilities=["cuda"] if rng.random() < 0.25 else [],
            assets=[APP_CID] if rng.random() < 0.3 else [],
            deadline_ms=50,
            expires=round_ + int(rng.integers(0, 2)),
        )

    def active(self, kind: str = "server") -> list[str]:
        return [
            a
            for a, record in self.ref.assets.items()
            if record.status == "active" and record.offer is not None and record.offer.kind == kind
        ]


def random_scenario(
    rule: IntegerRule,
    seed: int,
    config: ScenarioConfig = ScenarioConfig(),
    *,
    unit: int = 1000,
    unstake_delay_rounds: int = 2,
) -> list[Op]:
    """Draw a scenario from `seed` (module docstring), each operation marked with the
    error the reference refuses it with."""
    d = _Draw(rule, config, seed, unit=unit, unstake_delay_rounds=unstake_delay_rounds)
    ref, operator = d.ref, d.ref.operator
    _setup(d, operator)
    for round_ in range(1, config.rounds + 1):
        _requests(d, round_)
        context = snapshot(ref.state(round_), divisible=d.mechanism.divisible)
        tasks: tuple[TaskTerms, ...] = ()
        if context.market.requests and context.market.nodes:
            clearing = d.mechanism.clear(context.market, seed=d.rng)
            tasks = assign(context, clearing)
        if tasks:
            margin_to = d.mechanism.margin_holder
            _bad_batches(d, round_, tasks, margin_to)
            d.emit(OpenTasks(round_, tasks, margin_to))
            _during_tasks(d, round_, tasks)
            _settle(d, round_, tasks)
        _stakes(d, round_)
        for record in list(ref.open_requests.values()):  # the operator withdraws expired ones
            if record.terms.expires <= round_:
                d.emit(WithdrawRequest(operator, record.request))
        d.emit(AdvanceRound(round_ + 1))
    return d.ops


def _setup(d: _Draw, operator: str) -> None:
    config, stake = d.config, d.stake
    for name in d.owners + d.requesters:
        d.emit(OpenAccount(name))
        d.emit(Fund(name, config.funding))
    d.emit(Fund(operator, config.funding))
    d.emit(FundPool(operator, config.pool_funding))
    for j in range(config.servers):
        owner = d.owners[j % len(d.owners)]
        d.emit(Register(owner, f"s{j}", stake))
        d.emit(PostOffer(owner, d.server_offer(f"s{j}")))
    d.emit(Register(d.owners[0], "app", stake))
    d.emit(PostOffer(d.owners[0], Offer("app", kind="app", cost=120, cid=APP_CID)))
    last = d.owners[-1]
    d.emit(Register(last, "bare", stake))  # staked, never offered
    # Refused: a stranger's offer, a taken id, a stake at the removal level, a taken CID,
    # an offer for an unknown asset, an overdraft, a pool funded beyond the balance.
    d.emit(PostOffer(last, d.server_offer("s0")))
    d.emit(Register(d.owners[0], "s1", stake))
    d.emit(Register(d.owners[0], "tiny", d.ref.min_stake - 1))
    d.emit(PostOffer(last, Offer("bare", kind="model", cost=5, cid=APP_CID)))
    d.emit(PostOffer(last, Offer("ghost", kind="model", cost=5)))
    d.emit(Withdraw(d.requesters[0], 10 * config.funding))
    d.emit(FundPool(d.requesters[0], 10 * config.funding))


def _requests(d: _Draw, round_: int) -> None:
    for i in range(d.config.requests_per_round):
        d.emit(
            PostRequest(
                d.requesters[i % len(d.requesters)], d.request_terms(f"q{round_}-{i}", round_)
            )
        )
    who = d.requesters[0]
    if d.maybe():  # beyond the requester's balance
        terms = replace(d.request_terms(f"rich{round_}", round_), max_price=10 * d.config.funding)
        d.emit(PostRequest(who, terms))
    if d.maybe():  # a taken id: a request's, then an asset's
        d.emit(PostRequest(who, d.request_terms(f"q{round_}-0", round_)))
        d.emit(PostRequest(who, d.request_terms("s0", round_)))
    open_ = list(d.ref.open_requests.values())
    if open_ and d.maybe():  # a stranger withdraws, then the owner does
        record = d.pick(open_)
        stranger = next(r for r in d.requesters if r != record.owner)
        d.emit(WithdrawRequest(stranger, record.request))
        d.emit(WithdrawRequest(record.owner, record.request))
    if d.maybe():
        d.emit(WithdrawRequest(who, "nobody-posted-this"))


def _bad_batches(d: _Draw, round_: int, tasks: tuple[TaskTerms, ...], margin_to: str) -> None:
    """Batches the market must refuse, each the honest one with one thing wrong."""
    first = tasks[0]
    request = d.ref.requests[first.request].terms
    removed = [a for a, r in d.ref.assets.items() if r.status in ("removed", "replaced")]
    servers = d.active()
    wrong: list[tuple[tuple[TaskTerms, ...], str]] = []

    def swap(task: TaskTerms, **changes: Any) -> tuple[TaskTerms, ...]:
        return (replace(task, **changes), *tasks[1:])

    # charges beyond the escrow; a server paid nothing; the pool subsidising
    wrong.append((swap(first, charge=request.max_price + 1), margin_to))
    wrong.append((swap(first, payouts=(0, *first.payouts[1:])), margin_to))
    if first.paid_out:
        wrong.append((swap(first, charge=0), "pool"))
    # an asset nobody offered, a removed one, one that does not exist
    wrong.append((swap(first, assets=("bare", *first.assets[1:])), margin_to))
    if removed:
        wrong.append((swap(first, assets=(d.pick(removed), *first.assets[1:])), margin_to))
    wrong.append((swap(first, assets=("ghost", *first.assets[1:])), margin_to))
    # an unknown request; an id twice; the named asset left out
    wrong.append((swap(first, request="nobody-posted-this"), margin_to))
    wrong.append(((*tasks, first), margin_to))
    for task in tasks:
        if "app" in task.assets:
            keep = [i for i, a in enumerate(task.assets) if a != "app"]
            changed = replace(
                task,
                assets=tuple(task.assets[i] for i in keep),
                payouts=tuple(task.payouts[i] for i in keep),
            )
            wrong.append((tuple(changed if t is task else t for t in tasks), margin_to))
            break
    # a capability or capacity the server lacks: every single-server task on one server
    plain = [s for s in servers if "cuda" not in d.ref.assets[s].offer.capabilities]
    for task in tasks:
        if "cuda" in d.ref.requests[task.request].terms.capabilities and plain:
            changed = replace(task, assets=(plain[0], *task.assets[1:]))
            if len(set(changed.assets)) == len(changed.assets):
                wrong.append((tuple(changed if t is task else t for t in tasks), margin_to))
                break
    if servers:
        crowd = d.pick(servers)
        crowded = tuple(
            replace(t, assets=(crowd, *t.assets[1:]))
            if crowd not in t.assets[1:] and d.ref.requests[t.request].terms.replicas == 1
            else t
            for t in tasks
        )
        wrong.append((crowded, margin_to))
    for batch, holder in wrong:
        if d.maybe():
            d.emit(OpenTasks(round_, batch, holder))


def _during_tasks(d: _Draw, round_: int, tasks: tuple[TaskTerms, ...]) -> None:
    """While the round's tasks are open: retiring one of their assets, withdrawing a
    served request, serving a request twice, a task id again."""
    first = tasks[0]
    asset = first.assets[0]
    owner = d.ref.assets[asset].owner
    if d.maybe():
        d.emit(Unstake(owner, asset, d.ref.stake_of(asset)))
    if d.maybe():
        d.emit(WithdrawRequest(d.ref.requests[first.request].owner, first.request))
    if d.maybe():
        d.emit(OpenTasks(round_, (replace(first, task=f"again{round_}"),)))
    if d.maybe():
        d.emit(OpenTasks(round_, (first,)))


def _settle(d: _Draw, round_: int, tasks: tuple[TaskTerms, ...]) -> None:
    rng, config = d.rng, d.config
    verdicts = tuple(
        TaskVerdict(
            t.task,
            bool(rng.random() >= config.failure_rate),
            bool(rng.random() >= config.late_rate),
        )
        for t in tasks
    )
    if d.maybe():
        d.emit(SettleTasks(round_, (TaskVerdict("nobody-opened-this", True, True),)))
    d.emit(SettleTasks(round_, verdicts))
    if d.maybe():
        again = verdicts[0]
        d.emit(SettleTasks(round_, (replace(again, success=not again.success),)))


def _stakes(d: _Draw, round_: int) -> None:
    """Replace removed assets (and offer the replacements), unstake, release, withdraw."""
    ref, stake = d.ref, d.stake
    for old, record in list(ref.assets.items()):
        if record.status != "removed" or record.offer is None:
            continue
        new = f"{old.split('-')[0]}-{round_}"
        if d.emit(ReplaceAsset(record.owner, old, new, stake)):
            offer = replace(record.offer, asset=new, cid=None)
            d.emit(PostOffer(record.owner, offer))
    servers = d.active()
    if len(servers) > 2:
        asset = d.pick(servers)
        owner = ref.assets[asset].owner
        have = ref.stake_of(asset)
        if d.maybe():  # leaves less than the minimum
            d.emit(Unstake(owner, asset, have - ref.min_stake + 1))
        if d.maybe():  # a little
            d.emit(Unstake(owner, asset, max(1, have - ref.min_stake - 5)))
        if d.maybe():  # someone else's
            stranger = next(o for o in d.owners if o != owner)
            d.emit(Unstake(stranger, asset, 1))
    if d.maybe():
        d.emit(Release(d.pick(d.owners)))
    if d.maybe():
        d.emit(Withdraw(d.pick(d.requesters), int(d.rng.integers(1, 5000))))
