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
    FundPool,
    IntegerRule,
    Ledger,
    LedgerConfig,
    Offer,
    OpenAccount,
    OpenTasks,
    PostOffer,
    PostRequest,
    Receipt,
    RequestTerms,
    Settle,
    Signer,
    TaskTerms,
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
        self.request_owner: dict[str, Keypair] = {}
        self.request_replicas: dict[str, int] = {}
        self.used: set[str] = set()
        self.task_request: dict[str, str] = {}
        self.users = [Keypair.generate() for _ in range(users)]
        self.oracles = [Keypair.generate() for _ in range(oracles)]
        self._ids = itertools.count()
        for user in self.users:
            self.submit(user, OpenAccount())
        for oracle in self.oracles:
            self.op(AddOracle(oracle=oracle.public))

    def fresh(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def signer(self, key: Keypair) -> Signer:
        return Signer(key, self.ledger.id)

    def submit(self, key: Keypair, op: Op, nonce: int | None = None) -> Receipt:
        return self.ledger.submit(self.signer(key).sign(op, nonce))

    def op(self, op: Op) -> Receipt:
        return self.submit(self.operator, op)

    def fund(self, user: Keypair, amount: int) -> None:
        self.op(Deposit(account=user.public, amount=amount))

    def fund_pool(self, amount: int) -> None:
        self.op(Deposit(account=self.operator.public, amount=amount))
        self.op(FundPool(amount=amount))

    def asset(self, owner: Keypair, stake: int, name: str | None = None) -> str:
        """A staked server whose owner offers it at no cost (so tasks may bind it)."""
        name = name or self.fresh("asset")
        self.submit(owner, AddAsset(asset=name, stake=stake))
        self.submit(owner, PostOffer(offer=Offer(name)))
        return name

    def request(self, owner: Keypair, amount: int, replicas: int = 1) -> str:
        name = self.fresh("req")
        self.submit(owner, PostRequest(terms=RequestTerms(name, max_price=amount,
                                                          replicas=replicas)))  # fmt: skip
        self.request_owner[name] = owner
        self.request_replicas[name] = replicas
        return name

    def task(self, request: str, assets: list[str], payouts: list[int], round_: int = 1) -> str:
        """Open a task of `request` on `assets`, charging the sum of `payouts`. A request is
        served once, with one replica per asset: when `request` was served already or asks
        for another number of replicas, a fresh request of the same owner (escrowing what
        the task charges) serves instead."""
        if request in self.used or self.request_replicas[request] != len(assets):
            request = self.request(
                self.request_owner[request], max(1, sum(payouts)), replicas=len(assets)
            )
        self.used.add(request)
        name = self.fresh("task")
        terms = TaskTerms(name, request, tuple(assets), tuple(payouts), sum(payouts))
        self.op(OpenTasks(round=round_, tasks=(terms,)))
        self.task_request[name] = request
        return name

    def report(self, round_: int, task: str, success: bool, *, sla_met: bool = True,
               latency_ms: int = 100, digest: str | None = None, oracle: int = 0
               ) -> SignedReport:  # fmt: skip
        return SignedReport.sign(
            OracleReport(round_, task, success, sla_met, latency_ms, digest, self.ledger.id),
            self.oracles[oracle],
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
