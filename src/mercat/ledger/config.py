"""The parameters a ledger is created with. They never change after `Ledger.init`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from mercat.errors import InvalidParameterError, LedgerIntegrityError
from mercat.identity import check_public_key
from mercat.incentives.integer_rule import IntegerRule, Tokens
from mercat.ledger.messages import check_ledger_id
from mercat.runtime.limits import MAX_BALANCE, stake_bounds
from mercat.untrusted import shown

MAX_UNSTAKE_DELAY = 10**9
"""The longest unstake delay, in rounds: beyond the life of any market, and small enough
that a release round (the round now plus the delay) stays an exact 64-bit integer."""
MAX_QUORUM = 1_000
"""The most oracles a quorum may need (each settlement verifies that many signatures)."""
MAX_UNIT = 10**18
"""The most base units per token (an ERC-20 token's 18 decimals)."""


@dataclass(frozen=True)
class LedgerConfig:
    """A market's money rules.

    `operator`: public key (hex) that may deposit (it is the gateway from outside tokens),
    register oracles, open tasks, pay nodes and advance the round.
    `rule`: the collective rule in base units; its amounts below 2^62. `min_stake`: the
    least stake an asset may hold while active (lower bound: `rule.minimum_stake`, a stake
    not already at the removal level; default: that or the rule's clamp floor, whichever is
    larger); with the clamp, an active asset's stake stays in `stake_bounds`.
    `unstake_delay_rounds`: unstaked tokens wait this many rounds (at most
    `MAX_UNSTAKE_DELAY`) before they can be released (rounds, not seconds: rounds are what
    settlements carry, so the delay is deterministic and replays the same on every store and
    on chain). `quorum`: how many oracles of the set must agree before a task settles (at
    most `MAX_QUORUM`). `unit`: base units per token (at most `MAX_UNIT`), for display only.
    `ledger_id`: what every message and oracle report signed for this ledger names (32 hex
    digits); `Ledger.init` draws one at random when it is left empty, so that no two ledgers
    share one and a message signed for one is refused by every other.
    """

    operator: str
    rule: IntegerRule
    min_stake: Tokens | None = None
    unstake_delay_rounds: int = 10
    quorum: int = 1
    unit: int = 10**6
    ledger_id: str = ""

    def __post_init__(self) -> None:
        check_public_key(self.operator, "operator")
        if self.ledger_id:
            check_ledger_id(self.ledger_id, "ledger_id")
        if not isinstance(self.rule, IntegerRule):
            raise InvalidParameterError(f"rule must be an IntegerRule, got {shown(self.rule)}")
        for name in ("penalty", "reward", "stake_floor", "stake_cap"):
            value = getattr(self.rule, name)
            if value is not None and value > MAX_BALANCE:
                raise InvalidParameterError(
                    f"the rule's {name} is {value} base units; amounts stay below 2^62 "
                    f"({MAX_BALANCE + 1})"
                )
        if self.min_stake is None:
            default = max(self.rule.minimum_stake, self.rule.stake_floor or 0)
            object.__setattr__(self, "min_stake", default)
        for name, lowest, highest in (
            ("min_stake", 1, MAX_BALANCE),
            ("unstake_delay_rounds", 0, MAX_UNSTAKE_DELAY),
            ("quorum", 1, MAX_QUORUM),
            ("unit", 1, MAX_UNIT),
        ):
            value = getattr(self, name)
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not lowest <= value <= highest
            ):
                raise InvalidParameterError(
                    f"{name} must be an integer in [{lowest}, {highest}], got {shown(value)}"
                )
        if self.min_stake < self.rule.minimum_stake:  # type: ignore[operator]
            raise InvalidParameterError(
                f"min_stake {self.min_stake} is at the removal level; "
                f"it must be at least {self.rule.minimum_stake}"
            )
        lowest, highest = self.stake_bounds
        if lowest > highest:
            raise InvalidParameterError(
                f"no stake fits: the minimum stake {lowest} is above the stake cap {highest}"
            )

    @property
    def stake_bounds(self) -> tuple[int, int]:
        """(lowest, highest) stake of an active asset: `mercat.runtime.limits`."""
        return stake_bounds(self.rule, self.min_stake)  # type: ignore[arg-type]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LedgerConfig:
        """The configuration a store holds; LedgerIntegrityError if it is not one."""
        try:
            data = json.loads(text)
            data["rule"] = IntegerRule(**data["rule"])
            return cls(**data)
        except (ValueError, TypeError, KeyError) as exc:
            raise LedgerIntegrityError(f"the stored configuration is not valid: {exc}") from None
