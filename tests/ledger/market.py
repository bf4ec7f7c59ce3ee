"""A small market on a ledger, for tests: an operator, users, oracles, and helpers that sign
and submit on their behalf."""

from __future__ import annotations

import itertools

from sqlalchemy import func, select

from mercat.identity import Keypair
from mercat.ledger import (
    AddAsset,
    AddOracle,
    Deposit,
    Escrow,
    FundPool,
    IntegerRule,
    Ledger,
    LedgerConfig,
    OpenAccount,
    OpenTask,
    Receipt,
    Settle,
    Signer,
)
from mercat.ledger import schema as s
from mercat.ledger.messages import Op
from mercat.oracle import OracleReport, SignedReport

DEFAULT_RULE = IntegerRule(penalty=99, reward=1, removal=True)


class Market:
    def __init__(
        self,
        url: str,
        *,
        rule: IntegerRule = DEFAULT_RULE,
        users: int = 3,
        oracles: int = 1,
        quorum: int = 1,
        unstake_delay: int = 2,
        ledger: Ledger | None = None,
        operator: Keypair | None = None,
        durable: bool = False,
    ) -> None:
        self.operator = operator or Keypair.generate()
        if ledger is None:
            config = LedgerConfig(
                operator=self.operator.public, rule=rule, quorum=quorum,
                unstake_delay_rounds=unstake_delay, unit=1,
            )  # fmt: skip
            ledger = Ledger.init(url, config, durable=durable)
        self.ledger = ledger
        self.users = [Keypair.generate() for _ in range(users)]
        self.oracles = [Keypair.generate() for _ in range(oracles)]
        self._ids = itertools.count()
        for user in self.users:
            self.submit(user, OpenAccount())
        for oracle in self.oracles:
            self.op(AddOracle(oracle=oracle.public))

    def fresh(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def submit(self, key: Keypair, op: Op, nonce: int | None = None) -> Receipt:
        return self.ledger.submit(Signer(key).sign(op, nonce))

    def op(self, op: Op) -> Receipt:
        return self.submit(self.operator, op)

    def fund(self, user: Keypair, amount: int) -> None:
        self.op(Deposit(account=user.public, amount=amount))

    def fund_pool(self, amount: int) -> None:
        self.op(Deposit(account=self.operator.public, amount=amount))
        self.op(FundPool(amount=amount))

    def asset(self, owner: Keypair, stake: int, name: str | None = None) -> str:
        name = name or self.fresh("asset")
        self.submit(owner, AddAsset(asset=name, stake=stake))
        return name

    def request(self, owner: Keypair, amount: int) -> str:
        name = self.fresh("req")
        self.submit(owner, Escrow(request=name, amount=amount))
        return name

    def task(self, request: str, assets: list[str], payouts: list[int], round_: int = 1) -> str:
        name = self.fresh("task")
        self.op(OpenTask(round=round_, task=name, request=request, assets=tuple(assets),
                         payouts=tuple(payouts)))  # fmt: skip
        return name

    def report(self, round_: int, task: str, success: bool, *, sla_met: bool = True,
               latency_ms: int = 100, digest: str | None = None, oracle: int = 0
               ) -> SignedReport:  # fmt: skip
        return SignedReport.sign(
            OracleReport(round_, task, success, sla_met, latency_ms, digest), self.oracles[oracle]
        )

    def settle(self, round_: int, task: str, success: bool, **kw) -> Receipt:  # type: ignore[no-untyped-def]
        return self.op(
            Settle(round=round_, task=task, reports=(self.report(round_, task, success, **kw),))
        )

    def snapshot(self) -> tuple:
        """Everything a rejected message must leave as it was."""
        with self.ledger.engine.connect() as c:
            counts = tuple(
                c.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (s.entries, s.postings, s.accounts, s.assets, s.requests, s.tasks,
                              s.oracle_reports, s.unbondings)
            )  # fmt: skip
            assets = tuple(c.execute(select(s.assets).order_by(s.assets.c.id)).all())
            tasks = tuple(
                c.execute(select(s.tasks.c.task, s.tasks.c.status).order_by(s.tasks.c.task)).all()
            )
            meta = c.execute(select(s.meta.c.round)).scalar_one()
        return (self.ledger.books(), counts, assets, tasks, meta)
