"""What a book holds about assets, requests and tasks, and the small interface through which
the money rule (`mercat.runtime.money`) reads and changes it.

`BookTxn` is one all-or-nothing change of a book: the in-memory book implements it over its
dictionaries, the SQL ledger over the rows of one database transaction. The money rule is
written once against it, so both books open and settle tasks by the same code; the smart
contracts are the one separate implementation, held to the others by parity tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from mercat.runtime.terms import Offer, RequestTerms, TaskTerms

AssetStatus = Literal["active", "removed", "retired", "replaced"]
RequestStatus = Literal["open", "assigned", "closed"]
MarginHolder = Literal["operator", "pool"]
MARGIN_HOLDERS: tuple[str, ...] = ("operator", "pool")


@dataclass(frozen=True, slots=True)
class AssetRecord:
    asset: str
    owner: str
    status: AssetStatus
    offer: Offer | None

    def with_status(self, status: AssetStatus) -> AssetRecord:
        return AssetRecord(self.asset, self.owner, status, self.offer)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """A posted request. `round` is the round its tasks opened in (None while open);
    `served` the fraction of its demand (PPB) its tasks cover; `open_tasks` how many of them
    have not settled. A request closes (and its escrow's remainder goes back to its owner)
    when its last task settles, or when its owner or the operator withdraws it while open."""

    request: str
    owner: str
    terms: RequestTerms  # None only for a request escrowed before terms existed (SQL ledger)
    status: RequestStatus
    round: int | None = None
    served: int = 0
    open_tasks: int = 0

    def changed(
        self, status: RequestStatus, round: int | None, served: int, open_tasks: int
    ) -> RequestRecord:
        """This request with a new life-cycle state (`dataclasses.replace` is several times
        slower, and a round changes thousands of requests)."""
        return RequestRecord(
            self.request, self.owner, self.terms, status, round, served, open_tasks
        )


@dataclass(frozen=True, slots=True)
class TaskRecord:
    round: int
    terms: TaskTerms
    margin_to: MarginHolder
    status: Literal["open", "settled"] = "open"

    def settled(self) -> TaskRecord:
        return TaskRecord(self.round, self.terms, self.margin_to, "settled")


@dataclass(frozen=True, slots=True)
class Usage:
    """What the tasks opened so far in a round take of one server: Σ demand·fraction per
    resource (PPB-scaled integers), and whether any task uses it (its fixed cost is asked
    once per round)."""

    units: Mapping[str, int]
    used: bool


NO_USAGE = Usage({}, False)


class BookTxn(Protocol):
    """One all-or-nothing change of a book, as the money rule sees it."""

    operator: str

    def balance(self, book: str) -> int:
        """The balance of a book (0 for one that does not exist yet)."""

    def post(self, moves: Mapping[str, int]) -> None:
        """Apply postings {book: signed amount} that sum to zero; refuse (and apply none) if a
        book other than `world` would go negative (InsufficientFundsError)."""

    def asset(self, asset: str) -> AssetRecord:
        """UnknownAssetError if there is none."""

    def set_asset_status(self, asset: str, status: AssetStatus) -> None: ...

    def resolve(self, reference: str) -> str | None:
        """The asset a request names: by id, or by the CID in its offer (None: no such asset)."""

    def request(self, request: str) -> RequestRecord:
        """UnknownRequestError if there is none."""

    def put_request(self, record: RequestRecord) -> None: ...

    def usage(self, round_: int, asset: str) -> Usage: ...

    def put_usage(self, round_: int, asset: str, usage: Usage) -> None: ...

    def task(self, round_: int, task: str) -> TaskRecord | None: ...

    def put_task(self, record: TaskRecord) -> None: ...
