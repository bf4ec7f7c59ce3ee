"""Adversaries in seed 000's collective-incentive market: strategic owners of assets.

Seed 000 ("Collective Incentives") shows that blind collective penalties and rewards keep a
market reliable "in non-adversarial environments with individual failures", and leaves
attacks on staking and reputation to future work (§IV-B). Each class here is one such
attack: an *owner* that controls one or more assets (its *identities*) and decides, task by
task, whether each identity does the work, and after each task whether identities leave or
enter. The adversarial engine (`mercat.scenarios.collective_adversarial`) runs it among
honest assets and counts what it earned.

Economics (`Economics` in the engine): every asset that runs a task is paid a fee; doing
the work costs it `work_cost`; an identity that fails on purpose saves that cost and the
task fails for certain, so the blind penalty P falls on every asset of the task.

A strategy has a `name`, a `summary`, its `identities` (what it enters the market with),
one decision (`works`), and the hook `step`, called after every task one of its identities
ran (the outcome says which of them the rule removed), which returns its `Moves`:
identities to withdraw, new identities to enter, stakes to move between its identities.
Each run gets a fresh instance, so state lives on `self`. `honest_twin()` is the same owner
with the same assets behaving honestly: the baseline its profit is measured against.
mercat's (`ADVERSARIES`):

- `honest`: does the work every time, never re-enters;
- `whitewasher`: a failure-prone asset that, once removed (or once its stake falls below
  `reenter_below` · S0, for rules that never remove), re-enters under a fresh identity with
  a fresh stake S0;
- `sybil`: one owner splits one asset's stake S0 over `identities` assets of S0/n each, to
  be selected more often under uniform selection and to spread penalties over identities;
- `intermittent`: a reliable asset that fails on purpose (saving the work's cost) when its
  expected penalty is low: when what a failure would take from its stake, times the chance
  that the task's other assets (by their public records) would not have failed it anyway,
  is below `penalty_threshold`, or when its stake is at least `stake_threshold` · S0, a
  buffer it judges large enough;
- `collusion`: an app and a server of one owner that share their stakes (`share`: the pair
  pools and splits them after every task) and whose server fails on purpose on tasks
  without its app (when its stake is at least `stake_threshold` · S0), so that the blind
  penalty falls on the task's honest assets (and on the server, whose loss the app shares)
  while the pair's own tasks succeed.

Others are plug-ins (entry points in the group `mercat.collective_adversaries`,
`ADVERSARIES.register(...)`, or `module:Class`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from mercat import validation as check
from mercat.errors import InvalidParameterError
from mercat.plugins import GROUPS
from mercat.registry import ClassRegistry


@dataclass(frozen=True)
class Identity:
    """An asset an owner enters: its role (a label), its stake as a fraction of S0 and its
    failure rate Fa when it does the work."""

    role: str = "asset"
    stake_share: float = 1.0
    failure_rate: float = 0.005

    def __post_init__(self) -> None:
        check.positive("stake_share", self.stake_share)
        check.probability("failure_rate", self.failure_rate)


@dataclass(frozen=True)
class TaskView:
    """What an identity sees before it works on a task (stakes are public on a ledger)."""

    task: int
    identity: int  # the owner's identity id (the engine's asset id)
    role: str
    stake: float
    initial_stake: float  # S0
    penalty: float  # P
    penalty_if_failed: float  # what a failed task would take from its stake under the rule
    allies: tuple[int, ...]  # the owner's other identities on this task
    others: int  # assets of other owners on this task
    # the public record of each of those assets: (tasks it ran, tasks of them that failed);
    # a blind market cannot say who failed, but every asset's task outcomes are on the ledger
    others_record: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class TaskOutcome:
    """What one task did to the owner: its identities on it, whether the task failed,
    which of them failed on purpose, the stakes of all its live identities afterwards and
    which of them the rule removed."""

    task: int
    ran: tuple[int, ...]
    failed: bool
    shirked: tuple[int, ...]
    stakes: Mapping[int, float]
    removed: tuple[int, ...]
    initial_stake: float
    penalty: float


@dataclass(frozen=True)
class Moves:
    """What an owner does after a task: identities it withdraws (their stake returns to
    it), identities it enters (fresh stakes, each paying any entry bond), and stake it moves
    between its live identities (identity -> new stake; the total must not change)."""

    leave: tuple[int, ...] = ()
    enter: tuple[Identity, ...] = ()
    restake: Mapping[int, float] = field(default_factory=dict)


NO_MOVES = Moves()


class Adversary(ABC):
    """An owner of assets with a strategy (module docstring)."""

    name: ClassVar[str]
    summary: ClassVar[str]

    @abstractmethod
    def identities(self) -> tuple[Identity, ...]:
        """The assets it enters the market with."""

    def works(self, view: TaskView) -> bool:
        """Whether this identity does the work on this task (False: fails on purpose)."""
        return True

    def step(self, outcome: TaskOutcome) -> Moves:
        """After a task one of its identities ran: what it does next."""
        return NO_MOVES

    def honest_twin(self) -> Adversary:
        """The same owner with the same assets, behaving honestly."""
        return Honest(assets=self.identities())

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Honest(Adversary):
    """Does the work every time and never re-enters: the baseline."""

    name = "honest"
    summary = "does the work every time, never re-enters (the baseline)"

    def __init__(
        self,
        identities: int = 1,
        failure_rate: float = 0.005,
        assets: tuple[Identity, ...] | None = None,
    ) -> None:
        if assets is None:
            n = check.integer("identities", identities, minimum=1)
            if n > 10_000:
                raise InvalidParameterError(f"honest: at most 10000 identities, got {n}")
            assets = tuple(Identity("asset", 1.0 / n, failure_rate) for _ in range(n))
        self.assets = tuple(assets)

    def identities(self) -> tuple[Identity, ...]:
        return self.assets

    def honest_twin(self) -> Adversary:
        return Honest(assets=self.assets)


class Whitewasher(Adversary):
    """A failure-prone asset that re-enters under a fresh identity with a fresh stake after
    its removal, or, under a rule that never removes, once its stake is below
    `reenter_below` · S0 (then it withdraws what is left). At most `max_reentries` times."""

    name = "whitewasher"
    summary = "a failure-prone asset that re-enters with a fresh identity and stake when removed"

    def __init__(
        self, failure_rate: float = 0.15, reenter_below: float = 0.0, max_reentries: int = 1000
    ) -> None:
        self.failure_rate = float(check.probability("failure_rate", failure_rate))
        self.reenter_below = float(check.probability("reenter_below", reenter_below))
        self.max_reentries = check.integer("max_reentries", max_reentries, minimum=0)
        self.reentries = 0

    def identities(self) -> tuple[Identity, ...]:
        return (Identity("asset", 1.0, self.failure_rate),)

    def step(self, outcome: TaskOutcome) -> Moves:
        low = tuple(
            i
            for i, stake in outcome.stakes.items()
            if i not in outcome.removed and stake < self.reenter_below * outcome.initial_stake
        )
        gone = len(outcome.removed) + len(low)
        if not gone or self.reentries >= self.max_reentries:
            return Moves(leave=low) if low else NO_MOVES
        entering = min(gone, self.max_reentries - self.reentries)
        self.reentries += entering
        return Moves(leave=low, enter=(Identity("asset", 1.0, self.failure_rate),) * entering)


class Sybil(Adversary):
    """One owner splits one asset's stake S0 over `identities` assets of S0/n each (the same
    machine behind all of them, failure rate `failure_rate`)."""

    name = "sybil"
    summary = "splits one stake S0 over n identities of S0/n each"

    def __init__(self, identities: int = 4, failure_rate: float = 0.005) -> None:
        self.count = check.integer("identities", identities, minimum=1)
        if self.count > 10_000:
            raise InvalidParameterError(f"sybil: at most 10000 identities, got {self.count}")
        self.failure_rate = float(check.probability("failure_rate", failure_rate))

    def identities(self) -> tuple[Identity, ...]:
        share = 1.0 / self.count
        return tuple(Identity("asset", share, self.failure_rate) for _ in range(self.count))

    def honest_twin(self) -> Adversary:
        return Honest(assets=(Identity("asset", 1.0, self.failure_rate),))


class IntermittentFailer(Adversary):
    """A reliable asset that fails on purpose, saving the work's cost, only when its
    expected penalty is low, and does the work otherwise.

    Its expected penalty is what a failed task would take from its stake under the rule
    (`TaskView.penalty_if_failed`: P, or 0 under Free, or less near Coll-Rep's floor) times
    the chance that the task would have succeeded without its failure, i.e. that the other
    assets would not have failed it anyway: Π (1 - f_j), with f_j each other asset's failure
    share estimated from its public record, (failed_j + `prior_tasks` · `prior_rate`) /
    (run_j + `prior_tasks`). When the others would likely fail the task anyway, they share
    the blame and its own failure costs it little. It fails on purpose when that expected
    penalty is below `penalty_threshold` tokens (default 0.3, the default work cost: failing
    is then cheaper than working), or when its stake is at least `stake_threshold` · S0, a
    buffer it judges large enough to absorb the penalty without removal."""

    name = "intermittent"
    summary = "fails on purpose when its expected penalty is below a threshold or its stake is high"

    def __init__(
        self,
        penalty_threshold: float = 0.3,
        stake_threshold: float = 0.5,
        prior_tasks: float = 10.0,
        prior_rate: float = 0.01,
        failure_rate: float = 0.005,
    ) -> None:
        self.penalty_threshold = float(check.non_negative("penalty_threshold", penalty_threshold))
        self.stake_threshold = float(check.positive("stake_threshold", stake_threshold))
        self.prior_tasks = float(check.positive("prior_tasks", prior_tasks))
        self.prior_rate = float(check.probability("prior_rate", prior_rate))
        self.failure_rate = float(check.probability("failure_rate", failure_rate))

    def identities(self) -> tuple[Identity, ...]:
        return (Identity("asset", 1.0, self.failure_rate),)

    def expected_penalty(self, view: TaskView) -> float:
        """What failing this task is expected to cost its stake (the class docstring)."""
        others_succeed = 1.0
        for run, failed in view.others_record:
            share = (failed + self.prior_tasks * self.prior_rate) / (run + self.prior_tasks)
            others_succeed *= 1.0 - share
        return view.penalty_if_failed * others_succeed

    def works(self, view: TaskView) -> bool:
        cheap = self.expected_penalty(view) < self.penalty_threshold
        return not (cheap or view.stake >= self.stake_threshold * view.initial_stake)


class Collusion(Adversary):
    """An app and a server of one owner. The server fails on purpose only on tasks without
    its app, and there only when its stake is at least `stake_threshold` · S0, so the blind
    penalty falls on honest assets while the pair's own tasks succeed; with `share`, the
    pair pools its stakes and splits them evenly after every task, so neither is removed
    before both are low."""

    name = "collusion"
    summary = "a server that fails on purpose on tasks without its allied app; shared stakes"

    def __init__(
        self, stake_threshold: float = 0.5, share: bool = True, failure_rate: float = 0.005
    ) -> None:
        self.stake_threshold = float(check.non_negative("stake_threshold", stake_threshold))
        if not isinstance(share, bool):
            raise InvalidParameterError(f"share must be true or false, got {share!r}")
        self.share = share
        self.failure_rate = float(check.probability("failure_rate", failure_rate))

    def identities(self) -> tuple[Identity, ...]:
        return (
            Identity("app", 1.0, self.failure_rate),
            Identity("server", 1.0, self.failure_rate),
        )

    def works(self, view: TaskView) -> bool:
        if view.role != "server" or view.allies:
            return True
        return view.stake < self.stake_threshold * view.initial_stake

    def step(self, outcome: TaskOutcome) -> Moves:
        live = [i for i in outcome.stakes if i not in outcome.removed]
        if not self.share or len(live) < 2:
            return NO_MOVES
        even = sum(outcome.stakes[i] for i in live) / len(live)
        return Moves(restake=dict.fromkeys(live, even))


ADVERSARIES: ClassRegistry[type[Adversary]] = ClassRegistry(
    "collective adversary",
    (Honest, Whitewasher, Sybil, IntermittentFailer, Collusion),
    group=GROUPS["collective adversary"],
    base=Adversary,
)
"""Adversaries by name: mercat's five (honest included), then registered and installed ones."""


def adversary(name: str, **options: object) -> Adversary:
    """A new owner of the strategy called `name` (or `module:Class`) with its options."""
    cls = ADVERSARIES.resolve(name)
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidParameterError):
            raise
        raise InvalidParameterError(f"adversary {name!r}: bad options ({exc})") from exc
