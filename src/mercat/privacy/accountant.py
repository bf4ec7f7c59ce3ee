"""How much privacy a run of Gaussian noise spends: seed 002's Alg. 2, on a maintained accountant.

Seed 002 (CloudChain, Alg. 2 "Differential Privacy Verification") computes
`ε_actual = ComputePrivacyBound(σ, δ)` and accepts the noise when `ε_actual <= ε`. It leaves
`ComputePrivacyBound` open. mercat's reading:

- The noise is given as a *noise multiplier* z = σ / Δ, the noise's standard deviation over
  the L2 sensitivity Δ of what is released (for clipped federated updates Δ is the clipping
  norm; see `mercat.privacy.gaussian`). A σ means nothing without its Δ.
- A training run releases noisy values many times, so the bound covers the whole run: `rounds`
  Gaussian releases, each (optionally) on a Poisson sample of the participants with
  probability `sampling_rate` (privacy amplification by sampling).
- The bound is computed by Google's `dp_accounting`; we do not write accountants by hand.
  `accountant="auto"` (the default) takes the exact closed form when nothing is sampled (r
  Gaussian releases compose into one, see below; `dp_accounting.get_epsilon_gaussian`) and
  the privacy-loss-distribution accountant otherwise (tight up to its grid, about a second).
  `"pld"` and `"rdp"` (Rényi: looser, milliseconds) force one accountant; `"exact"` refuses
  sampled runs.

A readable twin, `analytic_gaussian_epsilon`, computes the exact ε of the un-sampled case
from the closed form of Balle & Wang (2018, eq. 6) and the fact that r Gaussian releases with
multiplier z compose exactly into one with multiplier z / sqrt(r) (Dong, Roth & Su 2019,
Gaussian differential privacy). The tests hold the accountant to it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal, get_args

from mercat import validation as check
from mercat.errors import InvalidParameterError

Accountant = Literal["auto", "pld", "rdp", "exact"]
ACCOUNTANTS: tuple[str, ...] = get_args(Accountant)

# The PLD accountant's value grid. 1e-4 is dp_accounting's default: ε comes out within about
# 1e-3 of the exact value for the runs mercat makes (the tests measure it), in milliseconds.
PLD_DISCRETIZATION = 1e-4
# Below this noise multiplier the PLD grid gets too large to hold (its length grows as 1/z^2).
_PLD_SMALLEST_Z = 0.05
# Where the PLD accountant stops: its grid spans the run's privacy loss, so a run that spends
# more than this (no meaningful privacy) would need gigabytes (z = 0.1, q = 0.5, 50 rounds:
# ε ≈ 2000, 2 GB, 17 s). There, "auto" reports the RDP bound, which costs milliseconds at
# any size and is still a valid upper bound; "pld" refuses.
PLD_EPSILON_LIMIT = 64.0
PLD_MAX_ROUNDS = 10**6
MIN_NOISE_MULTIPLIER = 1e-3
MAX_NOISE_MULTIPLIER = 1e6
MAX_ROUNDS = 10**9
MAX_EPSILON = 700.0


@dataclass(frozen=True)
class GaussianRuns:
    """A run of `rounds` Gaussian releases with noise multiplier z = σ/Δ, each on a Poisson
    sample of the participants taken with probability `sampling_rate` (1.0: everyone)."""

    noise_multiplier: float
    rounds: int = 1
    sampling_rate: float = 1.0

    def __post_init__(self) -> None:
        z = check.real("noise multiplier", self.noise_multiplier)
        if not MIN_NOISE_MULTIPLIER <= z <= MAX_NOISE_MULTIPLIER:
            raise InvalidParameterError(
                f"noise multiplier must lie in [{MIN_NOISE_MULTIPLIER}, {MAX_NOISE_MULTIPLIER}] "
                f"(below it a release is all but noiseless), got {z!r}"
            )
        rounds = check.integer("rounds", self.rounds, 1)
        if rounds > MAX_ROUNDS:
            raise InvalidParameterError(f"rounds must be at most {MAX_ROUNDS}, got {rounds}")
        q = check.real("sampling rate", self.sampling_rate)
        if not 0 < q <= 1:
            raise InvalidParameterError(f"sampling rate must lie in (0, 1], got {q!r}")
        # Stored as the checked kinds: a whole float (2.0 rounds, from JSON) reached
        # dp_accounting, which refuses a float count with a TypeError.
        object.__setattr__(self, "rounds", rounds)
        object.__setattr__(self, "noise_multiplier", float(z))
        object.__setattr__(self, "sampling_rate", float(q))


def _check_delta(delta: float) -> None:
    check.open_unit("delta", delta)


def _check_epsilon(epsilon: float) -> None:
    check.positive("epsilon", epsilon)
    if epsilon > MAX_EPSILON:
        raise InvalidParameterError(
            f"epsilon must be at most {MAX_EPSILON} (e^ε overflows beyond; a budget that large "
            f"promises nothing), got {epsilon!r}"
        )


def _event(runs: GaussianRuns):  # -> dp_accounting.DpEvent
    import dp_accounting

    gaussian = dp_accounting.GaussianDpEvent(runs.noise_multiplier)
    step = (
        gaussian
        if runs.sampling_rate == 1.0
        else dp_accounting.PoissonSampledDpEvent(runs.sampling_rate, gaussian)
    )
    return dp_accounting.SelfComposedDpEvent(step, runs.rounds)


def _fresh(accountant: Accountant):  # -> dp_accounting.PrivacyAccountant
    from dp_accounting import pld, rdp

    # The RDP accountant warns (through absl) for every fractional order whose series it gives
    # up on and then leaves out; the bound stays valid, so the warnings are only noise on a
    # user's terminal.
    logging.getLogger("absl").setLevel(logging.ERROR)

    if accountant == "pld":
        return pld.PLDAccountant(value_discretization_interval=PLD_DISCRETIZATION)
    return rdp.RdpAccountant()


def _check_accountant(accountant: str) -> None:
    check.choice("accountant", accountant, ACCOUNTANTS)


def _library(compute, what: str) -> float:  # type: ignore[no-untyped-def]
    """A dp_accounting or scipy computation; their numerical failures become our error."""
    try:
        value = float(compute())
    except (ValueError, RuntimeError, FloatingPointError, OverflowError) as exc:
        raise InvalidParameterError(f"{what} cannot be computed for these values: {exc}") from None
    if math.isnan(value):
        raise InvalidParameterError(f"{what} cannot be computed for these values (NaN)")
    return value


def _closed_form(accountant: Accountant, sampling_rate: float) -> bool:
    """Whether the exact closed form answers: un-sampled runs under "auto" or "exact" (r
    releases with multiplier z compose into one with z / sqrt(r)); "exact" on a sampled run
    is refused."""
    if sampling_rate == 1.0 and accountant in ("auto", "exact"):
        return True
    if accountant == "exact":
        raise InvalidParameterError(
            f"no closed form for a sampled run (sampling rate {sampling_rate}); "
            "use accountant 'pld' or 'rdp'"
        )
    return False


def _by(runs: GaussianRuns, delta: float, name: Accountant) -> float:
    fresh = _fresh(name)

    def epsilon() -> float:
        # composing builds the PLD's grid, which can fail numerically too (a sampling rate
        # as small as 5e-324 takes a logarithm of infinities)
        fresh.compose(_event(runs))
        return fresh.get_epsilon(delta)

    return _library(epsilon, "ε")


def resolve_epsilon(
    runs: GaussianRuns, delta: float, accountant: Accountant = "auto"
) -> tuple[float, str]:
    """(ε, the accountant that computed it): "exact", "pld" or "rdp". See `epsilon_spent`."""
    _check_delta(delta)
    _check_accountant(accountant)
    if _closed_form(accountant, runs.sampling_rate):
        import dp_accounting

        composed = runs.noise_multiplier / math.sqrt(runs.rounds)
        exact = _library(lambda: dp_accounting.get_epsilon_gaussian(composed, delta), "ε")
        return exact, "exact"

    if accountant == "rdp":
        return _by(runs, delta, "rdp"), "rdp"
    # PLD only where its grid stays small: the cheap RDP bound says how large ε is.
    upper = _by(runs, delta, "rdp")
    fits = (
        upper <= PLD_EPSILON_LIMIT
        and runs.rounds <= PLD_MAX_ROUNDS
        and runs.noise_multiplier >= _PLD_SMALLEST_Z
    )
    if fits:
        try:
            return _by(runs, delta, "pld"), "pld"
        except InvalidParameterError:
            if accountant == "pld":
                raise
            return upper, "rdp"  # PLD's numerics failed where the RDP bound did not
    if accountant == "auto":
        return upper, "rdp"
    raise InvalidParameterError(
        f"the PLD accountant would need gigabytes for this run (RDP bound ε = {upper:.4g}, "
        f"limit {PLD_EPSILON_LIMIT}; at most {PLD_MAX_ROUNDS} rounds; z >= {_PLD_SMALLEST_Z}); "
        "use accountant 'rdp' or 'auto'"
    )


def epsilon_spent(runs: GaussianRuns, delta: float, accountant: Accountant = "auto") -> float:
    """ComputePrivacyBound: the smallest ε such that the whole run is (ε, δ)-DP, by the chosen
    accountant (an upper bound; exact for un-sampled runs, tight up to a grid with PLD; "auto"
    falls back to RDP where PLD would not fit in memory, see PLD_EPSILON_LIMIT)."""
    return resolve_epsilon(runs, delta, accountant)[0]


@dataclass(frozen=True)
class PrivacyCheck:
    """Alg. 2's answer: the ε the run spends, the budget it was held to, and the verdict."""

    epsilon_actual: float
    epsilon_budget: float
    delta: float
    accountant: str  # the one that computed epsilon_actual: exact, pld or rdp

    @property
    def compliant(self) -> bool:
        return self.epsilon_actual <= self.epsilon_budget


def check_differential_privacy(
    runs: GaussianRuns, epsilon: float, delta: float, accountant: Accountant = "auto"
) -> PrivacyCheck:
    """Seed 002, Alg. 2: does the run stay within (ε, δ)? False means "privacy parameters need
    adjustment" (more noise, fewer rounds or a smaller sample)."""
    _check_epsilon(epsilon)
    spent, used = resolve_epsilon(runs, delta, accountant)
    return PrivacyCheck(spent, float(epsilon), float(delta), used)


def noise_for_budget(
    epsilon: float,
    delta: float,
    rounds: int = 1,
    sampling_rate: float = 1.0,
    accountant: Accountant = "auto",
) -> float:
    """The smallest noise multiplier whose run stays within (ε, δ): Alg. 2 turned around, so a
    requester states a budget and the federation derives σ = z·Δ from it."""
    _check_epsilon(epsilon)
    _check_delta(delta)
    _check_accountant(accountant)
    GaussianRuns(1.0, rounds, sampling_rate)  # validates rounds and rate before the search
    import dp_accounting

    if _closed_form(accountant, sampling_rate):
        one = _library(lambda: dp_accounting.get_sigma_gaussian(epsilon, delta), "the noise")
        return _first_that_fits(one * math.sqrt(rounds), rounds, 1.0, epsilon, delta, accountant)

    def event(z: float):
        return _event(GaussianRuns(z, rounds, sampling_rate))

    def calibrate(which: Accountant, bracket) -> float:
        return _library(
            lambda: dp_accounting.calibrate_dp_mechanism(
                lambda: _fresh(which), event, epsilon, delta, bracket, tol=1e-4
            ),
            "the noise",
        )

    # The RDP bound is looser, so its noise is enough under PLD too: an upper end for the PLD
    # search. The lower end must not be tiny: the PLD grid grows as 1/z^2 (z = 1e-3 asks for
    # 38 GiB), so it starts at half the RDP answer and halves only while that still passes.
    by_rdp = calibrate("rdp", dp_accounting.LowerEndpointAndGuess(1e-3, 1.0))
    beyond_pld = epsilon > PLD_EPSILON_LIMIT or rounds > PLD_MAX_ROUNDS
    if accountant == "rdp" or (accountant == "auto" and beyond_pld):
        return _first_that_fits(by_rdp, rounds, sampling_rate, epsilon, delta, accountant)
    if beyond_pld:
        raise InvalidParameterError(
            f"the PLD accountant does not go beyond epsilon {PLD_EPSILON_LIMIT} or "
            f"{PLD_MAX_ROUNDS} rounds; use accountant 'rdp' or 'auto'"
        )
    low = by_rdp / 2
    while (
        low > _PLD_SMALLEST_Z
        and _by(GaussianRuns(low, rounds, sampling_rate), delta, "pld") <= epsilon
    ):
        low /= 2
    if low <= _PLD_SMALLEST_Z:
        raise InvalidParameterError(
            f"a budget of epsilon={epsilon} needs almost no noise (z < {_PLD_SMALLEST_Z}); "
            "the PLD accountant cannot resolve it, use accountant='rdp'"
        )
    z = calibrate("pld", dp_accounting.ExplicitBracketInterval(low, by_rdp))
    return _first_that_fits(z, rounds, sampling_rate, epsilon, delta, accountant)


def _first_that_fits(
    z: float, rounds: int, rate: float, epsilon: float, delta: float, accountant: Accountant
) -> float:
    """The root finders stop within a tolerance on either side of the boundary; a calibrated z
    must pass `check_differential_privacy` with the same accountant, so step up (by 1e-9, then
    by steps that double) until it does."""
    for attempt in range(64):
        if epsilon_spent(GaussianRuns(z, rounds, rate), delta, accountant) <= epsilon:
            return z
        z *= 1 + 1e-9 * 2**attempt
    raise AssertionError(f"calibrated noise {z} does not fit epsilon={epsilon}")  # unreachable


# --- the readable twin: exact ε for un-sampled runs -------------------------------------


def _log_delta_of(mu: float, epsilon: float) -> float:
    """log δ(ε) of a Gaussian mechanism whose privacy-loss mean is μ = Δ/σ (Balle & Wang 2018,
    Thm. 8): δ(ε) = Φ(μ/2 - ε/μ) - e^ε Φ(-μ/2 - ε/μ), in logs because e^ε overflows long before
    δ(ε) underflows (large μ, tiny δ)."""
    from scipy.stats import norm  # here: 0.3 s to import, and every node schema imports this

    first = norm.logcdf(mu / 2 - epsilon / mu)
    second = epsilon + norm.logcdf(-mu / 2 - epsilon / mu)
    return float(first + math.log1p(-math.exp(second - first))) if second < first else -math.inf


def analytic_gaussian_epsilon(noise_multiplier: float, delta: float, rounds: int = 1) -> float:
    """Exact ε of `rounds` Gaussian releases with multiplier z and no sampling: the composition
    is one Gaussian release with μ = sqrt(rounds) / z; solve δ(ε) = delta for ε."""
    runs = GaussianRuns(noise_multiplier, rounds)
    _check_delta(delta)
    mu = math.sqrt(runs.rounds) / runs.noise_multiplier
    target = math.log(delta)
    if _log_delta_of(mu, 0.0) <= target:
        return 0.0
    high = 1.0
    while _log_delta_of(mu, high) > target:
        high *= 2
    from scipy.optimize import brentq  # here: 0.4 s to import (see _log_delta_of)

    return float(brentq(lambda e: _log_delta_of(mu, e) - target, 0.0, high, xtol=1e-12))
