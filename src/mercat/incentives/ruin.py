"""Ruin probability of a staked asset under collective incentives (seed 000, §III-D1, Fig. 3).

An asset starts with stake S0 = x·P. Each task it runs fails with probability F (the task
failure rate the asset *experiences*); then it loses P, otherwise it gains the calibrated
reward R = F_t^target·P/(1 - F_t^target). The asset is ruined when, after some task among
the first N, its stake falls below the removal level (S < P by default, the paper's
reading; S ≤ P as an option, the authors' simulator; any level, e.g. 0, on request).

Three ways to get the probability, side by side:

- `exact`: dynamic programming over the number k of failures so far. After n tasks the
  stake is S0 + n·R - k·(P + R), so the asset survives task n iff k ≤ k_max(n), an integer
  computed in exact rational arithmetic (no rounding can flip a tie S = P). The DP carries
  the distribution of k over surviving paths and accumulates the mass that crosses k_max:
  no sampling error, only float round-off (~1e-16 relative).
- `lundberg`: Lundberg's inequality ψ(u) ≤ exp(-θ·u) with u = S0 - level and θ the
  adjustment coefficient, the root of E[exp(-θ·ΔS)] = 1. An infinite-horizon upper bound
  (so also a bound for the N-task horizon); 1 when the drift is not positive.
- `diffusion`: the Cramér–Lundberg diffusion approximation, a Brownian motion with the same
  per-task drift and variance, whose finite-horizon ruin probability has a closed form.
- `monte-carlo`: simulated paths, judged by the same k_max table as `exact`, with a
  Clopper-Pearson interval.

Two claim models:

- `bernoulli` (default): one task per step, failing with probability F. This is what an
  asset in the marketplace experiences.
- `poisson`: the classic Cramér–Lundberg risk process the authors' Fig. 3 script simulates:
  each period the asset earns the premium R and suffers Poisson(F) claims of size P. Their
  script uses horizon 1000 and ruin at S < 0; `mercat reproduce fig3` shows both readings.

Floats are read as the decimal they print as (0.2 means 1/5), so that ties S = P are
decided as in exact arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Literal

import numba as nb
import numpy as np
from scipy import optimize, special, stats

from mercat import validation as check
from mercat.errors import InvalidParameterError
from mercat.incentives.calibration import reward_for_target

ClaimModel = Literal["bernoulli", "poisson"]
METHODS = ("exact", "lundberg", "diffusion", "monte-carlo")
CLAIM_MODELS = ("bernoulli", "poisson")


def _exact(value: float | int | Fraction) -> Fraction:
    """The rational a number stands for: floats are read as the decimal they print as."""
    if isinstance(value, Fraction | int):
        return Fraction(value)
    return Fraction(repr(float(value)))


@dataclass(frozen=True)
class RuinProblem:
    """One asset's ruin question. `level` defaults to the penalty P (ruin at S < P)."""

    stake_ratio: float
    failure_rate: float
    task_target: float
    horizon: int
    penalty: float = 1.0
    inclusive: bool = False  # True: ruin at S <= level (the authors' simulator)
    level: float | None = None  # None: the penalty P
    claims: ClaimModel = "bernoulli"

    def __post_init__(self) -> None:
        check.non_negative("stake_ratio", self.stake_ratio)
        check.probability("failure_rate", self.failure_rate)
        check.open_unit("task_target", self.task_target)
        check.integer("horizon", self.horizon, minimum=1)
        check.positive("penalty", self.penalty)
        if self.level is not None:
            check.real("level", self.level)
        check.choice("claims", self.claims, CLAIM_MODELS)

    # -- derived quantities, exact ---------------------------------------------------------

    @property
    def reward(self) -> Fraction:
        return reward_for_target(_exact(self.task_target), _exact(self.penalty))

    @property
    def ruin_level(self) -> Fraction:
        return _exact(self.penalty if self.level is None else self.level)

    @property
    def initial_stake(self) -> Fraction:
        return _exact(self.stake_ratio) * _exact(self.penalty)

    @property
    def loss_per_failure(self) -> Fraction:
        """How much one failure moves the stake relative to a success (bernoulli) or to nothing."""
        p = _exact(self.penalty)
        return p + self.reward if self.claims == "bernoulli" else p

    def max_failures(self, n_tasks: np.ndarray) -> np.ndarray:
        """k_max(n): the most failures after n tasks that still leave the asset alive (-1: none).

        Stake after n tasks with k failures: S0 + n·R - k·c with c = P + R (bernoulli) or P
        (poisson). Alive iff S ≥ level (default) or S > level (inclusive ruin), i.e.
        k·c ≤ S0 - level + n·R, resp. k·c < S0 - level + n·R. Computed on integers.
        """
        slack0 = self.initial_stake - self.ruin_level
        reward, c = self.reward, self.loss_per_failure
        den = slack0.denominator * reward.denominator * c.denominator
        a = slack0.numerator * (den // slack0.denominator)
        b = reward.numerator * (den // reward.denominator)
        cc = c.numerator * (den // c.denominator)
        n = [int(v) for v in np.asarray(n_tasks).ravel()]
        # n tasks fail at most n times, so k_max is capped at n: a huge stake (k_max beyond
        # int64) then reads as "never ruined", which it is.
        if self.inclusive:  # largest k with k·cc < a + n·b
            out = [min(-((-(a + m * b)) // cc) - 1, m) for m in n]
        else:  # largest k with k·cc <= a + n·b
            out = [min((a + m * b) // cc, m) for m in n]
        return np.maximum(np.array(out, dtype=np.int64), -1).reshape(np.shape(n_tasks))

    def drift_and_variance(self) -> tuple[float, float]:
        """Mean and variance of the stake change per task (or period)."""
        f, p, r = self.failure_rate, float(self.penalty), float(self.reward)
        if self.claims == "bernoulli":
            return (1 - f) * r - f * p, f * (1 - f) * (p + r) ** 2
        return r - f * p, f * p * p


@dataclass(frozen=True)
class RuinEstimate:
    """A ruin probability with the method that produced it.

    `low`/`high` bound it: a confidence interval for Monte Carlo, (value, value) for the
    exact DP, (0, value) for the Lundberg bound, None where the method gives no bound.
    `curve[n-1]` is the probability of ruin within the first n tasks where available.
    """

    method: str
    probability: float
    low: float | None = None
    high: float | None = None
    samples: int | None = None
    curve: np.ndarray | None = field(default=None, repr=False, compare=False)
    detail: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "probability": self.probability,
            "low": self.low,
            "high": self.high,
            "samples": self.samples,
            **self.detail,
        }


# --- exact ---------------------------------------------------------------------------------


def _claim_pmf(problem: RuinProblem, tail: float = 1e-18) -> tuple[np.ndarray, float]:
    """Distribution of the number of failures in one step, and the mass cut off its tail."""
    f = problem.failure_rate
    if problem.claims == "bernoulli":
        return np.array([1 - f, f]), 0.0
    j_max = 0
    while stats.poisson.sf(j_max, f) > tail:  # sf(j) = P(more than j claims in one period)
        j_max += 1
    pmf = stats.poisson.pmf(np.arange(j_max + 1), f)
    return pmf, float(stats.poisson.sf(j_max, f))


def ruin_exact_reference(problem: RuinProblem) -> RuinEstimate:
    """Probability of ruin within the horizon by dynamic programming over failure counts.

    The readable twin of `ruin_exact` (numpy, one convolution per step).
    """
    horizon = problem.horizon
    k_max = problem.max_failures(np.arange(1, horizon + 1))
    pmf, cut_tail = _claim_pmf(problem)
    alive = np.array([1.0])  # distribution of k over surviving paths, before any task
    curve = np.empty(horizon)
    ruined = 0.0
    for n in range(horizon):
        # Paths with more failures in one step than the truncated pmf holds are ruined
        # (only the poisson model truncates, at a tail mass of 1e-18).
        ruined += float(alive.sum()) * cut_tail
        alive = np.convolve(alive, pmf)
        limit = int(k_max[n])
        if limit + 1 < alive.size:
            ruined += float(alive[limit + 1 :].sum())
            alive = alive[: max(limit + 1, 0)]
        curve[n] = min(ruined, 1.0)
        if alive.size == 0:
            curve[n:] = curve[n]
            break
    value = float(curve[-1])
    return RuinEstimate("exact", value, value, value, curve=curve)


@nb.njit(cache=True)
def _dp_curve(k_max: np.ndarray, pmf: np.ndarray, cut_tail: float) -> np.ndarray:
    """Compiled twin of the loop of `ruin_exact_reference`: the same sums in the same order."""
    horizon = k_max.size
    width = pmf.size - 1
    alive = np.zeros(max(k_max.max(), 0) + width + 2)
    alive[0] = 1.0
    size = 1  # alive[:size] is the distribution of k over surviving paths
    curve = np.empty(horizon)
    ruined = 0.0
    for n in range(horizon):
        if cut_tail > 0.0:
            total = 0.0
            for k in range(size):
                total += alive[k]
            ruined += total * cut_tail
        new_size = size + width
        # convolution in place, from the top down so every input is read before it is overwritten
        if width == 1:  # bernoulli, the common case: two terms per entry
            alive[size] = alive[size - 1] * pmf[1]
            for k in range(size - 1, 0, -1):
                alive[k] = alive[k] * pmf[0] + alive[k - 1] * pmf[1]
            alive[0] = alive[0] * pmf[0]
        else:
            for k in range(new_size - 1, -1, -1):
                acc = 0.0
                for j in range(min(k, width), max(0, k - size + 1) - 1, -1):
                    acc += alive[k - j] * pmf[j]
                alive[k] = acc
        size = new_size
        limit = k_max[n]
        if limit + 1 < size:
            cut = 0.0
            for k in range(max(limit + 1, 0), size):
                cut += alive[k]
                alive[k] = 0.0
            ruined += cut
            size = max(limit + 1, 0)
        curve[n] = min(ruined, 1.0)
        if size == 0:
            for m in range(n, horizon):
                curve[m] = curve[n]
            break
    return curve


def ruin_exact(problem: RuinProblem) -> RuinEstimate:
    """Probability of ruin within the horizon by dynamic programming over failure counts.

    Compiled (numba); `ruin_exact_reference` is the readable numpy twin, and a test holds
    the two equal to round-off.
    """
    k_max = problem.max_failures(np.arange(1, problem.horizon + 1))
    pmf, cut_tail = _claim_pmf(problem)
    curve = _dp_curve(k_max, pmf, cut_tail)
    value = float(curve[-1])
    return RuinEstimate("exact", value, value, value, curve=curve)


# --- Lundberg bound and diffusion approximation ---------------------------------------------


def adjustment_coefficient(problem: RuinProblem) -> float:
    """Lundberg's θ > 0 with E[exp(-θ·ΔS)] = 1; 0 when the drift is not positive."""
    mu, _ = problem.drift_and_variance()
    if mu <= 0 or problem.failure_rate == 0:
        return 0.0 if mu <= 0 else math.inf
    f, p, r = problem.failure_rate, float(problem.penalty), float(problem.reward)

    if problem.claims == "bernoulli":
        log_q, log_f = math.log1p(-f), math.log(f)  # 0 < f < 1 here

        def log_mgf(theta: float) -> float:
            return float(np.logaddexp(log_q - theta * r, log_f + theta * p))
    else:

        def log_mgf(theta: float) -> float:
            return -theta * r + f * math.expm1(theta * p)

    hi = 1.0
    while log_mgf(hi) <= 0:
        hi *= 2
    lo = hi / 2
    while log_mgf(lo) > 0 and lo > 1e-300:  # make sure lo lies below the positive root
        lo /= 2
    return float(optimize.brentq(log_mgf, lo, hi, xtol=1e-15, rtol=1e-15))


def ruin_lundberg(problem: RuinProblem) -> RuinEstimate:
    """Lundberg's inequality: ψ(u) ≤ exp(-θ·u), u = S0 - level, infinite horizon."""
    theta = adjustment_coefficient(problem)
    u = float(problem.initial_stake - problem.ruin_level)
    if u < 0 or theta == 0:
        bound = 1.0
    elif theta == math.inf:  # no failures at all and a positive drift: never ruined
        bound = 0.0
    else:
        bound = math.exp(-theta * u)
    return RuinEstimate("lundberg", bound, 0.0, bound, detail={"adjustment_coefficient": theta})


def ruin_diffusion(problem: RuinProblem) -> RuinEstimate:
    """Brownian approximation with the same drift μ and variance σ² per task, horizon N:

    ψ(u, N) = Φ((-u - μN)/(σ√N)) + exp(-2μu/σ²) · Φ((-u + μN)/(σ√N)).
    """
    mu, var = problem.drift_and_variance()
    u = float(problem.initial_stake - problem.ruin_level)
    n = problem.horizon
    if u < 0:
        return RuinEstimate("diffusion", 1.0, detail={"drift": mu, "variance": var})
    if var == 0:
        value = 1.0 if mu * n + u < 0 else 0.0
        return RuinEstimate("diffusion", value, detail={"drift": mu, "variance": var})
    sd = math.sqrt(var * n)
    first = special.log_ndtr((-u - mu * n) / sd)
    second = -2 * mu * u / var + special.log_ndtr((-u + mu * n) / sd)
    value = float(min(1.0, math.exp(special.logsumexp([first, second]))))
    return RuinEstimate("diffusion", value, detail={"drift": mu, "variance": var})


# --- Monte Carlo -----------------------------------------------------------------------------


def ruin_monte_carlo(
    problem: RuinProblem,
    samples: int = 100_000,
    seed: int | None = 0,
    confidence: float = 0.95,
    chunk: int = 512,
) -> RuinEstimate:
    """Simulated failure-count paths judged against the exact k_max table.

    Paths are advanced `chunk` tasks at a time; a path is ruined at the first n with
    k_n > k_max(n). Returns the ruined fraction with a Clopper-Pearson interval.
    """
    samples = check.integer("samples", samples, minimum=1)
    rng = np.random.default_rng(seed)
    horizon = problem.horizon
    k_max = problem.max_failures(np.arange(1, horizon + 1))
    counts = np.zeros(samples, dtype=np.int64)
    alive = np.ones(samples, dtype=bool)
    for start in range(0, horizon, chunk):
        stop = min(start + chunk, horizon)
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        if problem.claims == "bernoulli":
            steps = rng.random((idx.size, stop - start)) < problem.failure_rate
        else:
            steps = rng.poisson(problem.failure_rate, size=(idx.size, stop - start))
        paths = counts[idx, None] + np.cumsum(steps, axis=1, dtype=np.int64)
        dead = (paths > k_max[None, start:stop]).any(axis=1)
        counts[idx] = paths[:, -1]
        alive[idx[dead]] = False
    ruined = int(samples - alive.sum())
    ci = stats.binomtest(ruined, samples).proportion_ci(confidence, method="exact")
    return RuinEstimate(
        "monte-carlo",
        ruined / samples,
        float(ci.low),
        float(ci.high),
        samples=samples,
        detail={"confidence": confidence, "seed": seed},
    )


def ruin_probability(
    problem: RuinProblem, method: str = "exact", samples: int = 100_000, seed: int | None = 0
) -> RuinEstimate:
    """Dispatch to one of METHODS."""
    check.choice("method", method, METHODS)
    if method == "exact":
        return ruin_exact(problem)
    if method == "lundberg":
        return ruin_lundberg(problem)
    if method == "diffusion":
        return ruin_diffusion(problem)
    return ruin_monte_carlo(problem, samples=samples, seed=seed)


def ruin_table(
    problem: RuinProblem, methods: tuple[str, ...] = METHODS, samples: int = 100_000, seed: int = 0
) -> list[RuinEstimate]:
    """The methods side by side for one problem."""
    if not methods:
        raise InvalidParameterError("methods must name at least one method")
    return [ruin_probability(problem, m, samples=samples, seed=seed) for m in methods]


def with_stake_ratio(problem: RuinProblem, stake_ratio: float) -> RuinProblem:
    """The same problem at another x (used by the Fig. 3 sweep)."""
    return replace(problem, stake_ratio=stake_ratio)
