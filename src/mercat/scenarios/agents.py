"""Requesters as agents: how each one bids for its jobs, and what it learns every round.

In the marketplace scenario (`mercat.scenarios.marketplace`), every round each requester
posts jobs; the scenario draws what a job needs and what it is worth to its requester (its
value, in tokens), and the requester's strategy says what it bids (the job's escrowed
`max_price`). After the round, the strategy's `step` hook sees how its jobs fared (served or
not, paid, charged), as agents of an agent-based model do, and may change how it bids next.

A strategy is a small class with a `name`, a `summary`, one decision method (`bid`) and the
optional hook (`step`); each requester gets its own instance, so a strategy keeps its state
on `self`. A bid under one base unit (0 included) means the requester does not post that job
(a strategy out of budget sits the round out); the job's draws are made all the same, so
the other requesters' jobs do not change. mercat's (`REQUESTER_STRATEGIES`):

- `truthful`: bids the job's value (the default; the scenario's bids before strategies);
- `shading`: bids a fixed fraction of the value;
- `adaptive`: bids a multiplier of the value that rises after a round in which one of its
  jobs went unserved and falls after a round in which all were served.

Others are plug-ins (entry points in the group `mercat.requester_strategies`,
`REQUESTER_STRATEGIES.register(...)`, or `module:Class`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from mercat import validation as check
from mercat.errors import InvalidParameterError
from mercat.plugins import GROUPS
from mercat.registry import ClassRegistry


@dataclass(frozen=True)
class Job:
    """A job a requester is about to post: what it needs and what it is worth (tokens)."""

    requester: str
    job: str
    round: int
    gpus: int
    replicas: int
    named_assets: int  # assets (a model) the job names by CID
    value: float


@dataclass(frozen=True)
class JobOutcome:
    """How one of a requester's jobs fared in a round: served (a task opened), paid (its
    task succeeded and was charged), and what it was charged (tokens)."""

    job: str
    served: bool
    paid: bool
    charged: float


class RequesterStrategy(ABC):
    """How a requester bids (module docstring). Subclasses set `name` and `summary` and
    write `bid`; `step` is an optional hook called after every round."""

    name: ClassVar[str]
    summary: ClassVar[str]

    @abstractmethod
    def bid(self, job: Job) -> float:
        """The job's bid in tokens (its max_price); at most what the requester can escrow.
        A bid under one base unit (0 included) keeps the job out of the market this round."""

    def step(self, round_: int, outcomes: Mapping[str, JobOutcome]) -> None:  # noqa: B027
        """After round `round_`: how this requester's jobs posted so far fared in it."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Truthful(RequesterStrategy):
    """Bids what the job is worth."""

    name = "truthful"
    summary = "bids the job's value"

    def bid(self, job: Job) -> float:
        return job.value


class Shading(RequesterStrategy):
    """Bids a fixed fraction of what the job is worth (below 1: shades the bid)."""

    name = "shading"
    summary = "bids fraction × the job's value"

    def __init__(self, fraction: float = 0.8) -> None:
        self.fraction = float(check.positive("fraction", fraction))

    def bid(self, job: Job) -> float:
        return self.fraction * job.value


class Adaptive(RequesterStrategy):
    """Starts low and learns: its multiplier of the value rises by `up` after a round that
    left one of its jobs unserved and falls by `down` after a round that served them all,
    within [`floor`, 1]."""

    name = "adaptive"
    summary = "bids a multiplier of the value that rises when unserved, falls when served"

    def __init__(
        self, start: float = 0.6, up: float = 1.15, down: float = 0.95, floor: float = 0.2
    ) -> None:
        self.multiplier = float(check.positive("start", start))
        self.up = float(check.positive("up", up))
        self.down = float(check.positive("down", down))
        self.floor = float(check.positive("floor", floor))
        if not self.floor <= self.multiplier <= 1 or self.up < 1 or self.down > 1:
            raise InvalidParameterError(
                "adaptive bidding needs floor <= start <= 1, up >= 1 and down <= 1"
            )

    def bid(self, job: Job) -> float:
        return self.multiplier * job.value

    def step(self, round_: int, outcomes: Mapping[str, JobOutcome]) -> None:
        if not outcomes:
            return
        if all(o.served for o in outcomes.values()):
            self.multiplier = max(self.floor, self.multiplier * self.down)
        else:
            self.multiplier = min(1.0, self.multiplier * self.up)


REQUESTER_STRATEGIES: ClassRegistry[type[RequesterStrategy]] = ClassRegistry(
    "requester strategy",
    (Truthful, Shading, Adaptive),
    group=GROUPS["requester strategy"],
    base=RequesterStrategy,
)
"""Requester strategies by name: mercat's three, then the registered and installed ones."""


def requester_strategy(name: str, **options: object) -> RequesterStrategy:
    """A new agent of the strategy called `name` (or `module:Class`) with its options."""
    cls = REQUESTER_STRATEGIES.resolve(name)
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidParameterError):
            raise
        raise InvalidParameterError(f"requester strategy {name!r}: bad options ({exc})") from exc
