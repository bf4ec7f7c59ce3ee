"""The SQL ledger as a book of the round pipeline (`mercat.runtime.round.Book`).

The round loop reads the ledger (`state`), and the operator's key signs what it does to it:
`OpenTasks` for a round's tasks (in messages of at most `MAX_TASKS` each), `SettleTasks` for
a batch of settlements with the oracles' signed reports, `Refund` for requests that expired.
Every one of these is checked by the ledger against what owners signed, so the pipeline has
no more power over the ledger than any operator.

Participants act through their own keys. In a simulation the book holds them: `keyring`
maps a participant's name to its key, and `open_account`, `deposit`, `add_asset`,
`post_request` ... sign on their behalf, with the same names and arguments as the in-memory
book (`mercat.runtime.memory.MemoryBook`), so one scenario runs on either. `books(named=True)`
writes balances with those names instead of keys, to compare the two books name by name.

Attestations without signed reports (a simulation that attests directly) are signed by the
book's own oracles (`oracles`), honestly: the ledger still tallies them under its quorum.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mercat.errors import UnknownAccountError
from mercat.identity import Keypair
from mercat.ledger import messages as m
from mercat.ledger.ledger import Ledger, Receipt
from mercat.oracle.report import OracleReport, SignedReport
from mercat.runtime.attest import Attestation
from mercat.runtime.money import AssetEffect, TaskSettlement
from mercat.runtime.records import MarginHolder, TaskRecord
from mercat.runtime.snapshot import AssetView, BookState
from mercat.runtime.terms import Offer, RequestTerms, TaskTerms
from mercat.untrusted import shown


class LedgerBook:
    """The runtime's `Book` over a `Ledger` (module docstring)."""

    def __init__(
        self,
        ledger: Ledger,
        operator: Keypair,
        *,
        oracles: Sequence[Keypair] = (),
        keyring: dict[str, Keypair] | None = None,
    ) -> None:
        if operator.public != ledger.config.operator:
            raise UnknownAccountError("the key given as the operator's is not this ledger's")
        self.ledger = ledger
        self.operator = operator
        self.oracles = tuple(oracles)
        self.keyring: dict[str, Keypair] = {"operator": operator, **(keyring or {})}
        self.unit = ledger.config.unit
        self.rule = ledger.config.rule

    @property
    def ledger_id(self) -> str:
        return self.ledger.id

    def name_of(self, public: str) -> str:
        """The keyring's name for a public key (the key itself if it has none)."""
        for name, key in self.keyring.items():
            if key.public == public:
                return name
        return public

    # --- signing -------------------------------------------------------------------------

    def key(self, name: str) -> Keypair:
        try:
            return self.keyring[name]
        except KeyError:
            raise UnknownAccountError(f"no key for {shown(name)} in this book's keyring") from None

    def submit(self, name: str, op: m.Op) -> Receipt:
        return self.ledger.submit(m.Signer(self.key(name), self.ledger.id).sign(op))

    def _public(self, name: str) -> str:
        return self.key(name).public

    # --- participants (a simulation's, through the keyring) ------------------------------

    def open_account(self, name: str, key: Keypair | None = None) -> Keypair:
        key = key or Keypair.generate()
        self.keyring[name] = key
        self.submit(name, m.OpenAccount())
        return key

    def deposit(self, name: str, amount: int) -> None:
        self.submit("operator", m.Deposit(account=self._public(name), amount=amount))

    def transfer(self, sender: str, receiver: str, amount: int) -> None:
        self.submit(sender, m.Transfer(to=self._public(receiver), amount=amount))

    def fund_pool(self, name: str, amount: int) -> None:
        self.submit(name, m.FundPool(amount=amount))

    def add_asset(self, owner: str, asset: str, stake: int, offer: Offer | None = None) -> None:
        self.submit(owner, m.AddAsset(asset=asset, stake=stake))
        if offer is not None:
            self.post_offer(owner, offer)

    def post_offer(self, owner: str, offer: Offer) -> None:
        self.submit(owner, m.PostOffer(offer=offer))

    def post_request(self, owner: str, terms: RequestTerms) -> None:
        self.submit(owner, m.PostRequest(terms=terms))

    def withdraw_request(self, signer: str, request: str) -> int:
        return int(self.submit(signer, m.Refund(request=request)).result["refunded"])

    def add_oracles(self, keys: Iterable[Keypair]) -> None:
        keys = tuple(keys)
        for key in keys:
            self.submit("operator", m.AddOracle(oracle=key.public))
        self.oracles += keys

    # --- the round -----------------------------------------------------------------------

    def state(self, round_: int) -> BookState:
        stakes = {a.id: a for a in self.ledger.assets()}
        offers = self.ledger.offers()
        assets = tuple(
            AssetView(asset, stakes[asset].owner, stakes[asset].stake, offer)
            for asset, offer in offers.items()
            if stakes[asset].status == "active"
        )
        requests = tuple(
            r
            for r in self.ledger.request_records(status="open")
            if r.terms is not None and r.terms.expires >= round_
        )
        return BookState(round_, self.unit, assets, requests)

    def expire(self, round_: int) -> list[str]:
        gone = [
            r.request
            for r in self.ledger.request_records(status="open")
            if r.terms is not None and r.terms.expires < round_
        ]
        for request in gone:
            self.withdraw_request("operator", request)
        return gone

    def open_tasks(
        self, round_: int, tasks: Sequence[TaskTerms], margin_to: MarginHolder = "operator"
    ) -> list[TaskRecord]:
        for start in range(0, len(tasks), m.MAX_TASKS):
            chunk = tuple(tasks[start : start + m.MAX_TASKS])
            self.submit("operator", m.OpenTasks(round=round_, tasks=chunk, margin_to=margin_to))
        return [TaskRecord(round_, t, margin_to) for t in tasks]

    def settle(self, round_: int, attestations: Sequence[Attestation]) -> list[TaskSettlement]:
        done: list[TaskSettlement] = []
        for start in range(0, len(attestations), m.MAX_TASKS):
            items = tuple(
                m.TaskReports(a.task, a.reports or self._sign(round_, a))
                for a in attestations[start : start + m.MAX_TASKS]
            )
            receipt = self.submit("operator", m.SettleTasks(round=round_, settlements=items))
            done += [_settlement(round_, d) for d in receipt.result.get("tasks", [])]
        return done

    def _sign(self, round_: int, a: Attestation) -> tuple[SignedReport, ...]:
        report = OracleReport(
            round_, a.task, a.success, a.sla_met, a.latency_ms, a.digest, self.ledger.id
        )
        return tuple(SignedReport.sign(report, key) for key in self.oracles)

    # --- reads ---------------------------------------------------------------------------

    def pool(self) -> int:
        return self.ledger.pool()

    def balance(self, book: str) -> int:
        return self.ledger.balance(book)

    def stake_of(self, asset: str) -> int:
        return self.ledger.stake_of(asset)

    def available(self, name: str) -> int:
        return self.ledger.available(self._public(name))

    def supply(self) -> int:
        return self.ledger.supply()

    def books(self, named: bool = False) -> dict[str, int]:
        """Every balance by book name; `named=True` writes keys as the keyring's names."""
        books = self.ledger.books()
        if not named:
            return books
        names = {key.public: name for name, key in self.keyring.items()}
        out = {}
        for book, balance in books.items():
            kind, _, rest = book.partition(":")
            if rest in names:
                book = f"{kind}:{names[rest]}"
            out[book] = balance
        return out

    def verify(self) -> None:
        self.ledger.verify()


def _settlement(round_: int, d: dict) -> TaskSettlement:  # type: ignore[type-arg]
    return TaskSettlement(
        round=round_,
        task=d["task"],
        request=d["request"],
        paid=d["paid"],
        charge=d["charge"],
        payouts=d["payouts"],
        margin=d["margin"],
        effects=tuple(AssetEffect(*e) for e in d["effects"]),
        refunded=d["refunded"],
    )
