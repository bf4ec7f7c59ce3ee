"""The parameters a ledger is created with. They never change after `Ledger.init`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from mercat.errors import InvalidParameterError
from mercat.identity import check_public_key
from mercat.incentives.integer_rule import IntegerRule, Tokens
from mercat.ledger.messages import check_ledger_id


@dataclass(frozen=True)
class LedgerConfig:
    """A market's money rules.

    `operator`: public key (hex) that may deposit (it is the gateway from outside tokens),
    register oracles, open tasks, pay nodes and advance the round.
    `rule`: the collective rule in base units. `min_stake`: the least stake an asset may
    hold while active (default and lower bound: `rule.minimum_stake`, a stake not already
    at the removal level). `unstake_delay_rounds`: unstaked tokens wait this many rounds
    before they can be released (rounds, not seconds: rounds are what settlements carry,
    so the delay is deterministic and replays the same on every store and on chain).
    `quorum`: how many oracles of the set must agree before a task settles.
    `unit`: base units per token, for display only.
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
        if self.min_stake is None:
            object.__setattr__(self, "min_stake", self.rule.minimum_stake)
        for name in ("min_stake", "unstake_delay_rounds", "quorum", "unit"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidParameterError(f"{name} must be a non-negative integer, got {value!r}")
        if self.min_stake < self.rule.minimum_stake:  # type: ignore[operator]
            raise InvalidParameterError(
                f"min_stake {self.min_stake} is at the removal level; "
                f"it must be at least {self.rule.minimum_stake}"
            )
        if self.quorum < 1 or self.unit < 1:
            raise InvalidParameterError("quorum and unit must be at least 1")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LedgerConfig:
        data = json.loads(text)
        data["rule"] = IntegerRule(**data["rule"])
        return cls(**data)
