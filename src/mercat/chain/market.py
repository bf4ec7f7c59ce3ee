"""The market contracts behind one Python interface, the same on every backend.

`ChainMarket.deploy(backend, rule)` deploys the token, the market and (with `oracles=n`)
an oracle quorum as the settlement authority, then exposes the market's operations as
methods over base-unit integers and addresses:

    market = ChainMarket.deploy(BoaBackend(), rule)           # or Web3Backend.eth_tester(),
    alice = market.new_account()                              # Web3Backend.http(url)
    market.fund(alice, 10_000)                                # mint (on-ramp) + deposit
    market.register_asset(alice, asset=1, stake=990)
    market.settle(round=0, task=0, assets=[1], success=True)

Inputs are checked before anything is sent (`InvalidParameterError`); a call the contract
refuses raises the `ContractRevertError` subclass of its reason; either way nothing changes.
`rule` is the collective rule in base units: a `CollectiveRule` (or the ledger's
`IntegerRule`) whose amounts are integers; see `integer_rule` to build one for a mechanism.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

from mercat.chain.backend import ChainBackend, Receipt
from mercat.chain.contracts import ContractArtifact, Event, compile_contract, decode_logs
from mercat.errors import InvalidParameterError
from mercat.incentives.collective import DEFAULT_FLOOR_RATIO, CollectiveRule, mechanism

UINT256_MAX = 2**256 - 1
MAX_TASK_ASSETS = 16  # MAX_ASSETS in Market.vy
STATUS_NAMES = ("unused", "active", "retired", "removed", "replaced")  # the ledger's names


class IntegerRuleLike(Protocol):
    """The fields the market's constructor takes (CollectiveRule and IntegerRule have them)."""

    penalty: Any
    reward: Any
    removal: bool
    removal_inclusive: bool
    stake_floor: Any
    stake_cap: Any
    moves_stakes: bool


def _amount(name: str, value: object, *, positive: bool = False) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= UINT256_MAX:
        raise InvalidParameterError(f"{name} must be an integer in [0, 2**256), got {value!r}")
    if positive and value == 0:
        raise InvalidParameterError(f"{name} must be positive, got 0")
    return value


def integer_rule(
    mechanism_name: str,
    initial_stake: int,
    task_target: str | Fraction | float,
    penalty: int,
    floor_ratio: Fraction = Fraction(DEFAULT_FLOOR_RATIO).limit_denominator(),
    removal_inclusive: bool = True,
) -> CollectiveRule:
    """A mechanism's `CollectiveRule` in base units, computed with fractions.

    R = F·P/(1-F) and the floor S0·floor_ratio are rarely whole numbers of base units for
    arbitrary parameters. The reward is rounded down (an asset never gets more than the
    rule promises; the remainder stays in the pool) and the floor up (the clamp interval
    only shrinks). Choose P so that both are exact, e.g. P = 99·u, R = u for a 1% target
    and S0 a multiple of 1000; then this is the float rule times the unit, exactly.
    A float target is read as the decimal it prints as (0.01 is 1/100).
    """
    for name, value in (("initial_stake", initial_stake), ("penalty", penalty)):
        _amount(name, value, positive=True)
    target = Fraction(str(task_target)) if isinstance(task_target, float) else Fraction(task_target)
    if not 0 < target < 1:
        raise InvalidParameterError(f"task_target must lie in (0, 1), got {task_target!r}")
    mech = mechanism(mechanism_name)
    reward = target * penalty / (1 - target)
    floor = Fraction(initial_stake) * Fraction(floor_ratio)
    return CollectiveRule(
        penalty=penalty,
        reward=reward.numerator // reward.denominator,
        removal=mech.removal,
        removal_inclusive=removal_inclusive,
        stake_floor=-((-floor.numerator) // floor.denominator) if mech.clamped else None,
        stake_cap=initial_stake if mech.clamped else None,
        moves_stakes=mech.moves_stakes,
    )


def default_min_stake(rule: IntegerRuleLike) -> int:
    """The least stake an asset may enter with: one not at the removal level (P + 1, or P
    when removal is at S < P), whether or not the rule removes, as on the SQL ledger."""
    return rule.penalty + 1 if rule.removal_inclusive else rule.penalty


def _constructor_rule(rule: IntegerRuleLike) -> list[Any]:
    values = [rule.penalty, rule.reward]
    values += [rule.stake_floor if rule.stake_floor is not None else 0]
    values += [rule.stake_cap if rule.stake_cap is not None else UINT256_MAX]
    for name, value in zip(("penalty", "reward", "stake_floor", "stake_cap"), values, strict=True):
        _amount(f"rule.{name}", value)
    penalty, reward, floor, cap = values
    return [
        penalty,
        reward,
        bool(rule.removal),
        bool(rule.removal_inclusive),
        bool(rule.moves_stakes),
        floor,
        cap,
    ]


@dataclass(frozen=True)
class TxResult:
    """What one market operation did: its decoded events and the gas the node charged
    (summed over its transactions; None on boa, see `Receipt`)."""

    events: tuple[Event, ...]
    gas_used: int | None
    transactions: int


@dataclass(frozen=True)
class AssetState:
    owner: str
    stake: int
    status: str


@dataclass(frozen=True)
class EscrowState:
    requester: str
    amount: int
    closed: bool


class ChainMarket:
    """Token + market (+ quorum) deployed on one backend. Build with `deploy`."""

    def __init__(
        self,
        backend: ChainBackend,
        admin: str,
        contracts: dict[str, tuple[ContractArtifact, str]],
        rule: IntegerRuleLike,
        oracles: Sequence[str] = (),
        threshold: int = 0,
    ) -> None:
        self.backend = backend
        self.admin = admin
        self._contracts = contracts
        self._by_address = {address: artifact for artifact, address in contracts.values()}
        self.rule = rule
        self.oracles = tuple(oracles)
        self.threshold = threshold
        # Every account, asset and request this facade has touched: what `conservation_gap`
        # sums over.
        self.accounts: set[str] = {admin, *oracles}
        self.assets: set[int] = set()
        self.requests: set[int] = set()

    # --- deployment --------------------------------------------------------------------

    @classmethod
    def deploy(
        cls,
        backend: ChainBackend,
        rule: IntegerRuleLike,
        *,
        min_stake: int | None = None,
        unstake_delay_rounds: int = 10,
        oracles: int = 0,
        threshold: int | None = None,
        decimals: int = 6,
    ) -> ChainMarket:
        """Deploy the contracts. `min_stake` defaults to `default_min_stake(rule)`. With
        `oracles=n`, an n-oracle quorum (threshold q, default n//2 + 1) becomes the
        settlement authority."""
        args = _constructor_rule(rule)
        if min_stake is None:
            min_stake = default_min_stake(rule)
        _amount("min_stake", min_stake, positive=True)
        _amount("unstake_delay_rounds", unstake_delay_rounds)
        if not isinstance(oracles, int) or isinstance(oracles, bool) or not 0 <= oracles <= 32:
            raise InvalidParameterError(f"oracles must be an integer in [0, 32], got {oracles!r}")
        if oracles and threshold is None:
            threshold = oracles // 2 + 1
        admin = backend.new_account()
        token_art, market_art = compile_contract("Token"), compile_contract("Market")
        token, _ = backend.deploy(token_art.init_code(["Mercat", "MCT", decimals]), admin)
        market_address, _ = backend.deploy(
            market_art.init_code([token, admin, *args, min_stake, unstake_delay_rounds]), admin
        )
        contracts = {"Token": (token_art, token), "Market": (market_art, market_address)}
        oracle_accounts: list[str] = []
        if oracles:
            quorum_art = compile_contract("Quorum")
            oracle_accounts = [backend.new_account() for _ in range(oracles)]
            quorum, _ = backend.deploy(
                quorum_art.init_code([market_address, oracle_accounts, threshold]), admin
            )
            contracts["Quorum"] = (quorum_art, quorum)
            backend.transact(
                market_address, market_art.encode_call("set_authority", [quorum]), admin
            )
        return cls(backend, admin, contracts, rule, oracle_accounts, threshold or 0)

    def address(self, contract: str) -> str:
        return self._contracts[contract][1]

    def new_account(self) -> str:
        account = self.backend.new_account()
        self.accounts.add(account)
        return account

    # --- plumbing ----------------------------------------------------------------------

    def _send(self, contract: str, fn: str, args: Sequence[Any], sender: str) -> Receipt:
        artifact, address = self._contracts[contract]
        return self.backend.transact(address, artifact.encode_call(fn, args), sender)

    def _call(self, contract: str, fn: str, *args: Any) -> Any:
        artifact, address = self._contracts[contract]
        return artifact.decode_result(
            fn, self.backend.call(address, artifact.encode_call(fn, args))
        )

    def _result(self, receipts: Sequence[Receipt]) -> TxResult:
        events = tuple(event for r in receipts for event in decode_logs(self._by_address, r.logs))
        gas = [r.gas_used for r in receipts]
        total = None if any(g is None for g in gas) else sum(gas)  # type: ignore[arg-type]
        return TxResult(events, total, len(receipts))

    def _account(self, name: str, account: object) -> str:
        if not isinstance(account, str) or not account.startswith("0x") or len(account) != 42:
            raise InvalidParameterError(f"{name} must be a 0x-prefixed address, got {account!r}")
        return account

    def _tracked(
        self,
        result: TxResult,
        accounts: Sequence[str] = (),
        asset: int | None = None,
        request: int | None = None,
    ) -> TxResult:
        """Remember what an accepted call touched (a refused one leaves no trace)."""
        self.accounts.update(accounts)
        if asset is not None:
            self.assets.add(asset)
        if request is not None:
            self.requests.add(request)
        return result

    # --- money in and out ---------------------------------------------------------------

    def mint(self, account: str, amount: int) -> TxResult:
        """The on-ramp: the admin mints tokens into `account`'s wallet (outside the market)."""
        account = self._account("account", account)
        _amount("amount", amount, positive=True)
        result = self._result([self._send("Token", "mint", [account, amount], self.admin)])
        return self._tracked(result, [account])

    def deposit(self, account: str, amount: int) -> TxResult:
        """Move tokens from `account`'s wallet into its free balance (approve + deposit)."""
        account = self._account("account", account)
        _amount("amount", amount, positive=True)
        market = self.address("Market")
        approve = self._send("Token", "approve", [market, amount], account)
        result = self._result([approve, self._send("Market", "deposit", [amount], account)])
        return self._tracked(result, [account])

    def fund(self, account: str, amount: int) -> TxResult:
        """Mint then deposit: `amount` new tokens land in `account`'s free balance."""
        minted = self.mint(account, amount)
        deposited = self.deposit(account, amount)
        gas = None if minted.gas_used is None else minted.gas_used + deposited.gas_used  # type: ignore[operator]
        return TxResult(minted.events + deposited.events, gas, 3)

    def withdraw(self, account: str, amount: int) -> TxResult:
        account = self._account("account", account)
        _amount("amount", amount, positive=True)
        return self._result([self._send("Market", "withdraw", [amount], account)])

    def transfer(self, sender: str, receiver: str, amount: int) -> TxResult:
        sender, receiver = self._account("sender", sender), self._account("receiver", receiver)
        _amount("amount", amount, positive=True)
        result = self._result([self._send("Market", "transfer", [receiver, amount], sender)])
        return self._tracked(result, [sender, receiver])

    def fund_pool(self, account: str, amount: int) -> TxResult:
        account = self._account("account", account)
        _amount("amount", amount, positive=True)
        return self._result([self._send("Market", "fund_pool", [amount], account)])

    # --- escrows -----------------------------------------------------------------------

    def escrow(self, requester: str, request: int, amount: int) -> TxResult:
        requester = self._account("requester", requester)
        _amount("request", request)
        _amount("amount", amount, positive=True)
        result = self._result([self._send("Market", "escrow", [request, amount], requester)])
        return self._tracked(result, [requester], request=request)

    def refund(self, request: int) -> TxResult:
        _amount("request", request)
        return self._result([self._send("Market", "refund", [request], self.admin)])

    # --- stakes ------------------------------------------------------------------------

    def register_asset(self, owner: str, asset: int, stake: int) -> TxResult:
        owner = self._account("owner", owner)
        _amount("asset", asset)
        _amount("stake", stake, positive=True)
        result = self._result([self._send("Market", "register_asset", [asset, stake], owner)])
        return self._tracked(result, [owner], asset=asset)

    def add_stake(self, owner: str, asset: int, amount: int) -> TxResult:
        owner = self._account("owner", owner)
        _amount("asset", asset)
        _amount("amount", amount, positive=True)
        return self._result([self._send("Market", "add_stake", [asset, amount], owner)])

    def unstake(self, owner: str, asset: int, amount: int) -> TxResult:
        """Stake to the owner's unbonding, releasable `unstake_delay_rounds` later."""
        owner = self._account("owner", owner)
        _amount("asset", asset)
        _amount("amount", amount, positive=True)
        return self._result([self._send("Market", "unstake", [asset, amount], owner)])

    def release(self, account: str) -> TxResult:
        """Matured unbonding back to `account`'s free balance."""
        account = self._account("account", account)
        return self._result([self._send("Market", "release", [], account)])

    def replace_asset(self, owner: str, old: int, new: int, stake: int) -> TxResult:
        """A removed asset's stake carried over to a new asset staked at `stake`."""
        owner = self._account("owner", owner)
        _amount("old", old)
        _amount("new", new)
        _amount("stake", stake, positive=True)
        result = self._result([self._send("Market", "replace_asset", [old, new, stake], owner)])
        return self._tracked(result, [owner], asset=new)

    def advance_round(self, round: int) -> TxResult:
        """Move the clock to `round` (a round not above the current one changes nothing)."""
        _amount("round", round)
        return self._result([self._send("Market", "advance_round", [round], self.admin)])

    # --- settlement --------------------------------------------------------------------

    def settlement_args(
        self,
        round: int,
        task: int,
        assets: Sequence[int],
        success: bool,
        request: int = 0,
        payouts: Sequence[int] | None = None,
    ) -> list[Any]:
        """Checked, contract-ordered arguments of a settlement: assets sorted ascending
        (the contract's order), payouts permuted with them."""
        _amount("round", round)
        _amount("task", task)
        _amount("request", request)
        if not isinstance(success, bool):
            raise InvalidParameterError(f"success must be a bool, got {success!r}")
        ids = [_amount("asset", a) for a in assets]
        if not 0 < len(ids) <= MAX_TASK_ASSETS:
            raise InvalidParameterError(
                f"a task runs on 1 to {MAX_TASK_ASSETS} assets, got {len(ids)}"
            )
        if len(set(ids)) != len(ids):
            raise InvalidParameterError(f"task assets repeat: {ids!r}")
        pays = [] if payouts is None else [_amount("payout", p) for p in payouts]
        if pays and len(pays) != len(ids):
            raise InvalidParameterError(f"{len(pays)} payouts for {len(ids)} assets")
        order = sorted(range(len(ids)), key=ids.__getitem__)
        return [
            round,
            task,
            request,
            [ids[i] for i in order],
            [pays[i] for i in order] if pays else [],
            success,
        ]

    def settle(
        self,
        round: int,
        task: int,
        assets: Sequence[int],
        success: bool,
        request: int = 0,
        payouts: Sequence[int] | None = None,
    ) -> TxResult:
        """Settle one task as the authority: the admin, or the first q oracles reporting
        the same settlement to the quorum (q transactions, the last one settles)."""
        args = self.settlement_args(round, task, assets, success, request, payouts)
        if "Quorum" not in self._contracts:
            return self._result([self._send("Market", "settle", args, self.admin)])
        return self._result(
            [self._send("Quorum", "report", args, o) for o in self.oracles[: self.threshold]]
        )

    def report(
        self,
        oracle: str,
        round: int,
        task: int,
        assets: Sequence[int],
        success: bool,
        request: int = 0,
        payouts: Sequence[int] | None = None,
    ) -> TxResult:
        """One oracle's report to the quorum (only with `oracles`)."""
        if "Quorum" not in self._contracts:
            raise InvalidParameterError("this market was deployed without an oracle quorum")
        args = self.settlement_args(round, task, assets, success, request, payouts)
        return self._result([self._send("Quorum", "report", args, oracle)])

    # --- views -------------------------------------------------------------------------

    def balance(self, account: str) -> int:
        """Free balance inside the market."""
        return self._call("Market", "balances", account)

    def wallet(self, account: str) -> int:
        """Token balance outside the market."""
        return self._call("Token", "balanceOf", account)

    def escrow_of(self, request: int) -> EscrowState:
        return EscrowState(*self._call("Market", "escrows", request))

    def asset(self, asset: int) -> AssetState:
        owner, stake, status = self._call("Market", "assets", asset)
        return AssetState(owner, stake, STATUS_NAMES[status])

    def stake(self, asset: int) -> int:
        return self.asset(asset).stake

    def unbonding(self, account: str) -> int:
        """Unstaked tokens of `account` waiting out the delay."""
        return self._call("Market", "unbonding", account)

    def reward_pool(self) -> int:
        return self._call("Market", "reward_pool")

    def current_round(self) -> int:
        return self._call("Market", "current_round")

    def is_settled(self, round: int, task: int) -> bool:
        return self._call("Market", "is_settled", round, task)

    def held(self) -> int:
        """Tokens the market contract holds."""
        return self._call("Token", "balanceOf", self.address("Market"))

    def total_supply(self) -> int:
        return self._call("Token", "totalSupply")

    def conservation_gap(self) -> int:
        """held() minus what the known places account for: balances + escrows + stakes +
        unbonding + pool. Zero whenever every token the market holds is accounted for
        exactly once."""
        accounted = sum(self.balance(a) + self.unbonding(a) for a in self.accounts)
        accounted += sum(self.escrow_of(r).amount for r in self.requests)
        accounted += sum(self.stake(a) for a in self.assets)
        return self.held() - accounted - self.reward_pool()
