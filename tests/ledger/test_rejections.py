"""Bad input: every rejection has its own error class and leaves the store exactly as it was.

Runs on SQLite and on PostgreSQL (the `store_url` fixture)."""

from __future__ import annotations

import json

import pytest

from mercat import errors as e
from mercat.identity import Keypair
from mercat.ledger import (
    AddAsset,
    AddOracle,
    Deposit,
    IntegerRule,
    Ledger,
    OpenTasks,
    PostRequest,
    Refund,
    Release,
    ReplaceAsset,
    Report,
    RequestTerms,
    Settle,
    SignedMessage,
    Stake,
    TaskTerms,
    Transfer,
    Unstake,
    Withdraw,
)
from mercat.ledger import (
    Signer as Signer_,
)
from mercat.oracle import OracleReport, SignedReport
from tests.ledger.market import Market


@pytest.fixture
def market(store_url):
    # A clamp cap, so that a stake above it can be refused (Coll-Rep / Coll-SR clamp to S0).
    rule = IntegerRule(penalty=99, reward=1, removal=True, stake_cap=10_000)
    m = Market(store_url, users=3, oracles=3, quorum=2, rule=rule)
    alice, bob, _ = m.users
    m.fund(alice, 10_000)
    m.fund(bob, 10_000)
    m.fund_pool(1_000)
    m.gpu = m.asset(alice, 990, "gpu")  # type: ignore[attr-defined]
    m.req = m.request(bob, 1_000)  # type: ignore[attr-defined]
    m.t = m.task(m.req, ["gpu"], [100])  # type: ignore[attr-defined]
    m.stale = m.fresh("req")  # type: ignore[attr-defined]
    m.submit(bob, PostRequest(terms=RequestTerms(m.stale, max_price=10, expires=0)))  # type: ignore[attr-defined]
    yield m
    m.ledger.close()


def _raw(key: Keypair, payload: bytes) -> SignedMessage:
    return SignedMessage(payload, key.sign(payload))


def _envelope(key: Keypair, op: str, body: dict, nonce: int = 1, ledger: str = "0" * 32) -> bytes:
    data = {
        "domain": "mercat/ledger/2",
        "ledger": ledger,
        "op": op,
        "signer": key.public,
        "nonce": nonce,
        "expires": 2**40,
        "body": body,
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def cases(m: Market):  # type: ignore[no-untyped-def]
    """(name, message builder, expected error) for every way to be refused."""
    alice, bob, carol = m.users
    stranger = Keypair.generate()
    outsider = Keypair.generate()

    def Signer(key: Keypair) -> Signer_:
        return m.signer(key)

    good = Signer(alice).sign(Transfer(to=bob.public, amount=1), nonce=7)
    lid = m.ledger.id
    r1 = m.report(1, m.t, True, oracle=0)
    return [
        ("not json", lambda: _raw(alice, b"{nope"), e.MalformedMessageError),
        ("unknown op", lambda: _raw(alice, _envelope(alice, "mint", {})), e.MalformedMessageError),
        ("float amount", lambda: _raw(alice, _envelope(alice, "withdraw", {"amount": 1.5})),
         e.MalformedMessageError),
        ("negative amount", lambda: _raw(alice, _envelope(alice, "withdraw", {"amount": -5})),
         e.MalformedMessageError),
        ("zero amount", lambda: _raw(alice, _envelope(alice, "withdraw", {"amount": 0})),
         e.MalformedMessageError),
        ("missing field", lambda: _raw(alice, _envelope(alice, "transfer", {"amount": 5})),
         e.MalformedMessageError),
        ("extra field", lambda: _raw(alice, _envelope(alice, "withdraw", {"amount": 5, "x": 1})),
         e.MalformedMessageError),
        ("bad id", lambda: _raw(alice, _envelope(alice, "post_request", {
            "terms": {"request": "no spaces", "max_price": 1}}, ledger=lid)),
         e.MalformedMessageError),
        ("non-canonical", lambda: _raw(alice, good.payload.replace(b'"body":', b'"body": ')),
         e.MalformedMessageError),
        ("payouts mismatch", lambda: _raw(m.operator, _envelope(m.operator, "open_tasks", {
            "round": 1, "margin_to": "operator", "tasks": [{"task": "x", "request": m.req,
            "assets": ["gpu"], "payouts": [1, 2], "charge": 3, "fraction": 10**9}]},
            ledger=lid)), e.MalformedMessageError),
        ("another ledger", lambda: Signer_(alice, "f" * 32).sign(Withdraw(amount=1)),
         e.WrongLedgerError),
        ("expired", lambda: Signer(alice).sign(Withdraw(amount=1), expires=1_000),
         e.ExpiredMessageError),
        ("beyond the terms", lambda: Signer(m.operator).sign(OpenTasks(round=1, tasks=(
            TaskTerms("late", m.stale, ("gpu",), (0,), 0),))), e.TermsViolationError),
        ("bad signature", lambda: SignedMessage(good.payload, bob.sign(good.payload)),
         e.BadSignatureError),
        ("tampered payload", lambda: SignedMessage(
            good.payload.replace(b'"amount":1', b'"amount":9'), good.signature),
         e.BadSignatureError),
        ("forged report", lambda: Signer(alice).sign(Report(report=SignedReport(
            r1.report, r1.oracle, m.oracles[1].sign(r1.report.signed_payload(r1.oracle))))),
         e.BadSignatureError),
        ("unknown signer", lambda: Signer(stranger).sign(Withdraw(amount=1)),
         e.UnknownAccountError),
        ("unknown recipient", lambda: Signer(alice).sign(Transfer(to=stranger.public, amount=1)),
         e.UnknownAccountError),
        ("overdraft", lambda: Signer(alice).sign(Withdraw(amount=10**9)), e.InsufficientFundsError),
        ("escrow overdraft", lambda: Signer(carol).sign(
            PostRequest(terms=RequestTerms("r-c", max_price=1))), e.InsufficientFundsError),
        ("stake below minimum", lambda: Signer(alice).sign(AddAsset(asset="tiny", stake=99)),
         e.StakeBelowMinimumError),
        ("stake above the cap", lambda: Signer(alice).sign(AddAsset(asset="huge", stake=10_001)),
         e.StakeAboveCapError),
        ("top-up above the cap", lambda: Signer(alice).sign(Stake(asset="gpu", amount=9_011)),
         e.StakeAboveCapError),
        ("supply beyond 2^62", lambda: Signer(m.operator).sign(
            Deposit(account=alice.public, amount=2**62 - 1)), e.BalanceOverflowError),
        ("self-transfer overdraft", lambda: Signer(alice).sign(
            Transfer(to=alice.public, amount=10**9)), e.InsufficientFundsError),
        ("unstake below minimum", lambda: Signer(alice).sign(Unstake(asset="gpu", amount=900)),
         e.StakeBelowMinimumError),
        ("retire while busy", lambda: Signer(alice).sign(Unstake(asset="gpu", amount=990)),
         e.StakeLockedError),
        ("release nothing", lambda: Signer(alice).sign(Release()), e.StakeLockedError),
        ("stake foreign asset", lambda: Signer(bob).sign(Stake(asset="gpu", amount=1)),
         e.UnauthorizedError),
        ("deposit by user", lambda: Signer(alice).sign(Deposit(account=alice.public, amount=1)),
         e.UnauthorizedError),
        ("oracle by user", lambda: Signer(alice).sign(AddOracle(oracle=stranger.public)),
         e.UnauthorizedError),
        ("refund by stranger", lambda: Signer(alice).sign(Refund(request=m.req)),
         e.UnauthorizedError),
        ("unknown asset", lambda: Signer(alice).sign(Stake(asset="nope", amount=1)),
         e.UnknownAssetError),
        ("unknown request", lambda: Signer(m.operator).sign(OpenTasks(round=1, tasks=(
            TaskTerms("t-nope", "nope", ("gpu",), (0,), 0),))), e.UnknownRequestError),
        ("unknown task", lambda: Signer(alice).sign(Settle(round=1, task="nope")),
         e.UnknownTaskError),
        ("task exists", lambda: Signer(m.operator).sign(OpenTasks(round=1, tasks=(
            TaskTerms(m.t, m.req, ("gpu",), (1,), 1),))), e.AlreadyExistsError),
        ("asset exists", lambda: Signer(bob).sign(AddAsset(asset="gpu", stake=990)),
         e.AlreadyExistsError),
        ("replace active", lambda: Signer(alice).sign(
            ReplaceAsset(old="gpu", new="gpu2", stake=990)),
         e.AssetNotActiveError),
        ("oracle outside the set", lambda: Signer(alice).sign(Settle(round=1, task=m.t, reports=(
            SignedReport.sign(OracleReport(1, m.t, True, True, 5, None, lid), outsider),))),
         e.UnknownOracleError),
        ("no quorum", lambda: Signer(alice).sign(Settle(round=1, task=m.t, reports=(r1,))),
         e.QuorumNotReachedError),
        ("split vote", lambda: Signer(alice).sign(Settle(round=1, task=m.t, reports=(
            r1, m.report(1, m.t, False, oracle=1)))), e.QuorumNotReachedError),
        ("duplicate report", lambda: Signer(alice).sign(
            Settle(round=1, task=m.t, reports=(r1, r1))),
         e.DuplicateReportError),
        ("replayed nonce", lambda: _spent(m, Signer(alice).sign(Withdraw(amount=1), nonce=4242)),
         e.ReplayedNonceError),
    ]  # fmt: skip


def _spent(m: Market, message: SignedMessage) -> SignedMessage:
    """A message the ledger has already accepted once."""
    m.ledger.submit(message)
    return message


#: Classes that no message against the fixture's market can raise, tested on their own below
#: (or, for the others, by the audit, the opening of an empty store, the quorum tests and
#: the bad store URLs of test_cli_ledger.py).
SEPARATELY_TESTED = {e.RewardPoolExhaustedError, e.LedgerIntegrityError,
                     e.LedgerNotInitializedError, e.ConflictingQuorumError,
                     e.LedgerUnavailableError, e.UnknownBookError}  # fmt: skip


@pytest.mark.slow
def test_every_rejection_has_its_class_and_changes_nothing(market):
    seen = set()
    for name, build, error in cases(market):
        message = build()
        before = market.snapshot()
        with pytest.raises(error) as info:
            market.ledger.submit(message)
        assert type(info.value) is error, f"{name}: {type(info.value).__name__}: {info.value}"
        assert market.snapshot() == before, f"{name} changed the store"
        seen.add(error)
    ledger_errors = {c for c in vars(e).values() if isinstance(c, type) and
                     issubclass(c, e.LedgerError | e.ProtocolError) and
                     c not in (e.LedgerError, e.ProtocolError) and
                     not issubclass(c, e.ChainError | e.AuctioneerError)}  # fmt: skip
    untested = ledger_errors - seen - SEPARATELY_TESTED
    assert not untested, f"rejections without a case: {sorted(c.__name__ for c in untested)}"


def test_an_unknown_book_reads_0_or_is_refused_where_it_must_exist(store_url):
    m = Market(store_url, users=1, rule=IntegerRule(penalty=10, reward=1, removal=True))
    assert m.ledger.balance("avail:nobody") == 0
    with pytest.raises(e.UnknownBookError, match="avail:nobody"):
        m.ledger.balance("avail:nobody", must_exist=True)
    assert m.ledger.balance("pool", must_exist=True) == m.ledger.pool()


def test_pool_that_cannot_pay_the_rewards_refuses_the_settlement(store_url):
    m = Market(store_url, users=2, rule=IntegerRule(penalty=10, reward=500, removal=True))
    a, b = m.users
    m.fund(a, 10_000)
    m.fund(b, 10_000)
    m.fund_pool(100)
    asset = m.asset(a, 990)
    task = m.task(m.request(b, 10), [asset], [5])
    before = m.snapshot()
    with pytest.raises(e.RewardPoolExhaustedError):
        m.settle(1, task, True)
    assert m.snapshot() == before
    m.fund_pool(400)
    assert m.settle(1, task, True).applied
    assert m.ledger.stake_of(asset) == 1490 and m.ledger.pool() == 0
    m.ledger.close()


def test_opening_a_store_without_a_ledger_is_refused(tmp_path):
    with pytest.raises(e.LedgerNotInitializedError):
        Ledger(f"sqlite:///{tmp_path}/empty.db")
