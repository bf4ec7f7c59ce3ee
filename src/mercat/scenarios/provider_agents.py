"""Providers as agents: what each one asks for its servers, and what it learns every round.

In the marketplace scenario (`mercat.scenarios.marketplace`) every server has a true cost (a
fixed cost per round it is used and a cost per GPU it serves). Before each round the
provider's strategy says what it *asks*: a factor of the true cost (1 asks the cost itself,
1.2 asks 20 % above it), posted as the server's offer (`Offer.cost` and `unit_costs`), which
the clearing treats as the server's cost. After the round the strategy's `step` hook sees
how each of its servers fared (assigned to a task or not, and what it was paid), as agents
of an agent-based model do, and may change what it asks next. Its profit is what it was paid
less the true cost of what it served, so shading the ask trades the margin per task against
the chance of being assigned at all.

A strategy is a small class with a `name`, a `summary`, one decision method (`ask`) and the
optional hook (`step`); each provider gets its own instance, so a strategy keeps its state
on `self`. mercat's (`PROVIDER_STRATEGIES`):

- `truthful`: asks its true cost (the default; the scenario's offers before strategies);
- `markup`: asks a fixed markup above its true cost;
- `adaptive-markup`: raises its markup after a round in which all its servers were
  assigned, lowers it (not below `floor`) after a round in which one of them was idle.

Others are plug-ins (entry points in the group `mercat.provider_strategies`,
`PROVIDER_STRATEGIES.register(...)`, or `module:Class`); `mercat.testing.provider_strategy`
is the contract a plug-in runs on itself.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from mercat import validation as check
from mercat.errors import InvalidParameterError
from mercat.plugins import GROUPS
from mercat.registry import ClassRegistry

MAX_ASK_FACTOR = 1000.0
"""The largest factor of its true cost a server may ask (keeps offers inside a book's
integer range whatever a plug-in returns)."""


@dataclass(frozen=True)
class ServerCosts:
    """A server about to be offered for a round: its true costs, in tokens."""

    provider: str
    server: str
    round: int
    fixed_cost: float  # per round in which the server is used
    unit_cost: float  # per GPU it serves
    capacity: int  # GPUs


@dataclass(frozen=True)
class ServerOutcome:
    """How one of a provider's servers fared in a round: assigned to a task or not, what
    it was paid (tokens, for tasks that succeeded) and the ask factor it had posted."""

    server: str
    assigned: bool
    paid: float
    ask_factor: float


class ProviderStrategy(ABC):
    """How a provider prices its servers (module docstring). Subclasses set `name` and
    `summary` and write `ask`; `step` is an optional hook called after every round."""

    name: ClassVar[str]
    summary: ClassVar[str]

    @abstractmethod
    def ask(self, server: ServerCosts) -> float:
        """The server's ask for this round as a factor of its true cost: a finite number in
        [0, MAX_ASK_FACTOR] (1: the cost itself)."""

    def step(self, round_: int, outcomes: Mapping[str, ServerOutcome]) -> None:  # noqa: B027
        """After round `round_`: how each of this provider's servers fared in it."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class TruthfulAsk(ProviderStrategy):
    """Asks its true cost."""

    name = "truthful"
    summary = "asks the server's true cost"

    def ask(self, server: ServerCosts) -> float:
        return 1.0


class FixedMarkup(ProviderStrategy):
    """Asks a fixed markup above its true cost (0.2: 20 % above)."""

    name = "markup"
    summary = "asks (1 + markup) × the server's true cost"

    def __init__(self, markup: float = 0.2) -> None:
        self.markup = float(check.non_negative("markup", markup))
        if 1 + self.markup > MAX_ASK_FACTOR:
            raise InvalidParameterError(f"markup must be below {MAX_ASK_FACTOR - 1:g}")

    def ask(self, server: ServerCosts) -> float:
        return 1.0 + self.markup


class AdaptiveMarkup(ProviderStrategy):
    """Learns what the market bears: after a round in which every one of its servers was
    assigned, its markup grows by `up` (a factor); after a round in which one stayed idle, it
    shrinks by `down`, never below `floor` nor above `cap`."""

    name = "adaptive-markup"
    summary = "raises its markup after rounds all its servers were assigned, lowers it otherwise"

    def __init__(
        self,
        start: float = 0.2,
        up: float = 1.25,
        down: float = 0.8,
        floor: float = 0.01,
        cap: float = 5.0,
    ) -> None:
        self.markup = float(check.positive("start", start))
        self.up = float(check.positive("up", up))
        self.down = float(check.positive("down", down))
        self.floor = float(check.positive("floor", floor))
        self.cap = float(check.positive("cap", cap))
        if not self.floor <= self.markup <= self.cap or self.up < 1 or self.down > 1:
            raise InvalidParameterError(
                "adaptive-markup needs floor <= start <= cap, up >= 1 and down <= 1"
            )
        if 1 + self.cap > MAX_ASK_FACTOR:
            raise InvalidParameterError(
                f"adaptive-markup's cap must be below {MAX_ASK_FACTOR - 1:g}"
            )

    def ask(self, server: ServerCosts) -> float:
        return 1.0 + self.markup

    def step(self, round_: int, outcomes: Mapping[str, ServerOutcome]) -> None:
        if not outcomes:
            return
        if all(o.assigned for o in outcomes.values()):
            self.markup = min(self.cap, self.markup * self.up)
        else:
            self.markup = max(self.floor, self.markup * self.down)


PROVIDER_STRATEGIES: ClassRegistry[type[ProviderStrategy]] = ClassRegistry(
    "provider strategy",
    (TruthfulAsk, FixedMarkup, AdaptiveMarkup),
    group=GROUPS["provider strategy"],
    base=ProviderStrategy,
)
"""Provider strategies by name: mercat's three, then the registered and installed ones."""


def provider_strategy(name: str, **options: object) -> ProviderStrategy:
    """A new agent of the strategy called `name` (or `module:Class`) with its options."""
    cls = PROVIDER_STRATEGIES.resolve(name)
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidParameterError):
            raise
        raise InvalidParameterError(f"provider strategy {name!r}: bad options ({exc})") from exc


def checked_ask(factor: object, server: ServerCosts) -> float:
    """A strategy's ask factor: a finite number in [0, MAX_ASK_FACTOR]."""
    if (
        isinstance(factor, bool)
        or not isinstance(factor, int | float)
        or not math.isfinite(factor)
        or not 0 <= factor <= MAX_ASK_FACTOR
    ):
        raise InvalidParameterError(
            f"a provider strategy asked {factor!r} × the cost of {server.server}; an ask is a "
            f"finite factor in [0, {MAX_ASK_FACTOR:g}]"
        )
    return float(factor)
