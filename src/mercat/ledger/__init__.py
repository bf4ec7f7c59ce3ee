"""The ledger: accounts, balances, stakes, escrows and a double-entry journal in integer
base units, on SQLAlchemy (SQLite by default, PostgreSQL for scale). See docs/ledger.md.

Public surface (what other parts of mercat, e.g. the chain parity test, call):

    Ledger.init(url, LedgerConfig(...)) / Ledger(url)     create / open a store
    Ledger.submit(SignedMessage) -> Receipt              the one write path
    Signer(Keypair).sign(op, nonce=None) -> SignedMessage  build a message
    ops: OpenAccount, AddOracle, AdvanceRound, Deposit, Withdraw, Transfer, FundPool,
         AddAsset, Stake, Unstake, Release, ReplaceAsset, Escrow, Refund, Pay,
         OpenTask, Report, Settle
    reads: available, stake_of, escrowed, pool, unbonding, supply, balance, books,
           accounts, assets, asset, journal, round, settled_tasks (oracle records)
    verify_ledger(engine) / Ledger.verify()               audit from the journal
    IntegerRule                                          the collective rule in base units
"""

from mercat.identity import Keypair
from mercat.incentives.integer_rule import IntegerRule, Tokens
from mercat.ledger.config import LedgerConfig
from mercat.ledger.ledger import AssetInfo, JournalEntry, Ledger, Receipt
from mercat.ledger.messages import (
    AddAsset,
    AddOracle,
    AdvanceRound,
    Deposit,
    Escrow,
    FundPool,
    OpenAccount,
    OpenTask,
    Pay,
    Refund,
    Release,
    ReplaceAsset,
    Report,
    Settle,
    SignedMessage,
    Signer,
    Stake,
    Transfer,
    Unstake,
    Withdraw,
)
from mercat.ledger.verify import VerifyReport, verify_ledger

__all__ = [
    "AddAsset",
    "AddOracle",
    "AdvanceRound",
    "AssetInfo",
    "Deposit",
    "Escrow",
    "FundPool",
    "IntegerRule",
    "JournalEntry",
    "Keypair",
    "Ledger",
    "LedgerConfig",
    "OpenAccount",
    "OpenTask",
    "Pay",
    "Receipt",
    "Refund",
    "Release",
    "ReplaceAsset",
    "Report",
    "Settle",
    "SignedMessage",
    "Signer",
    "Stake",
    "Tokens",
    "Transfer",
    "Unstake",
    "VerifyReport",
    "Withdraw",
    "verify_ledger",
]
