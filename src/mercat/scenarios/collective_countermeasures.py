"""Counter-measures against seed 000's adversaries: options of the collective mechanism.

Seed 000's rules know an asset only by its stake; an owner who re-enters under a fresh
identity, or splits its stake over many, starts clean. Three options change that; each is
off at its default, and any combination may be on:

- **entry bond** (`entry_bond`, tokens): every new identity pays it when it enters (the
  initial assets and honest replacements too). It is forfeited, not staked: re-entering
  or splitting costs the bond once per identity.
- **stake ramp-up** (`ramp_up_tasks`, tasks): a new identity's selection weight is scaled
  by min(1, (1 + its successful tasks) / (1 + ramp_up_tasks)), so it must earn its share of
  tasks by succeeding; under uniform selection (Coll-Stake) the weight is the factor alone.
- **reputation decay** (`reputation_half_life`, tasks): every penalty an owner's identity
  takes is remembered against the owner, the memory halving every `reputation_half_life`
  tasks; every identity of the owner (a fresh one included) has its selection weight
  scaled by 1 / (1 + memory / `reputation_scale`). This assumes the market can tell which
  identities an owner controls (its stake comes from one account, or owners are known):
  against owners that also split their accounts, only the bond remains.

The selection weight stays the rule's own (the stake under Coll-Rep and Coll-SR, 1 under
Free and Coll-Stake) times these factors, each in (0, 1]; penalties, rewards and removal
are the rule's, unchanged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from mercat import validation as check
from mercat.errors import InvalidParameterError


@dataclass(frozen=True)
class CounterMeasures:
    """Which counter-measures are on, and how strong (module docstring)."""

    entry_bond: float = 0.0  # tokens forfeited by every new identity
    ramp_up_tasks: int = 0  # successes until a new identity has its full weight (0: off)
    reputation_half_life: float = 0.0  # tasks for an owner's penalty memory to halve (0: off)
    reputation_scale: float = 3.0  # remembered penalties that halve an owner's weight

    def __post_init__(self) -> None:
        check.non_negative("entry_bond", self.entry_bond)
        check.integer("ramp_up_tasks", self.ramp_up_tasks, minimum=0)
        check.non_negative("reputation_half_life", self.reputation_half_life)
        check.positive("reputation_scale", self.reputation_scale)
        if not math.isfinite(self.entry_bond) or not math.isfinite(self.reputation_half_life):
            raise InvalidParameterError("entry_bond and reputation_half_life must be finite")

    @property
    def active(self) -> bool:
        return bool(self.entry_bond or self.ramp_up_tasks or self.reputation_half_life)

    @property
    def label(self) -> str:
        """A short name for tables: "none", or the measures that are on."""
        on = [
            name
            for name, value in (
                ("bond", self.entry_bond),
                ("ramp-up", self.ramp_up_tasks),
                ("reputation", self.reputation_half_life),
            )
            if value
        ]
        return "+".join(on) or "none"

    def ramp_factor(self, successes: int) -> float:
        """The weight factor of an identity with `successes` successful tasks."""
        if not self.ramp_up_tasks:
            return 1.0
        return min(1.0, (1 + successes) / (1 + self.ramp_up_tasks))

    def reputation_factor(self, memory: float) -> float:
        """The weight factor of an owner that remembers `memory` (decayed) penalties."""
        if not self.reputation_half_life:
            return 1.0
        return 1.0 / (1.0 + memory / self.reputation_scale)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class OwnerMemory:
    """Penalties remembered per owner, halving every `half_life` tasks (reputation decay).
    Decay is applied lazily: an owner's memory is brought to the current task when read."""

    def __init__(self, half_life: float) -> None:
        self.decay = 0.5 ** (1.0 / half_life) if half_life else 0.0
        self._memory: dict[object, tuple[float, int]] = {}

    def remembered(self, owner: object, task: int) -> float:
        value, at = self._memory.get(owner, (0.0, task))
        return value * self.decay ** (task - at) if value else 0.0

    def penalize(self, owner: object, task: int, penalties: float = 1.0) -> None:
        if not self.decay:
            return
        self._memory[owner] = (self.remembered(owner, task) + penalties, task)
