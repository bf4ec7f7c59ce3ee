"""The money rule: from a clearing in floats to tasks in integer base units, and what opening
and settling a task does to a book.

**From clearing to tasks** (`assign`). A mechanism returns π(t) per request and φ(n) per node,
in tokens (floats). The rule, in base units (`unit` per token):

1. Tasks. An indivisible request served by nodes α(t) is one task binding every node of α(t)
   and every asset the request names (app, dataset, model). A divisible request gets one
   task per node that serves part of it, with `fraction` = ⌊share·10^9⌋ of its demand
   (rounded down, so capacities and the whole request are never exceeded).
2. Charge. The request pays C = min(round(π(t)·unit), max_price - Σ named assets' costs) for
   the servers, plus its named assets' costs; a divisible request's C and each named cost
   are split over its tasks in proportion to their fractions (largest remainder, so the parts
   add up exactly).
3. Payouts. Server n receives R_n = max(round(φ(n)·unit), its ask) where its ask is its fixed
   cost plus ⌈Σ unit costs × units served⌉: never below what its owner signed, even where a
   float rounds down. R_n is split over n's tasks in proportion to the resource units each
   task takes of n (equally if the request needs none), by largest remainder. A named asset
   receives its cost (split as in 2).
4. Margin. Per task, margin = charge - Σ payouts. Budget balance (Σπ ≥ Σφ) holds over the
   whole round, not per task: a mechanism may charge one request less than its nodes receive
   and another more. The book holds max(charge, Σ payouts) when the task opens; the
   shortfall (the *subsidy*) comes from the margin holder, and the margin goes to it when the
   task succeeds. The margin holder is the operator's account for mechanisms whose
   market-maker keeps the margin (posted prices, the centralized optimum), the collective
   reward pool for auctions (double auction, VCG), whose margins are never negative per task
   (a double-auction trade pays the buyers' price on the sellers' quantity; a VCG payment
   goes to the serving provider); a pool-held round with a subsidy is refused.
5. Rounding where the margin goes to the pool. Where a task's exact margin is zero (a
   double auction whose buyer price equals its seller price, which round numbers make
   common), the charge and the payouts, each rounded and split on its own, can leave the
   task paying out a base unit or two more than it charges. The shortfall is taken from
   the request's budget not yet charged (up to its max_price), then from the server's
   payout above its ask, then moved, with the server's total unchanged, to another of the
   server's tasks whose request is charged that much more. Where every party is exactly at
   its limit (requests charged their max_price, servers paid exactly their asks) no
   integers may pay every task without a subsidy: such a task, whose surplus is zero, is
   left out, its share of π and φ with it, and the rest is priced again. No owner gets
   less than it signed for, no request pays more than its max_price, the pool pays no
   subsidy.

**Opening tasks** (`open_tasks`). The operator opens a round's tasks; the book checks every
one against what owners signed (`TermsViolationError` otherwise): the request is open (or
opened in this same round) and not expired; every server has its owner's offer, is active,
offers the request's capabilities and keeps within its capacity this round; the named
assets are exactly the request's; a server's payouts in each call cover its ask on what that
call gives it (its fixed cost on its first use in the round, its unit costs on the units
served); the request's charges fit its escrow.
Then escrow → hold (charge), margin holder → hold (subsidy).

**Settling a task** (`settle_task`). The task *pays* when the oracles' verdict is success
with the SLA met; a failed task or one that broke its SLA is treated alike. Paying: the
hold's payouts go to the assets' owners and the margin to the margin holder. Not paying: the
charge goes back to the escrow, the subsidy back to the margin holder, no payout. Then the
collective rule moves the stake of every asset of the task that is still active (reward R
from the pool when it paid, penalty P into the pool when it did not: seed 000's blind
collective rule, applied to servers and named assets alike), and removes an asset whose stake
reaches the removal level. When a request's last task settles, the request closes and the
rest of its escrow goes back to its owner. `settle_tasks` settles a batch of tasks exactly as
`settle_task` on each in turn (its reference twin), with one posting for the batch.

No account can go negative: escrow covers every charge when the task opens, a subsidy is
taken from the margin holder's balance then, every payout comes from a hold that holds it,
and the collective rule never takes more than a stake (the pool pays rewards only while it
can: a settlement it cannot pay is refused). Tokens are never created or lost: every change
is a set of postings that sums to zero.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mercat.errors import (
    AlreadyExistsError,
    AssetNotActiveError,
    InsufficientFundsError,
    MalformedMessageError,
    RewardPoolExhaustedError,
    TermsViolationError,
    UnauthorizedError,
    UnknownTaskError,
)
from mercat.incentives.integer_rule import IntegerRule
from mercat.market.model import Clearing
from mercat.runtime.accounts import POOL, avail, escrow_book, hold_book, stake_book
from mercat.runtime.records import (
    MARGIN_HOLDERS,
    AssetRecord,
    BookTxn,
    MarginHolder,
    RequestRecord,
    RequestStatus,
    TaskRecord,
    Usage,
)
from mercat.runtime.snapshot import RoundMarket
from mercat.runtime.terms import PPB, TaskTerms

# --- integer arithmetic ----------------------------------------------------------------


def split(total: int, weights: Sequence[int]) -> list[int]:
    """`total` split in proportion to integer `weights` (equally if they are all 0) by
    largest remainder: the parts are integers that add up to `total` exactly, each within 1
    of its exact share; ties go to the earlier weight."""
    if total < 0:
        raise ValueError(f"cannot split a negative amount {total}")
    if not weights:
        return []
    if len(weights) == 1:
        return [total]
    whole = sum(weights)
    if whole == 0:
        weights, whole = [1] * len(weights), len(weights)
    parts = []
    remainders = []
    for i, w in enumerate(weights):
        part, remainder = divmod(total * w, whole)
        parts.append(part)
        remainders.append((-remainder, i))
    left = total - sum(parts)
    for _, i in sorted(remainders)[:left]:
        parts[i] += 1
    return parts


def to_units(tokens: float, unit: int) -> int:
    """A float amount of tokens in base units (nearest, half to even; never below 0)."""
    if not math.isfinite(tokens):
        raise ValueError(f"amount {tokens!r} is not finite")
    return max(0, round(tokens * unit))


def margin_holder_book(margin_to: MarginHolder, operator: str) -> str:
    if margin_to not in MARGIN_HOLDERS:
        raise MalformedMessageError(
            f"margin_to must be one of {', '.join(MARGIN_HOLDERS)}, got {margin_to!r}"
        )
    return POOL if margin_to == "pool" else avail(operator)


# --- clearing -> tasks -----------------------------------------------------------------


def assign(
    context: RoundMarket, clearing: Clearing, prefix: str = "t", *, subsidies: bool = True
) -> tuple[TaskTerms, ...]:
    """The tasks of a clearing, with integer charges and payouts (module docstring, 1-5),
    named `prefix` + 0, 1, ... (a round that clears several sub-markets gives each its own
    prefix: task ids are unique within a round). `subsidies=False` (a round whose margin goes
    to the pool) applies rule 5."""
    plan = _plan(context, clearing)
    left_out: set[int] = set()
    while True:
        tasks, short = _priced(context, clearing, plan, left_out, prefix, subsidies)
        if not short:
            return tasks
        left_out |= short  # zero-surplus parts rounding cannot pay without a subsidy


def _plan(context: RoundMarket, clearing: Clearing) -> list[tuple[str, tuple[str, ...], int]]:
    """Rule 1: the tasks of a clearing before prices, as (request, servers, fraction)."""
    market = context.market
    order = {t.id: i for i, t in enumerate(market.requests)}
    served = sorted(clearing.allocation.served_requests, key=order.__getitem__)
    plan: list[tuple[str, tuple[str, ...], int]] = []
    for request_id in served:
        shares = clearing.allocation.shares_of(request_id)
        if market.divisible:
            for node_id in sorted(shares):
                fraction = math.floor(shares[node_id] * PPB)
                if fraction > 0:
                    plan.append((request_id, (node_id,), fraction))
        else:
            plan.append((request_id, tuple(sorted(shares)), PPB))
    return plan


def _priced(
    context: RoundMarket,
    clearing: Clearing,
    full: list[tuple[str, tuple[str, ...], int]],
    left_out: set[int],
    prefix: str,
    subsidies: bool,
) -> tuple[tuple[TaskTerms, ...], set[int]]:
    """Rules 2-5 on the tasks of `full` not `left_out`: the priced tasks, and (rule 5) the
    positions in `full` of tasks still short after the repair."""
    unit = context.unit
    kept = [i for i in range(len(full)) if i not in left_out]
    plan = [full[i] for i in kept]
    terms_of = {r: record.terms for r, record in context.requests.items()}

    def weight(entry: tuple[str, tuple[str, ...], int]) -> int:
        return sum(d for _, d in terms_of[entry[0]].demand) * entry[2]

    # What is left out keeps its share of π and φ out of the kept tasks' prices.
    request_share: dict[str, float] = defaultdict(lambda: 1.0)
    node_share: dict[str, float] = defaultdict(lambda: 1.0)
    if left_out:
        whole_f: dict[str, int] = defaultdict(int)
        kept_f: dict[str, int] = defaultdict(int)
        whole_w: dict[str, int] = defaultdict(int)
        kept_w: dict[str, int] = defaultdict(int)
        for i, entry in enumerate(full):
            request_id, servers, fraction = entry
            whole_f[request_id] += fraction
            kept_f[request_id] += fraction if i not in left_out else 0
            for node_id in servers:
                whole_w[node_id] += weight(entry)
                kept_w[node_id] += weight(entry) if i not in left_out else 0
        request_share.update({r: kept_f[r] / whole_f[r] for r in whole_f})
        node_share.update({n: kept_w[n] / whole_w[n] if whole_w[n] else 1.0 for n in whole_w})

    # 2. charges and named assets' payouts, per request
    tasks_of: dict[str, list[int]] = defaultdict(list)
    for k, (request_id, _, _) in enumerate(plan):
        tasks_of[request_id].append(k)
    charge = [0] * len(plan)
    named_payouts: list[list[int]] = [[] for _ in plan]
    for request_id, ks in tasks_of.items():
        record = context.requests[request_id]
        named = context.bound[request_id]
        named_cost = sum(cost for _, cost in named)
        fractions = [plan[k][2] for k in ks]
        payment = clearing.payment(request_id) * request_share[request_id]
        for_servers = min(to_units(payment, unit), record.terms.max_price - named_cost)
        for k, part in zip(ks, split(for_servers, fractions), strict=True):
            charge[k] += part
        for _, cost in named:
            for k, part in zip(ks, split(cost, fractions), strict=True):
                charge[k] += part
                named_payouts[k].append(part)

    # 3. servers' payouts: R_n split over n's tasks by the units each takes of n
    on_node: dict[str, list[tuple[int, int]]] = defaultdict(list)  # node -> [(task, weight)]
    for k, entry in enumerate(plan):
        w = weight(entry)
        for node_id in entry[1]:
            on_node[node_id].append((k, w))
    server_payout: dict[tuple[int, str], int] = {}
    above_ask: dict[str, int] = {}
    for node_id, uses in on_node.items():
        offer = context.offer(node_id)
        costs = dict(offer.unit_costs)
        units_ppb = sum(
            costs.get(r, 0) * d * plan[k][2]
            for k, _ in uses
            for r, d in terms_of[plan[k][0]].demand
        )
        ask = offer.cost + -(-units_ppb // PPB)
        reward = clearing.reward(node_id) * node_share[node_id]
        total = max(to_units(reward, unit), ask)
        above_ask[node_id] = total - ask
        for (k, _), part in zip(uses, split(total, [w for _, w in uses]), strict=True):
            server_payout[(k, node_id)] = part

    # 5. no rounding subsidy where the margin goes to the pool
    short: set[int] = set()
    if not subsidies:
        budget = {
            request_id: context.requests[request_id].terms.max_price - sum(charge[k] for k in ks)
            for request_id, ks in tasks_of.items()
        }
        for k, (request_id, servers, _) in enumerate(plan):
            missing = sum(server_payout[(k, n)] for n in servers) + sum(named_payouts[k])
            missing -= charge[k]
            if missing <= 0:
                continue
            more = min(missing, budget[request_id])  # the request's budget not yet charged
            charge[k] += more
            budget[request_id] -= more
            missing -= more
            for node_id in servers:
                less = min(missing, above_ask[node_id], server_payout[(k, node_id)])
                server_payout[(k, node_id)] -= less  # the server's payout above its ask
                above_ask[node_id] -= less
                missing -= less
                for other, _ in on_node[node_id]:  # another of its tasks, charged that more
                    moved = min(missing, budget[plan[other][0]], server_payout[(k, node_id)])
                    if moved > 0:
                        server_payout[(k, node_id)] -= moved
                        server_payout[(other, node_id)] += moved
                        charge[other] += moved
                        budget[plan[other][0]] -= moved
                        missing -= moved
            if missing > 0:
                short.add(kept[k])

    tasks = []
    for k, (request_id, servers, fraction) in enumerate(plan):
        named = context.bound[request_id]
        tasks.append(
            TaskTerms(
                task=f"{prefix}{k}",
                request=request_id,
                assets=servers + tuple(asset for asset, _ in named),
                payouts=tuple(server_payout[(k, n)] for n in servers) + tuple(named_payouts[k]),
                charge=charge[k],
                fraction=fraction,
            )
        )
    return tuple(tasks), short


# --- opening ---------------------------------------------------------------------------


def open_tasks(
    txn: BookTxn, round_: int, tasks: Sequence[TaskTerms], margin_to: MarginHolder
) -> list[TaskRecord]:
    """Check `tasks` against the owners' terms and open them (module docstring)."""
    holder = margin_holder_book(margin_to, txn.operator)
    if not tasks:
        raise MalformedMessageError("a round opens at least one task")
    names = [t.task for t in tasks]
    if len(set(names)) != len(names):
        raise MalformedMessageError("task ids repeat within the round")

    moves: dict[str, int] = defaultdict(int)
    usage_add: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    server_pay: dict[str, int] = defaultdict(int)
    server_units_ppb: dict[str, int] = defaultdict(int)
    named_pay: dict[tuple[str, str], int] = defaultdict(int)
    requests: dict[str, RequestRecord] = {}
    fraction_of: dict[str, int] = defaultdict(int)
    opened: list[TaskRecord] = []
    # What the call reads once and each task uses again (a round opens thousands of tasks
    # on a few hundred servers): the assets named by each request, each asset's record,
    # each server's unit costs as a mapping.
    named_by: dict[str, list[str]] = {}
    records: dict[str, AssetRecord] = {}
    unit_costs: dict[str, dict[str, int]] = {}

    for t in tasks:
        if len(set(t.assets)) != len(t.assets) or len(t.payouts) != len(t.assets):
            raise MalformedMessageError(
                f"task {t.task!r} must bind distinct assets, one payout each"
            )
        if txn.task(round_, t.task) is not None:
            raise AlreadyExistsError(f"task ({round_}, {t.task!r}) exists")
        record = requests.get(t.request) or txn.request(t.request)
        requests[t.request] = record
        terms = record.terms
        if terms is None:  # escrowed on a ledger from before request terms existed
            raise TermsViolationError(f"request {t.request!r} has no signed terms")
        if record.status == "closed":
            raise TermsViolationError(f"request {t.request!r} is closed")
        if record.status == "assigned" and record.round != round_:
            raise TermsViolationError(
                f"request {t.request!r} was served in round {record.round}; "
                f"its tasks cannot open in round {round_}"
            )
        if round_ > terms.expires:
            raise TermsViolationError(f"request {t.request!r} expired after round {terms.expires}")
        named = named_by.get(t.request)
        if named is None:
            named = named_by[t.request] = []
            for reference in terms.assets:
                resolved = txn.resolve(reference)
                if resolved is None:
                    raise TermsViolationError(
                        f"request {t.request!r} names {reference!r}, which no asset offers"
                    )
                named.append(resolved)
        servers = []
        for asset_id in t.assets:
            asset = records.get(asset_id)
            if asset is None:
                asset = records[asset_id] = txn.asset(asset_id)
            if asset.status != "active":
                raise AssetNotActiveError(f"asset {asset_id!r} is {asset.status}")
            if asset.offer is None:
                raise TermsViolationError(
                    f"asset {asset_id!r} has no offer from its owner: it cannot be bound"
                )
            if asset.offer.is_server:
                servers.append(asset)
            elif asset_id not in named:
                raise TermsViolationError(
                    f"task {t.task!r} binds {asset.offer.kind} {asset_id!r}, which request "
                    f"{t.request!r} does not name"
                )
        if named and sorted(a for a in t.assets if a in named) != sorted(named):
            raise TermsViolationError(
                f"task {t.task!r} must bind every asset request {t.request!r} names: {named}"
            )
        whole = t.fraction == PPB
        if (whole and len(servers) != terms.replicas) or (
            not whole and (len(servers) != 1 or terms.replicas != 1)
        ):
            raise TermsViolationError(
                f"task {t.task!r} runs on {len(servers)} servers; request {t.request!r} asks "
                f"for {terms.replicas} replicas of the whole request, or one server per part"
            )
        fraction_of[t.request] += t.fraction
        if record.served + fraction_of[t.request] > PPB:
            raise TermsViolationError(f"request {t.request!r} would be served more than once")
        for server in servers:
            offer = server.offer
            assert offer is not None
            if not terms.capabilities <= offer.capabilities:
                missing = terms.capabilities - offer.capabilities
                raise TermsViolationError(
                    f"server {server.asset!r} lacks capabilities {sorted(missing)} that "
                    f"request {t.request!r} needs"
                )
            costs = unit_costs.get(server.asset)
            if costs is None:
                costs = unit_costs[server.asset] = dict(offer.unit_costs)
            added = usage_add[server.asset]
            for resource, demand in terms.demand:
                added[resource] += demand * t.fraction
                server_units_ppb[server.asset] += costs.get(resource, 0) * demand * t.fraction
        for asset_id, payout in zip(t.assets, t.payouts, strict=True):
            if asset_id in named:
                named_pay[(t.request, asset_id)] += payout
            else:
                server_pay[asset_id] += payout
        paid_out = sum(t.payouts)
        subsidy = max(0, paid_out - t.charge)
        if margin_to == "pool" and subsidy:
            raise TermsViolationError(
                f"task {t.task!r} pays out {paid_out} for a charge of {t.charge}; a round "
                "whose margin goes to the pool cannot be subsidised"
            )
        moves[escrow_book(t.request)] -= t.charge
        moves[holder] -= subsidy
        moves[hold_book(round_, t.task)] += t.charge + subsidy
        opened.append(TaskRecord(round_, t, margin_to))

    # capacity and asks of servers, over this round's tasks so far
    earlier = {asset_id: txn.usage(round_, asset_id) for asset_id in server_pay}
    usage_after: dict[str, dict[str, int]] = {}
    for asset_id, paid in server_pay.items():
        offer = records[asset_id].offer
        assert offer is not None
        capacity = dict(offer.capacity)
        units = dict(earlier[asset_id].units)
        for resource, amount in usage_add.get(asset_id, {}).items():
            units[resource] = units.get(resource, 0) + amount
            if units[resource] > capacity.get(resource, 0) * PPB:
                raise TermsViolationError(
                    f"server {asset_id!r} would serve {units[resource] / PPB:g} {resource} in "
                    f"round {round_}; its offer has capacity {offer.capacity_of(resource)}"
                )
        fixed = 0 if earlier[asset_id].used else offer.cost
        ask = fixed + -(-server_units_ppb[asset_id] // PPB)
        if paid < ask:
            raise TermsViolationError(
                f"server {asset_id!r} would receive {paid} in round {round_}, below its ask {ask}"
            )
        usage_after[asset_id] = units
    for (request_id, asset_id), paid in named_pay.items():
        offer = records[asset_id].offer
        assert offer is not None
        ask = offer.cost * fraction_of[request_id] // PPB
        if paid < ask:
            raise TermsViolationError(
                f"{offer.kind} {asset_id!r} would receive {paid} from request {request_id!r}, "
                f"below its price {ask}"
            )

    for request_id in requests:
        if txn.balance(escrow_book(request_id)) + moves[escrow_book(request_id)] < 0:
            raise InsufficientFundsError(
                f"request {request_id!r} escrows {txn.balance(escrow_book(request_id))}, its "
                f"tasks would charge {-moves[escrow_book(request_id)]}"
            )
    # Every check passed; the postings are the first write (they refuse a margin holder
    # that cannot pay the subsidy, before anything else changes).
    txn.post(moves)
    for asset_id, units in usage_after.items():
        txn.put_usage(round_, asset_id, Usage(units, True))
    counts = Counter(t.request for t in tasks)
    for request_id, record in requests.items():
        count = counts[request_id]
        txn.put_request(
            record.changed(
                "assigned",
                round_,
                record.served + fraction_of[request_id],
                record.open_tasks + count,
            )
        )
    for record in opened:
        txn.put_task(record)
    return opened


# --- settling --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssetEffect:
    asset: str
    owner: str
    stake_before: int
    stake_after: int
    removed: bool


@dataclass(frozen=True, slots=True)
class TaskSettlement:
    """What settling one task did."""

    round: int
    task: str
    request: str
    paid: bool
    charge: int
    payouts: Mapping[str, int]  # owner -> tokens received
    margin: int  # charge - Σ payouts of a task that paid (negative: the subsidy spent); else 0
    effects: tuple[AssetEffect, ...]
    refunded: int  # escrow returned when the request closed with this task (0 otherwise)

    @property
    def removed(self) -> tuple[str, ...]:
        return tuple(e.asset for e in self.effects if e.removed)


def settle_task(
    txn: BookTxn, round_: int, task: str, paid: bool, rule: IntegerRule
) -> TaskSettlement:
    """Settle an open task: pay or refund, the collective rule, removals, request closing."""
    record = txn.task(round_, task)
    if record is None:
        raise UnknownTaskError(f"no task ({round_}, {task!r})")
    if record.status == "settled":
        raise AlreadyExistsError(f"task ({round_}, {task!r}) is settled")
    terms = record.terms
    holder = margin_holder_book(record.margin_to, txn.operator)
    hold = hold_book(round_, task)
    paid_out = sum(terms.payouts)
    subsidy = max(0, paid_out - terms.charge)
    held = terms.charge + subsidy
    moves: dict[str, int] = defaultdict(int)
    moves[hold] -= held
    payouts: dict[str, int] = {}
    assets = [txn.asset(a) for a in terms.assets]
    margin = 0
    if paid:
        for asset, payout in zip(assets, terms.payouts, strict=True):
            if payout:
                moves[avail(asset.owner)] += payout
                payouts[asset.owner] = payouts.get(asset.owner, 0) + payout
        margin = terms.charge - paid_out
        moves[holder] += held - paid_out  # the margin; 0 when subsidised
    else:
        moves[escrow_book(terms.request)] += terms.charge
        moves[holder] += subsidy

    effects = []
    pool_change = 0
    for asset in assets:
        before = txn.balance(stake_book(asset.asset))
        active = asset.status == "active"
        after = rule.updated_stake(before, paid) if active else before
        gone = active and rule.removal and rule.is_ruined(after)
        moves[stake_book(asset.asset)] += after - before
        pool_change += before - after
        effects.append(AssetEffect(asset.asset, asset.owner, before, after, gone))
    moves[POOL] += pool_change
    if txn.balance(POOL) + moves[POOL] < 0:
        raise RewardPoolExhaustedError(
            f"the reward pool holds {txn.balance(POOL)}, settling task {task!r} needs "
            f"{-moves[POOL]} from it"
        )

    request = txn.request(terms.request)
    refunded = 0
    left = request.open_tasks - 1
    if left == 0:
        refunded = txn.balance(escrow_book(terms.request)) + moves[escrow_book(terms.request)]
        moves[escrow_book(terms.request)] -= refunded
        moves[avail(request.owner)] += refunded
    txn.post(moves)
    status = "closed" if left == 0 else "assigned"
    txn.put_request(request.changed(status, request.round, request.served, left))
    for effect in effects:
        if effect.removed:
            txn.set_asset_status(effect.asset, "removed")
    txn.put_task(record.settled())
    return TaskSettlement(
        round=round_,
        task=task,
        request=terms.request,
        paid=paid,
        charge=terms.charge if paid else 0,
        payouts=payouts,
        margin=margin,
        effects=tuple(effects),
        refunded=refunded,
    )


def settle_tasks(
    txn: BookTxn, round_: int, verdicts: Sequence[tuple[str, bool]], rule: IntegerRule
) -> list[TaskSettlement]:
    """Settle a batch of open tasks, (task, paid) in order: the same settlements, balances,
    stakes, removals and request closings as `settle_task` on each in turn (its reference
    twin; `tests/runtime/test_batch.py` holds them equal), with the collective rule folded
    per asset over the batch in task order and one posting for the whole batch.

    One posting is checked instead of one per task. The refusals stay the same: of the
    books a settlement touches only the reward pool can go down and then up again within a
    batch (rewards out, penalties in), so the pool is checked after every task, as one by
    one; a hold only goes down, once; an escrow only gives back what it holds; owners,
    stakes and the margin holder only receive or stay above zero by the rule. (A book
    with two faults in one batch may see the other one named first.)"""
    operator = txn.operator
    moves: defaultdict[str, int] = defaultdict(int)
    stakes: dict[str, int] = {}  # asset -> its stake after the batch's tasks so far
    assets: dict[str, AssetRecord] = {}  # asset -> its record, with the batch's removals
    requests: dict[str, RequestRecord] = {}  # request -> its record after the batch so far
    records: list[TaskRecord] = []
    removed: list[str] = []
    seen: set[str] = set()
    pool = txn.balance(POOL)  # the pool after the batch's tasks so far
    updated_stake, removal, is_ruined = rule.updated_stake, rule.removal, rule.is_ruined
    holders = {m: margin_holder_book(m, operator) for m in MARGIN_HOLDERS}
    done = []
    for task, paid in verdicts:
        record = txn.task(round_, task)
        if record is None:
            raise UnknownTaskError(f"no task ({round_}, {task!r})")
        if record.status == "settled" or task in seen:
            raise AlreadyExistsError(f"task ({round_}, {task!r}) is settled")
        seen.add(task)
        records.append(record)
        terms = record.terms
        holder = holders.get(record.margin_to) or margin_holder_book(record.margin_to, operator)
        paid_out = sum(terms.payouts)
        subsidy = max(0, paid_out - terms.charge)
        held = terms.charge + subsidy
        moves[hold_book(round_, task)] -= held
        bound = []
        for asset_id in terms.assets:
            asset = assets.get(asset_id)
            if asset is None:
                asset = assets[asset_id] = txn.asset(asset_id)
            bound.append(asset)
        payouts: dict[str, int] = {}
        margin = 0
        if paid:
            for asset, payout in zip(bound, terms.payouts, strict=True):
                if payout:
                    moves[avail(asset.owner)] += payout
                    payouts[asset.owner] = payouts.get(asset.owner, 0) + payout
            margin = terms.charge - paid_out
            to_holder = held - paid_out  # the margin; 0 when subsidised
        else:
            moves[escrow_book(terms.request)] += terms.charge
            to_holder = subsidy
        moves[holder] += to_holder

        effects = []
        penalties = 0  # what the collective rule moves into the pool (rewards: negative)
        for asset in bound:
            asset_id = asset.asset
            before = stakes.get(asset_id)
            if before is None:
                before = txn.balance(stake_book(asset_id))
            if asset.status == "active":
                after = updated_stake(before, paid)
                gone = removal and is_ruined(after)
                if gone:
                    assets[asset_id] = asset.with_status("removed")
                    removed.append(asset_id)
            else:
                after, gone = before, False
            stakes[asset_id] = after
            moves[stake_book(asset_id)] += after - before
            penalties += before - after
            effects.append(AssetEffect(asset_id, asset.owner, before, after, gone))
        moves[POOL] += penalties
        pool_change = penalties + (to_holder if holder == POOL else 0)
        if pool + pool_change < 0:
            raise RewardPoolExhaustedError(
                f"the reward pool holds {pool}, settling task {task!r} needs {-pool_change} from it"
            )
        pool += pool_change

        request = requests.get(terms.request) or txn.request(terms.request)
        refunded = 0
        left = request.open_tasks - 1
        if left == 0:
            escrow = escrow_book(terms.request)
            refunded = txn.balance(escrow) + moves[escrow]
            moves[escrow] -= refunded
            moves[avail(request.owner)] += refunded
        status: RequestStatus = "closed" if left == 0 else "assigned"
        requests[terms.request] = request.changed(status, request.round, request.served, left)
        done.append(
            TaskSettlement(
                round=round_,
                task=task,
                request=terms.request,
                paid=paid,
                charge=terms.charge if paid else 0,
                payouts=payouts,
                margin=margin,
                effects=tuple(effects),
                refunded=refunded,
            )
        )
    txn.post(moves)
    for request in requests.values():
        txn.put_request(request)
    for asset_id in removed:
        txn.set_asset_status(asset_id, "removed")
    for record in records:
        txn.put_task(record.settled())
    return done


def withdraw_request(txn: BookTxn, request: str, signer: str) -> int:
    """Close an open (unserved) request and return its escrow to its owner; its owner or the
    operator may. Returns the amount refunded."""
    record = txn.request(request)
    if signer not in (record.owner, txn.operator):
        raise UnauthorizedError(f"only the owner or the operator may withdraw {request!r}")
    if record.status != "open":
        raise TermsViolationError(
            f"request {request!r} is {record.status}; only an open request can be withdrawn "
            "(a served one closes when its last task settles)"
        )
    amount = txn.balance(escrow_book(request))
    if amount:
        txn.post({escrow_book(request): -amount, avail(record.owner): amount})
    txn.put_request(record.changed("closed", record.round, record.served, record.open_tasks))
    return amount
