"""Settling a round's tasks as one batch (`money.settle_tasks`, the in-memory book's `settle`)
leaves the book exactly as settling them one by one does (`money.settle_task`, the book's
`settle_per_task`, the reference twin): balances, stakes, removals, request and task
records, the assets a round sees, the settlements and the events, and the same refusals.
Random rounds (hypothesis) over the mechanisms, seed 000's four rules (free, coll-stake,
coll-rep, coll-sr), failure and lateness patterns and batch sizes, and removals and a
reward pool that runs dry in the middle of a batch, by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mercat.clearing import registry
from mercat.errors import (
    AlreadyExistsError,
    MercatError,
    RewardPoolExhaustedError,
    UnknownRequestError,
    UnknownTaskError,
)
from mercat.incentives.collective import MECHANISMS
from mercat.incentives.integer_rule import IntegerRule
from mercat.runtime.attest import Attestation
from mercat.runtime.events import MemoryLog
from mercat.runtime.execute import SampledExecution
from mercat.runtime.memory import MemoryBook
from mercat.runtime.round import RoundPlan, run_round
from mercat.runtime.terms import Offer, RequestTerms, TaskTerms
from tests.runtime.book_fixtures import UNIT, funded_book


class PerTaskBook(MemoryBook):
    """The in-memory book settling one task after another (the reference twin)."""

    settle = MemoryBook.settle_per_task


def _state(book: MemoryBook) -> dict:
    """Everything a settlement can change, in a form that compares by value (a view is
    compared by identity otherwise)."""
    return {
        "balances": book.books(),
        "assets": dict(book.assets),
        "requests": list(book.requests.items()),
        "open_requests": list(book.open_requests.items()),
        "tasks": dict(book.tasks),
        "usage": dict(book.usage),
        "views": [(v.asset, v.owner, v.stake, v.offer) for v in book.views.values()],
        "round": book.round,
    }


def _rule(name: str, target: float) -> IntegerRule:
    # S0 = 3 tokens, P = 0.5 token: a few failures remove an asset under removal
    rule = MECHANISMS[name].rule(initial_stake=3.0, task_target=target, penalty=0.5)
    return IntegerRule.from_collective(rule, UNIT)


def _book(
    cls: type[MemoryBook], seed: int, rule: IntegerRule, keep_history: bool, auction: bool
) -> MemoryBook:
    """A random book; for the double auction, servers with unit costs only and requests
    that need some gpu (what it clears)."""
    rng = np.random.default_rng(seed)
    pool = int(rng.choice([0, UNIT // 10, 100 * UNIT]))  # 0: rewards may run the pool dry
    book = funded_book(rule, pool=pool, keep_history=keep_history)
    book.__class__ = cls
    low, high = book.stake_bounds
    servers = int(rng.integers(1, 6))
    for j in range(servers):
        book.add_asset(
            ("alice", "bob")[j % 2],
            f"s{j}",
            int(rng.integers(low, min(high, low + 2 * UNIT) + 1)),
            Offer(
                f"s{j}",
                capacity={"gpu": int(rng.integers(1, 8))},
                cost=0 if auction else int(rng.integers(0, UNIT)),
                unit_costs={"gpu": int(rng.integers(0, 200))},
            ),
        )
    book.add_asset("bob", "app", low, Offer("app", kind="app", cost=50))  # one failure away
    for i in range(int(rng.integers(1, 16))):
        book.post_request(
            ("carol", "dave")[i % 2],
            RequestTerms(
                f"q{i}",
                max_price=int(rng.integers(1, 6 * UNIT)),
                demand={"gpu": int(rng.integers(1 if auction else 0, 3))},
                replicas=1 if auction else int(rng.integers(1, 3)),
                assets=["app"] if rng.random() < 0.3 else [],
                deadline_ms=int(rng.integers(0, 100)),
                expires=int(rng.integers(1, 4)),
            ),
        )
    return book


def _run(cls, seed, rule, keep_history, mechanism, failure, late, batch_size):  # type: ignore[no-untyped-def]
    book = _book(cls, seed, rule, keep_history, mechanism == "double-auction")
    rng = np.random.default_rng(seed + 1)
    log = MemoryLog()
    plan = RoundPlan(
        registry.create(mechanism),
        SampledExecution(
            {a: failure for a in book.assets}, sla_violations={a: late for a in book.assets}
        ),
        log=log,
        batch_size=batch_size,
    )
    history = []
    for round_ in (1, 2, 3):
        try:
            report = run_round(book, round_, plan, rng)
            history.append(("settled", report.tasks, report.settlements))
        except MercatError as e:  # a refused settlement leaves the book as it was
            history.append(("refused", type(e)))
        history.append(_state(book))
    book.verify()
    return history, log.events


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    rule=st.sampled_from(sorted(MECHANISMS)),
    target=st.sampled_from([0.01, 0.2]),
    keep_history=st.booleans(),
    mechanism=st.sampled_from(["collective", "optimal", "double-auction"]),
    failure=st.sampled_from([0.0, 0.3, 0.9, 1.0]),
    late=st.sampled_from([0.0, 0.2]),
    batch_size=st.integers(1, 6),
)
def test_a_batch_settles_rounds_exactly_as_one_task_after_another(
    seed, rule, target, keep_history, mechanism, failure, late, batch_size
):
    integer_rule = _rule(rule, target)
    args = (seed, integer_rule, keep_history, mechanism, failure, late, batch_size)
    batch = _run(MemoryBook, *args)
    reference = _run(PerTaskBook, *args)
    assert batch == reference


# --- by hand: removals and refusals in the middle of a batch ------------------------------

RULE = IntegerRule(penalty=990, reward=10, removal=True)


def _tasks_on_one_server(cls: type[MemoryBook], pool: int, stake: int) -> MemoryBook:
    book = funded_book(RULE, pool=pool)
    book.__class__ = cls
    book.add_asset("alice", "n1", stake, Offer("n1", capacity={"gpu": 4}))
    book.add_asset("bob", "n2", 5 * UNIT, Offer("n2", capacity={"gpu": 4}))
    for r in ("r1", "r2", "r3"):
        book.post_request("carol", RequestTerms(r, max_price=UNIT, demand={"gpu": 1}))
    tasks = [
        TaskTerms("t1", "r1", ("n1",), (100,), 200),
        TaskTerms("t2", "r2", ("n1",), (100,), 200),
        TaskTerms("t3", "r3", ("n2",), (100,), 200),
    ]
    book.open_tasks(1, tasks)
    return book


def _verdicts(*paid: bool) -> list[Attestation]:
    return [Attestation(f"t{i + 1}", p, True, 1) for i, p in enumerate(paid)]


@pytest.mark.parametrize("paid", [(False, False, True), (False, True, False), (True, True, True)])
def test_an_asset_removed_mid_batch_is_left_alone_by_its_later_tasks(paid):
    results = []
    for cls in (MemoryBook, PerTaskBook):
        book = _tasks_on_one_server(cls, 100 * UNIT, RULE.minimum_stake + 5)  # one failure away
        done = book.settle(1, _verdicts(*paid))
        book.verify()
        results.append((done, _state(book)))
    assert results[0] == results[1]
    done, state = results[0]
    if not paid[0]:
        assert done[0].removed == ("n1",) and state["assets"]["n1"].status == "removed"
        assert done[1].effects[0].stake_before == done[1].effects[0].stake_after
        assert "n1" not in [v[0] for v in state["views"]]


def test_a_pool_that_runs_dry_mid_batch_refuses_the_batch_even_if_penalties_refill_it():
    # t1 pays (its reward needs 10 from an empty pool); t3 fails (990 into the pool): the
    # batch as a whole would leave the pool positive, but one task after another it cannot
    # pay t1's reward, so both refuse and change nothing.
    for cls in (MemoryBook, PerTaskBook):
        book = _tasks_on_one_server(cls, 0, 5 * UNIT)
        before = _state(book)
        with pytest.raises(RewardPoolExhaustedError, match="task 't1' needs 10"):
            book.settle(1, _verdicts(True, False, False))
        assert _state(book) == before
        book.settle(1, _verdicts(False, True, False))  # penalties first: it pays
        book.verify()


@pytest.mark.parametrize(
    ("attestations", "error"),
    [
        ([Attestation("t1", True, True, 1), Attestation("t1", True, True, 1)], AlreadyExistsError),
        ([Attestation("t1", True, True, 1), Attestation("nope", True, True, 1)], UnknownTaskError),
    ],
)
def test_a_batch_refuses_what_one_by_one_refuses_and_changes_nothing(attestations, error):
    for cls in (MemoryBook, PerTaskBook):
        book = _tasks_on_one_server(cls, 100 * UNIT, 5 * UNIT)
        before = _state(book)
        with pytest.raises(error):
            book.settle(1, attestations)
        assert _state(book) == before
    book.settle(1, _verdicts(True, True, True))
    with pytest.raises(AlreadyExistsError):  # a task settles once
        book.settle(1, _verdicts(True))


def test_without_history_a_closed_request_is_forgotten_and_its_id_stays_taken():
    book = _tasks_on_one_server(MemoryBook, 100 * UNIT, 5 * UNIT)
    book.keep_history = False
    book.settle(1, _verdicts(True, False, True))
    assert not book.requests and not book.tasks  # all three closed, all tasks settled
    with pytest.raises(AlreadyExistsError):
        book.post_request("carol", RequestTerms("r1", max_price=UNIT))
    with pytest.raises(AlreadyExistsError):
        book.add_asset("alice", "r2", 5 * UNIT)
    with pytest.raises(UnknownRequestError):
        book.withdraw_request("carol", "r3")
    book.verify()
