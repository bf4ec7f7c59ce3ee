"""Parity: one random sequence of deposits, escrows, stakes, outcomes and settlements
replayed on the SQL ledger (mercat.ledger, SQLite) and on the contracts (boa) must leave
identical free balances, unbonding, escrows, stakes, asset statuses and reward pool, at
checkpoints along the way and at the end, and both must refuse the same operations.

How one scenario operation maps onto ledger messages (signed by the scenario account's
Ed25519 key; the operator's where the chain's admin acts):
- Fund: the operator's Deposit (the chain mints and deposits);
- Settle: OpenTask (the price moves from escrow into the task's hold) and Settle with one
  oracle's signed report (quorum 1); the chain settles in one transaction. A task without
  payment runs under a request of the operator's holding one token, with zero payouts;
- a repeated Settle: the ledger answers "already applied" and changes nothing, the chain
  reverts (TaskAlreadySettledError) and changes nothing.
"""

from __future__ import annotations

import pytest

from mercat.chain.boa_backend import BoaBackend
from mercat.chain.market import ChainMarket, integer_rule
from mercat.chain.ops import (
    AdvanceRound,
    Escrow,
    Fund,
    FundPool,
    Op,
    Refund,
    Register,
    Release,
    ReplaceAsset,
    Settle,
    Unstake,
    Withdraw,
    account_names,
    asset_ids,
)
from mercat.chain.reference import MarketState
from mercat.chain.scenario import ScenarioConfig, apply_on_chain, chain_state, random_scenario
from mercat.errors import MercatError
from mercat.identity import Keypair
from mercat.incentives.collective import MECHANISMS
from mercat.ledger import IntegerRule, Ledger, LedgerConfig, Signer
from mercat.ledger import messages as lm
from mercat.oracle import OracleReport, SignedReport

DELAY = 2
FREE_REQUEST = "req-free"  # holds the tasks that carry no payment


class LedgerReplay:
    """A scenario's operations as signed messages on a fresh SQLite ledger."""

    def __init__(self, url: str, rule: IntegerRule, names: list[str]) -> None:
        self.operator = Keypair.generate()
        self.oracle = Keypair.generate()
        config = LedgerConfig(
            operator=self.operator.public, rule=rule, quorum=1, unstake_delay_rounds=DELAY, unit=1
        )
        self.ledger = Ledger.init(url, config, durable=False)
        self.keys = {name: Keypair.generate() for name in names}
        for key in self.keys.values():
            self._submit(key, lm.OpenAccount())
        self._submit(self.operator, lm.AddOracle(oracle=self.oracle.public))
        self._submit(self.operator, lm.Deposit(account=self.operator.public, amount=1))
        self._submit(self.operator, lm.Escrow(request=FREE_REQUEST, amount=1))

    def _submit(self, key: Keypair, op: lm.Op):
        return self.ledger.submit(Signer(key).sign(op))

    def apply(self, op: Op) -> bool:
        """Apply one operation; False when the ledger left everything as it was (a refusal,
        or an "already applied" settlement)."""
        k, operator = self.keys, self.operator
        match op:
            case Fund(account=a, amount=x):
                self._submit(operator, lm.Deposit(account=k[a].public, amount=x))
            case Withdraw(account=a, amount=x):
                self._submit(k[a], lm.Withdraw(amount=x))
            case FundPool(account=a, amount=x):
                self._submit(k[a], lm.FundPool(amount=x))
            case Escrow(requester=who, request=r, amount=x):
                self._submit(k[who], lm.Escrow(request=f"req-{r}", amount=x))
            case Refund(request=r):
                self._submit(operator, lm.Refund(request=f"req-{r}"))
            case Register(owner=o, asset=a, stake=s):
                self._submit(k[o], lm.AddAsset(asset=f"a{a}", stake=s))
            case Unstake(owner=o, asset=a, amount=x):
                self._submit(k[o], lm.Unstake(asset=f"a{a}", amount=x))
            case Release(account=a):
                self._submit(k[a], lm.Release())
            case ReplaceAsset(owner=o, old=old, new=new, stake=s):
                self._submit(k[o], lm.ReplaceAsset(old=f"a{old}", new=f"a{new}", stake=s))
            case AdvanceRound(round=r):
                self._submit(operator, lm.AdvanceRound(round=r))
            case Settle():
                return self._settle(op)
            case _:
                raise TypeError(op)
        return True

    def _settle(self, op: Settle) -> bool:
        task = f"t{op.task}"
        if op.expect != "TaskAlreadySettledError":
            request = f"req-{op.request}" if op.payouts else FREE_REQUEST
            payouts = op.payouts or (0,) * len(op.assets)
            self._submit(
                self.operator,
                lm.OpenTask(
                    round=op.round,
                    task=task,
                    request=request,
                    assets=tuple(f"a{a}" for a in op.assets),
                    payouts=payouts,
                ),
            )
        report = SignedReport.sign(
            OracleReport(op.round, task, op.success, True, 100, None), self.oracle
        )
        receipt = self._submit(
            self.operator, lm.Settle(round=op.round, task=task, reports=(report,))
        )
        return receipt.applied

    def state(self, ops: list[Op]) -> MarketState:
        names = account_names(ops)
        requests = sorted({op.request for op in ops if isinstance(op, Escrow)})
        known = {info.id: info for info in self.ledger.assets()}
        assets = [a for a in asset_ids(ops) if f"a{a}" in known]
        opened = {name.removeprefix("escrow:") for name in self.ledger.books()}
        return MarketState(
            balances={n: self.ledger.available(self.keys[n].public) for n in names},
            unbonding={n: self.ledger.unbonding(self.keys[n].public) for n in names},
            escrows={r: self.ledger.escrowed(f"req-{r}") for r in requests if f"req-{r}" in opened},
            stakes={a: known[f"a{a}"].stake for a in assets},
            statuses={a: known[f"a{a}"].status for a in assets},
            pool=self.ledger.pool(),
        )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["coll-stake", "coll-sr", "coll-rep"])
def test_ledger_and_contracts_agree_on_one_random_scenario(name, tmp_path):
    rule = IntegerRule.from_collective(
        MECHANISMS[name].rule(initial_stake=990, task_target=0.01, penalty=99), unit=1
    )
    # The ledger's float-to-base-units conversion and the chain's agree on this rule.
    assert rule == IntegerRule(**integer_rule(name, 990, "0.01", 99).__dict__)
    config = ScenarioConfig(tasks=70, failure_rate=0.3, replace_every=10, other_ops=0.4)
    ops = random_scenario(rule, seed=2026, config=config, unstake_delay_rounds=DELAY)
    expected_errors = {op.expect for op in ops} - {None}
    # Refusals on both sides, but none that the ledger would meet half way (a pool
    # exhausted after OpenTask moved the price into the hold).
    assert expected_errors and "RewardPoolExhaustedError" not in expected_errors
    kinds = {type(op).__name__ for op in ops}
    assert {"Settle", "Escrow", "Fund", "Unstake", "Release", "AdvanceRound"} <= kinds

    market = ChainMarket.deploy(BoaBackend(), rule, unstake_delay_rounds=DELAY)
    accounts = {n: market.new_account() for n in account_names(ops)}
    ledger = LedgerReplay(f"sqlite:///{tmp_path / 'ledger.db'}", rule, list(accounts))

    checkpoints = 0
    for i, op in enumerate(ops):
        try:
            apply_on_chain(market, accounts, op)
            chain_ok = True
        except MercatError as exc:
            chain_ok = False
            assert op.expect in {c.__name__ for c in type(exc).__mro__}, (i, op, exc)
        try:
            ledger_ok = ledger.apply(op)
        except MercatError as exc:
            ledger_ok = False
            assert op.expect in {c.__name__ for c in type(exc).__mro__}, (i, op, exc)
        assert chain_ok == ledger_ok == (op.expect is None), (i, op)
        if i % 25 == 0 or i == len(ops) - 1:
            assert chain_state(market, accounts, ops) == ledger.state(ops), (i, op)
            checkpoints += 1
    assert checkpoints >= 3
    final = chain_state(market, accounts, ops)
    assert any(s in ("removed", "replaced") for s in final.statuses.values()) or not rule.removal
    assert market.conservation_gap() == 0
    assert ledger.ledger.verify().ok
