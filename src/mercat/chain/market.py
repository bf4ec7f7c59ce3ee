"""The market contracts behind one Python interface, the same on every backend.

`ChainMarket.deploy(backend, rule)` deploys the token, the market and (with `oracles=n`)
an oracle quorum as the settlement authority, then exposes the market's operations as
methods over addresses, mercat's names and its terms types (`Offer`, `RequestTerms`,
`TaskTerms`), amounts in integer base units:

    market = ChainMarket.deploy(BoaBackend(), rule)           # or Web3Backend.eth_tester(),
    alice, carol = market.new_account(), market.new_account() # Web3Backend.http(url)
    market.fund(alice, 10_000)                                # mint (on-ramp) + deposit
    market.register_asset(alice, "gpu-1", stake=990)
    market.post_offer(alice, Offer("gpu-1", capacity={"gpu": 4}, cost=100))
    market.post_request(carol, RequestTerms("job-1", max_price=500, demand={"gpu": 2}))
    market.open_tasks(1, [TaskTerms("t0", "job-1", ("gpu-1",), (120,), 150)])
    market.settle_tasks(1, [Settlement(task, "operator", paid=True)])

Names become the contract's ids as `mercat.chain.encoding` says (keccak256); the facade
remembers every name it hashed, so events come back with names. Inputs are checked before
anything is sent (`InvalidParameterError`, or the terms types' own `MalformedMessageError`);
a call the contract refuses raises the `ContractRevertError` subclass of its reason; either
way nothing changes. `rule` is the collective rule in base units: an `IntegerRule` (or a
`CollectiveRule` whose amounts are integers; see `integer_rule`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

from eth_utils import (
    is_checksum_address,
    is_checksum_formatted_address,
    is_hex_address,
    to_checksum_address,
)

from mercat.chain import encoding
from mercat.chain.backend import ChainBackend, Receipt
from mercat.chain.contracts import ContractArtifact, Event, compile_contract, decode_logs
from mercat.errors import InvalidParameterError
from mercat.incentives.collective import DEFAULT_FLOOR_RATIO, CollectiveRule, mechanism
from mercat.runtime.records import MARGIN_HOLDERS
from mercat.runtime.terms import PPB, Offer, RequestTerms, TaskTerms
from mercat.untrusted import shown

UINT256_MAX = 2**256 - 1
MAX_TASK_ASSETS = 32  # MAX_TASK_ASSETS in Market.vy
MAX_BATCH = 32  # tasks per open_tasks / settle_tasks / report transaction (Market.vy)
MAX_CALL_SERVERS = 128  # distinct servers one open_tasks transaction binds (Market.vy)
STATUS_NAMES = ("unused", "active", "retired", "removed", "replaced")  # the ledger's names
REQUEST_STATUS_NAMES = ("unknown", "open", "assigned", "closed")
SETTLED_COMMITMENT = (1).to_bytes(32, "big")  # SETTLED in Market.vy
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


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
        raise InvalidParameterError(f"{name} must be an integer in [0, 2**256), got {shown(value)}")
    if positive and value == 0:
        raise InvalidParameterError(f"{name} must be positive, got 0")
    return value


def _name(what: str, value: object) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidParameterError(f"{what} must be 1-64 of [A-Za-z0-9_.-], got {shown(value)}")
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
        raise InvalidParameterError(f"task_target must lie in (0, 1), got {shown(task_target)}")
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
class Settlement:
    """One task to settle: its terms as opened, its margin holder, and the verdict (`paid`:
    it succeeded and met its SLA). Through an oracle quorum, `paid` is the quorum's."""

    task: TaskTerms
    margin_to: str
    paid: bool


@dataclass(frozen=True)
class Verdict:
    """One oracle's verdict on one task (what the quorum counts)."""

    task: str
    success: bool
    sla_met: bool
    digest: str | None = None


@dataclass(frozen=True)
class TxResult:
    """What one market operation did: its decoded events and the gas the node charged
    (summed over its transactions; None on boa, see `Receipt`)."""

    events: tuple[Event, ...]
    gas_used: int | None
    transactions: int

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.name == name]


@dataclass(frozen=True)
class AssetState:
    owner: str
    stake: int
    status: str
    kind: str | None  # None: not offered
    cost: int
    offer_digest: bytes
    open_tasks: int


@dataclass(frozen=True)
class RequestState:
    owner: str
    status: str  # unknown, open, assigned, closed
    round: int
    served: int
    open_tasks: int
    escrow: int
    digest: bytes


@dataclass(frozen=True)
class TaskState:
    status: str  # unknown, open, settled
    held: int


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
        # Every account, asset and request this facade has touched and every task it opened
        # and has not settled: what `conservation_gap` sums over; and every name it
        # hashed, to read events back.
        self.accounts: set[str] = {admin, *oracles}
        self.assets: set[str] = set()
        self.requests: set[str] = set()
        self.tasks: set[tuple[int, str]] = set()
        self.names: dict[int, str] = {}

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
            raise InvalidParameterError(
                f"oracles must be an integer in [0, 32], got {shown(oracles)}"
            )
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

    @property
    def has_quorum(self) -> bool:
        return "Quorum" in self._contracts

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
        """`account` in its checksummed form (one spelling per account, so the accounts
        `conservation_gap` sums over are counted once), if it is an address: 0x and 40
        hex digits, in one case or with a valid EIP-55 checksum."""
        if (
            not isinstance(account, str)
            or not account.startswith("0x")
            or len(account) != 42
            or not is_hex_address(account)
            or (is_checksum_formatted_address(account) and not is_checksum_address(account))
        ):
            raise InvalidParameterError(
                f"{name} must be a 0x-prefixed address, got {shown(account)}"
            )
        return to_checksum_address(account)

    def _id(self, what: str, name: object) -> int:
        """The contract's id of a name (remembered, to read events back)."""
        identifier = encoding.chain_id(_name(what, name))
        self.names[identifier] = name  # type: ignore[assignment]
        return identifier

    def name_of(self, identifier: int) -> str:
        """The name behind a contract id this facade hashed (its hex form otherwise)."""
        return self.names.get(identifier, hex(identifier))

    # --- money in and out ---------------------------------------------------------------

    def mint(self, account: str, amount: int) -> TxResult:
        """The on-ramp: the admin mints tokens into `account`'s wallet (outside the market)."""
        account = self._account("account", account)
        _amount("amount", amount, positive=True)
        result = self._result([self._send("Token", "mint", [account, amount], self.admin)])
        self.accounts.add(account)
        return result

    def deposit(self, account: str, amount: int) -> TxResult:
        """Move tokens from `account`'s wallet into its free balance (approve + deposit).

        The approval adds `amount` to whatever the account already lets the market pull,
        and the deposit pulls exactly `amount`, so the allowance ends as it began (an
        unlimited one, 2**256 - 1, which the token never draws down, included); a refused
        deposit sets it back before its error is raised."""
        account = self._account("account", account)
        _amount("amount", amount, positive=True)
        market = self.address("Market")
        previous = self.allowance(account)
        approval = min(previous + amount, UINT256_MAX)
        receipts = [self._send("Token", "approve", [market, approval], account)]
        try:
            receipts.append(self._send("Market", "deposit", [amount], account))
        except Exception as refused:
            # The approval was for this deposit only: left in place, it would let the
            # market pull `amount` more than the account agreed to.
            try:
                self._send("Token", "approve", [market, previous], account)
            except Exception as exc:
                refused.add_note(
                    f"the allowance of {account} to the market could not be set back "
                    f"to {previous}: {exc}"
                )
            raise
        result = self._result(receipts)
        self.accounts.add(account)
        return result

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
        self.accounts.update((sender, receiver))
        return result

    def fund_pool(self, account: str, amount: int) -> TxResult:
        account = self._account("account", account)
        _amount("amount", amount, positive=True)
        return self._result([self._send("Market", "fund_pool", [amount], account)])

    def advance_round(self, round: int) -> TxResult:
        """Move the clock to `round` (a round not above the current one changes nothing)."""
        _amount("round", round)
        return self._result([self._send("Market", "advance_round", [round], self.admin)])

    # --- stakes ------------------------------------------------------------------------

    def register_asset(self, owner: str, asset: str, stake: int) -> TxResult:
        owner = self._account("owner", owner)
        identifier = self._id("asset", asset)
        _amount("stake", stake, positive=True)
        result = self._result([self._send("Market", "register_asset", [identifier, stake], owner)])
        self.assets.add(asset)
        return result

    def add_stake(self, owner: str, asset: str, amount: int) -> TxResult:
        owner = self._account("owner", owner)
        _amount("amount", amount, positive=True)
        args = [self._id("asset", asset), amount]
        return self._result([self._send("Market", "add_stake", args, owner)])

    def unstake(self, owner: str, asset: str, amount: int) -> TxResult:
        """Stake to the owner's unbonding, releasable `unstake_delay_rounds` later."""
        owner = self._account("owner", owner)
        _amount("amount", amount, positive=True)
        args = [self._id("asset", asset), amount]
        return self._result([self._send("Market", "unstake", args, owner)])

    def release(self, account: str) -> TxResult:
        """Matured unbonding back to `account`'s free balance."""
        account = self._account("account", account)
        return self._result([self._send("Market", "release", [], account)])

    def replace_asset(self, owner: str, old: str, new: str, stake: int) -> TxResult:
        """A removed asset's stake carried over to a new asset staked at `stake`."""
        owner = self._account("owner", owner)
        _amount("stake", stake, positive=True)
        args = [self._id("old", old), self._id("new", new), stake]
        result = self._result([self._send("Market", "replace_asset", args, owner)])
        self.assets.add(new)
        return result

    # --- offers and requests -------------------------------------------------------------

    def post_offer(self, owner: str, offer: Offer) -> TxResult:
        """The owner's (new) standing offer for its asset `offer.asset`."""
        owner = self._account("owner", owner)
        if not isinstance(offer, Offer):
            raise InvalidParameterError(f"offer must be an Offer, got {shown(offer)}")
        if offer.cid is not None:
            self.names[encoding.chain_id(offer.cid)] = offer.cid
        args = [self._id("asset", offer.asset), encoding.offer_struct(offer)]
        return self._result([self._send("Market", "post_offer", args, owner)])

    def post_request(self, owner: str, terms: RequestTerms) -> TxResult:
        """Post a request; its `max_price` moves from `owner`'s balance into its escrow."""
        owner = self._account("owner", owner)
        if not isinstance(terms, RequestTerms):
            raise InvalidParameterError(f"terms must be RequestTerms, got {shown(terms)}")
        self._id("request", terms.request)
        for reference in terms.assets:
            self.names[encoding.chain_id(reference)] = reference
        struct = encoding.terms_struct(terms)
        result = self._result([self._send("Market", "post_request", [struct], owner)])
        self.requests.add(terms.request)
        self.accounts.add(owner)
        return result

    def withdraw_request(self, signer: str, request: str) -> TxResult:
        """Close an open request and refund its escrow (its owner or the admin may)."""
        signer = self._account("signer", signer)
        args = [self._id("request", request)]
        return self._result([self._send("Market", "withdraw_request", args, signer)])

    # --- tasks -------------------------------------------------------------------------

    def _task_struct(self, task: object) -> tuple[Any, ...]:
        if not isinstance(task, TaskTerms):
            raise InvalidParameterError(f"a task must be TaskTerms, got {shown(task)}")
        self._id("task", task.task)
        self._id("request", task.request)
        for asset in task.assets:
            self._id("asset", asset)
        if not 0 < len(task.assets) <= MAX_TASK_ASSETS:
            raise InvalidParameterError(
                f"a task binds 1 to {MAX_TASK_ASSETS} assets, got {len(task.assets)}"
            )
        for value in (*task.payouts, task.charge):
            _amount("amount", value)
        if not 0 < task.fraction <= PPB:
            raise InvalidParameterError(f"task.fraction must lie in [1, {PPB}]")
        return encoding.task_struct(task)

    @staticmethod
    def _batch(items: Sequence[Any], what: str) -> None:
        if len(items) > MAX_BATCH:
            raise InvalidParameterError(
                f"{len(items)} {what} in one transaction; the contract takes at most {MAX_BATCH}"
            )

    @staticmethod
    def _margin(margin_to: object) -> int:
        if margin_to not in MARGIN_HOLDERS:
            raise InvalidParameterError(
                f"margin_to must be one of {', '.join(MARGIN_HOLDERS)}, got {shown(margin_to)}"
            )
        return encoding.MARGIN_CODES[margin_to]  # type: ignore[index]

    def open_tasks(
        self, round: int, tasks: Sequence[TaskTerms], margin_to: str = "operator"
    ) -> TxResult:
        """The admin opens tasks of `round` (at most `MAX_BATCH`), all or none; the contract
        checks each against what its owners posted."""
        _amount("round", round)
        self._batch(tasks, "tasks")
        args = [round, [self._task_struct(t) for t in tasks], self._margin(margin_to)]
        result = self._result([self._send("Market", "open_tasks", args, self.admin)])
        self.tasks.update((round, t.task) for t in tasks)
        return result

    def _settlements(self, items: Sequence[Settlement]) -> list[tuple[Any, ...]]:
        out = []
        for item in items:
            if not isinstance(item, Settlement) or not isinstance(item.paid, bool):
                raise InvalidParameterError(f"expected a Settlement, got {shown(item)}")
            out.append((self._task_struct(item.task), self._margin(item.margin_to), item.paid))
        return out

    def settle_tasks(
        self, round: int, items: Sequence[Settlement], sender: str | None = None
    ) -> TxResult:
        """Settle tasks of `round` (at most `MAX_BATCH`), all or none, in order. Without a
        quorum the admin, the authority, sends the verdicts; with one, `sender` (anyone;
        the admin by default) asks the quorum to settle on its decided verdicts."""
        _amount("round", round)
        self._batch(items, "settlements")
        args = [round, self._settlements(items)]
        contract = "Quorum" if self.has_quorum else "Market"
        sender = self.admin if sender is None else self._account("sender", sender)
        result = self._result([self._send(contract, "settle_tasks", args, sender)])
        self.tasks.difference_update((round, item.task.task) for item in items)
        return result

    def report(self, oracle: str, round: int, verdicts: Sequence[Verdict]) -> TxResult:
        """One oracle's verdicts on tasks of `round` (at most `MAX_BATCH`) to the quorum."""
        if not self.has_quorum:
            raise InvalidParameterError("this market was deployed without an oracle quorum")
        oracle = self._account("oracle", oracle)
        _amount("round", round)
        self._batch(verdicts, "verdicts")
        structs = []
        for v in verdicts:
            if (
                not isinstance(v, Verdict)
                or not isinstance(v.success, bool)
                or not isinstance(v.sla_met, bool)
            ):
                raise InvalidParameterError(f"expected a Verdict, got {shown(v)}")
            structs.append(
                (self._id("task", v.task), v.success, v.sla_met, encoding.result_digest(v.digest))
            )
        return self._result([self._send("Quorum", "report", [round, structs], oracle)])

    # --- views -------------------------------------------------------------------------

    def balance(self, account: str) -> int:
        """Free balance inside the market."""
        return self._call("Market", "balances", self._account("account", account))

    def wallet(self, account: str) -> int:
        """Token balance outside the market."""
        return self._call("Token", "balanceOf", self._account("account", account))

    def allowance(self, account: str) -> int:
        """Tokens the market may still pull from `account`'s wallet (the token's allowance)."""
        return self._call(
            "Token", "allowance", self._account("account", account), self.address("Market")
        )

    def asset(self, asset: str) -> AssetState:
        owner, stake, status, kind, cost, _, _, digest, open_tasks = self._call(
            "Market", "assets", self._id("asset", asset)
        )
        kind_name = None if kind == 0 else tuple(encoding.KIND_CODES)[kind - 1]
        return AssetState(owner, stake, STATUS_NAMES[status], kind_name, cost, digest, open_tasks)

    def stake(self, asset: str) -> int:
        return self.asset(asset).stake

    def request(self, request: str) -> RequestState:
        identifier = self._id("request", request)
        owner, status, round_, served, open_tasks, _, _, digest = self._call(
            "Market", "requests", identifier
        )
        escrow = self._call("Market", "escrows", identifier)
        return RequestState(
            owner, REQUEST_STATUS_NAMES[status], round_, served, open_tasks, escrow, digest
        )

    def escrow_of(self, request: str) -> int:
        return self._call("Market", "escrows", self._id("request", request))

    def task(self, round: int, task: str) -> TaskState:
        identifier = self._id("task", task)
        commitment = self._call("Market", "task_commitment", round, identifier)
        held = self._call("Market", "task_held", round, identifier)
        if commitment == bytes(32):
            return TaskState("unknown", held)
        return TaskState("settled" if commitment == SETTLED_COMMITMENT else "open", held)

    def verdict(self, round: int, task: str) -> tuple[bool, bool, bool]:
        """(decided, success, sla_met) of a task on the quorum."""
        return self._call("Quorum", "verdict", round, self._id("task", task))

    def unbonding(self, account: str) -> int:
        """Unstaked tokens of `account` waiting out the delay."""
        return self._call("Market", "unbonding", self._account("account", account))

    def reward_pool(self) -> int:
        return self._call("Market", "reward_pool")

    def current_round(self) -> int:
        return self._call("Market", "current_round")

    def held(self) -> int:
        """Tokens the market contract holds."""
        return self._call("Token", "balanceOf", self.address("Market"))

    def total_supply(self) -> int:
        return self._call("Token", "totalSupply")

    def open_task_holds(self, tasks: Iterable[tuple[int, str]] | None = None) -> int:
        """What the holds of the known tasks (or of `tasks`) hold together."""
        return sum(self.task(r, t).held for r, t in (self.tasks if tasks is None else tasks))

    def conservation_gap(self) -> int:
        """held() minus what the known places account for: balances + escrows + holds +
        stakes + unbonding + pool. Zero whenever every token the market holds is accounted
        for exactly once."""
        accounted = sum(self.balance(a) + self.unbonding(a) for a in self.accounts)
        accounted += sum(self.escrow_of(r) for r in self.requests)
        accounted += sum(self.stake(a) for a in self.assets)
        accounted += self.open_task_holds()
        return self.held() - accounted - self.reward_pool()
