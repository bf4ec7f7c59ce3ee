"""What an operation handler sees: the transaction, the configuration, who signed, and
look-ups that raise the ledger's specific errors."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select, update

from mercat.errors import (
    AlreadyExistsError,
    UnauthorizedError,
    UnknownAccountError,
    UnknownAssetError,
    UnknownRequestError,
)
from mercat.ledger import schema as s
from mercat.ledger.config import LedgerConfig
from mercat.ledger.store import Txn
from mercat.runtime.accounts import (  # noqa: F401 - the ledger's book names, re-exported
    POOL,
    WORLD,
    avail,
    escrow_book,
    hold_book,
    stake_book,
    unbond,
)


@dataclass
class Context:
    tx: Txn
    config: LedgerConfig
    signer: str
    role: str | None
    entry_id: int = 0

    # --- who ----------------------------------------------------------------------------

    def require_operator(self, what: str) -> None:
        if self.role != "operator":
            raise UnauthorizedError(f"only the operator may {what}")

    def role_of(self, key: str) -> str:
        role = self.tx.execute(select(s.accounts.c.role).where(s.accounts.c.key == key)).scalar()
        if role is None:
            raise UnknownAccountError(f"no account {key[:16]}…")
        return str(role)

    def open_account(self, key: str, role: str) -> None:
        exists = self.tx.execute(select(s.accounts.c.role).where(s.accounts.c.key == key))
        if exists.first() is not None:
            raise AlreadyExistsError(f"account {key[:16]}… exists")
        self.tx.execute(insert(s.accounts).values(key=key, role=role))
        self.tx.create_books({avail(key): "avail", unbond(key): "unbond"})

    # --- what ---------------------------------------------------------------------------

    def asset(self, asset: str) -> tuple[str, str]:
        """(owner, status) of an asset; UnknownAssetError if there is none."""
        row = self.tx.execute(
            select(s.assets.c.owner, s.assets.c.status).where(s.assets.c.id == asset)
        ).first()
        if row is None:
            raise UnknownAssetError(f"no asset {asset!r}")
        return str(row.owner), str(row.status)

    def set_asset_status(self, asset: str, status: str) -> None:
        self.tx.execute(update(s.assets).where(s.assets.c.id == asset).values(status=status))

    def request_owner(self, request: str) -> str:
        owner = self.tx.execute(
            select(s.requests.c.owner).where(s.requests.c.id == request)
        ).scalar()
        if owner is None:
            raise UnknownRequestError(f"no request {request!r}")
        return str(owner)

    def current_round(self) -> int:
        return int(self.tx.execute(select(s.meta.c.round).where(s.meta.c.id == 1)).scalar_one())

    def reach_round(self, round_: int) -> None:
        """The ledger's round is the highest round any task or the operator has named."""
        self.tx.execute(
            update(s.meta).where(s.meta.c.id == 1, s.meta.c.round < round_).values(round=round_)
        )

    def post(self, moves: dict[str, int], balances: dict[str, int]) -> None:
        self.tx.post(self.entry_id, moves, balances)
