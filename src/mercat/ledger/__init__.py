"""The ledger: accounts, balances, stakes, escrows and a double-entry journal in integer
base units, on SQLAlchemy (SQLite by default, PostgreSQL for scale). See docs/ledger.md.

Public surface (what other parts of mercat, e.g. the chain parity test, call):

    Ledger.init(url, LedgerConfig(...)) / Ledger(url)     create / open a store
    Ledger.submit(SignedMessage) -> Receipt              the one write path
    Signer(Keypair, ledger.id).sign(op) -> SignedMessage   build a message for one ledger
    ops: OpenAccount, AddOracle, AdvanceRound, Deposit, Withdraw, Transfer, FundPool,
         AddAsset, Stake, Unstake, Release, ReplaceAsset, PostOffer, PostRequest, Refund,
         OpenTasks, Report, Settle, SettleTasks
    reads: available, stake_of, escrowed, pool, unbonding, supply, balance, books,
           accounts, assets, asset, offers, request_records, tasks, journal, round,
           settled_tasks (oracle records)
    verify_ledger(engine) / Ledger.verify()               audit from the journal
    IntegerRule                                          the collective rule in base units
"""

from mercat.identity import Keypair
from mercat.incentives.integer_rule import IntegerRule, Tokens
from mercat.ledger.config import LedgerConfig
from mercat.ledger.ledger import AssetInfo, JournalEntry, Ledger, Receipt, TaskInfo
from mercat.ledger.messages import (
    AddAsset,
    AddOracle,
    AdvanceRound,
    Deposit,
    FundPool,
    OpenAccount,
    OpenTasks,
    PostOffer,
    PostRequest,
    Refund,
    Release,
    ReplaceAsset,
    Report,
    Settle,
    SettleTasks,
    SignedMessage,
    Signer,
    Stake,
    TaskReports,
    Transfer,
    Unstake,
    Withdraw,
)
from mercat.ledger.verify import VerifyReport, verify_ledger
from mercat.runtime.terms import Offer, RequestTerms, TaskTerms

__all__ = [
    "AddAsset",
    "AddOracle",
    "AdvanceRound",
    "AssetInfo",
    "Deposit",
    "FundPool",
    "IntegerRule",
    "JournalEntry",
    "Keypair",
    "Ledger",
    "LedgerConfig",
    "Offer",
    "OpenAccount",
    "OpenTasks",
    "PostOffer",
    "PostRequest",
    "Receipt",
    "Refund",
    "Release",
    "ReplaceAsset",
    "Report",
    "RequestTerms",
    "Settle",
    "SettleTasks",
    "SignedMessage",
    "Signer",
    "Stake",
    "TaskInfo",
    "TaskReports",
    "TaskTerms",
    "Tokens",
    "Transfer",
    "Unstake",
    "VerifyReport",
    "Withdraw",
    "verify_ledger",
]
