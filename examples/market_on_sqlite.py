"""A whole marketplace on a SQLite ledger, from Python: the round pipeline by hand.

Two providers stake and offer GPU servers, one offers a model by its CID; two requesters post
jobs with escrowed bids. Every message is signed by its owner's key. Twenty rounds clear with
the mechanism named on the command line, the tasks run (sampled failures), three oracles sign
what they saw, and the ledger settles under its 2-of-3 quorum and Coll-SR's collective rule.
At the end the ledger is audited (`verify`: every balance from the journal, every signature,
every task against what its owners signed) and the script prints who earned what.

    python examples/market_on_sqlite.py [optimal|vcg|collective|posted-price]

(`mercat market run --ledger sqlite:///market.db` does the same with generated participants,
and with enough of them for a double auction: with two buyers a round, seed 003's trade
reduction leaves nothing to trade.)
"""

from __future__ import annotations

import sys
import tempfile

import numpy as np

from mercat.clearing import registry
from mercat.identity import Keypair
from mercat.incentives.collective import mechanism as collective
from mercat.incentives.integer_rule import IntegerRule
from mercat.ledger import Ledger, LedgerConfig
from mercat.ledger.book import LedgerBook
from mercat.runtime.attest import OracleQuorum
from mercat.runtime.execute import SampledExecution
from mercat.runtime.round import RoundPlan, run_round
from mercat.runtime.terms import Offer, RequestTerms

UNIT = 10**6  # base units per token
MODEL = "bafkreiexamplemodelweights"


def main(mechanism_name: str = "optimal", directory: str | None = None) -> dict:
    options = {"tick": 0.25} if mechanism_name == "posted-price" else {}  # converges quickly
    mechanism = registry.create(mechanism_name, **options)
    rule = IntegerRule.from_collective(
        collective("coll-sr").rule(initial_stake=10.0, task_target=0.01), UNIT
    )
    operator = Keypair.generate()
    directory = directory or tempfile.mkdtemp()
    ledger = Ledger.init(
        f"sqlite:///{directory}/market.db",
        LedgerConfig(operator=operator.public, rule=rule, unit=UNIT, quorum=2),
    )
    book = LedgerBook(ledger, operator)  # signs for the names in its keyring
    for name in ("alice", "bob", "carol", "dave"):
        book.open_account(name)
        book.deposit(name, 100 * UNIT)
    book.deposit("operator", 100 * UNIT)
    book.fund_pool("operator", 50 * UNIT)

    # Providers: what they offer, signed by them (VCG's standard auction has no fixed costs,
    # the double auction asks per unit only).
    fixed = 0 if mechanism.name in ("vcg", "double-auction") else UNIT // 4
    per_gpu = 0 if mechanism.name == "vcg" else UNIT // 5
    book.add_asset(
        "alice",
        "a100",
        10 * UNIT,
        Offer("a100", capacity={"gpu": 8}, cost=fixed, unit_costs={"gpu": per_gpu}),
    )
    book.add_asset(
        "bob",
        "h100",
        10 * UNIT,
        Offer("h100", capacity={"gpu": 4}, cost=fixed, unit_costs={"gpu": per_gpu}),
    )
    book.add_asset("bob", "llm", 10 * UNIT, Offer("llm", kind="model", cost=UNIT // 10, cid=MODEL))
    failure = {"a100": 0.02, "h100": 0.3, "llm": 0.0}  # h100 is failure-prone

    oracles = [Keypair.generate() for _ in range(3)]
    book.add_oracles(oracles)
    plan = RoundPlan(mechanism, SampledExecution(failure), OracleQuorum(oracles, ledger=ledger.id))
    rng = np.random.default_rng(7)
    single = mechanism.divisible or mechanism.name == "vcg"
    for round_ in range(1, 21):
        for who, k in (("carol", 1), ("dave", 2)):
            named = [] if single or k == 2 else [MODEL]  # carol's jobs use the model
            book.post_request(who, RequestTerms(
                f"{who}-job{round_}", max_price=int(2.5 * UNIT), demand={"gpu": k},
                assets=named, deadline_ms=60_000, expires=round_ + 1,
            ))  # fmt: skip
        run_round(book, round_, plan, rng)

    book.verify()  # raises LedgerIntegrityError if anything does not add up
    tasks = ledger.tasks()
    assert tasks and all(t.status == "settled" for t in tasks), "every task settled"
    earned: dict[str, float] = {}
    spent: dict[str, float] = {}
    for task in ledger.settled_tasks():
        for owner, payout in task.payouts.items():
            name = book.name_of(owner)
            earned[name] = earned.get(name, 0.0) + payout / UNIT
        requester = book.name_of(task.requester)
        spent[requester] = spent.get(requester, 0.0) + task.paid / UNIT
    stakes = {asset: book.stake_of(asset) / UNIT for asset in ("a100", "h100", "llm")}
    status = {a.id: a.status for a in ledger.assets()}
    ledger.close()
    return {"mechanism": mechanism_name, "tasks": len(tasks),
            "paid": sum(bool(t.success and t.sla_met) for t in tasks),
            "providers_earned": earned, "requesters_spent": spent,
            "stakes_after": stakes, "assets": status}  # fmt: skip


if __name__ == "__main__":
    result = main(*sys.argv[1:2])
    for key, value in result.items():
        print(f"{key:>17}: {value}")
