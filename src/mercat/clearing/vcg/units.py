"""The standard auction in integer units, so that the multiple-knapsack search is exact.

Demands and values are real numbers; a branch and bound that adds and compares them in
floating point needs tolerances everywhere, and two providers of the distributed
auctioneer could disagree on a comparison that sits at the rounding error. Here every
quantity becomes an int64 once, with two stated scales, and the search adds and compares
integers only.

Demands. A provider j is feasible in the market when its load is at most capacity_limit(C_j)
= C_j + τ_j, with τ_j = FEASIBILITY_TOL·max(1, C_j) (mercat's one capacity rule,
`mercat.market.model.capacity_limit`). With a demand unit u (a power of two):

    w_i = ⌈d_i / u⌉,        K_j = ⌊C_j / u⌋ + ⌊(τ_j - σ_j) / u⌋,    σ_j = τ_j / 1024,

where σ_j is kept back for the market's own floating-point sums (their error is about
k·10^-16·C_j for k users, far below σ_j). u is as fine as exact sums allow (the whole
auction's units, (max_j K_j + 1)·(n + m), below 2^52, where float64 still counts every
unit), and never coarser than
τ_j / (2(k_j + 2)) for any j, k_j being the most users that fit C_j exactly (the k_j
smallest demands). Then

- an assignment whose integer load fits, Σ w_i ≤ K_j, has a real load Σ d_i ≤ Σ w_i·u ≤
  C_j + τ_j - σ_j: the market accepts it;
- an assignment that fits exactly, Σ d_i ≤ C_j with at most k_j users, has Σ w_i ≤ ⌊C_j/u⌋
  + k_j ≤ K_j: it fits in integers too;
- an assignment within the market's rule, Σ d_i ≤ C_j + τ_j, fits in integers unless its
  load lies within σ_j + (k'_j + 1)·u of the limit (k'_j users): only loads at the limit
  itself, where floating-point sums decide anyway, can be judged differently. On the
  auctions of the seeds u is about 10^-6 of τ_j or finer.

So the integer problem is the market's capacity rule up to a band at its limit of a
thousandth of its slack: the VCG mechanism and the MILP of `optimal` agree on which
assignments fit. The W*_{-i} re-solves of the Clarke payments use the same units as the
allocation, so W* and every W*_{-i} are optima of one feasible family.

Values. p_i = round(v_i / q) with q the power of two that puts Σ v_i just under 2^60: every
sum of profits is exact, and the welfare of any set of users is off by at most |S|·q/2
(about 10^-18 of the total welfare per user). The search maximises Σ p_i exactly; the
allocation it returns is optimal for the real values within n·q.

`integer_auction` returns None when the auction's range does not fit exact sums (absurdly
spread capacities, say 10^-3 next to 10^12); the mechanism then uses the column-generation
solver, which works on floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mercat.clearing.vcg.instance import StandardAuction, capacity_slack

SUM_LIMIT = 2**53
"""Every integer sum the search forms stays below this: int64 holds it, and so does float64
exactly (the search keeps some bounds, and the cap on heavy users, in floats)."""

VALUE_BITS = 60
"""Σ v_i is scaled to just under 2^VALUE_BITS value units."""


@dataclass(frozen=True, eq=False)
class IntegerAuction:
    """A standard auction in integer units (see the module docstring); read-only arrays."""

    weights: np.ndarray  # (n,) int64 demand units, ⌈d_i / u⌉ (capped, see below)
    capacities: np.ndarray  # (m,) int64 demand units, ⌊C_j / u⌋ + ⌊(τ_j - σ_j) / u⌋
    profits: np.ndarray  # (n,) int64 value units, round(v_i / q)
    demand_unit: float  # u, a power of two
    value_unit: float  # q, a power of two

    @property
    def n_users(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_providers(self) -> int:
        return int(self.capacities.shape[0])

    def fits(self, assignment: np.ndarray) -> bool:
        """Whether an assignment (provider per user, -1 for none) fits in integer units."""
        served = assignment >= 0
        load = np.zeros(self.n_providers, dtype=np.int64)
        np.add.at(load, assignment[served], self.weights[served])
        return bool(np.all(load <= self.capacities))

    def value(self, assignment: np.ndarray) -> int:
        """Σ p_i over the served users, in value units."""
        return int(self.profits[assignment >= 0].sum())


def _largest_power_of_two_at_most(x: float) -> float:
    return math.ldexp(1.0, math.floor(math.log2(x)))


def _exact_counts(demands: np.ndarray, capacities: np.ndarray) -> np.ndarray:
    """k_j: the most users whose demands fit C_j exactly (the smallest demands first)."""
    prefix = np.cumsum(np.sort(demands))
    return np.searchsorted(prefix, capacities, side="right")


SPARE = 1.0 / 1024
"""σ_j / τ_j: the share of the slack kept back for floating-point sums (module docstring)."""


def demand_unit(demands: np.ndarray, capacities: np.ndarray) -> float:
    """u: the finest power of two whose sums stay exact, never coarser than
    τ_j / (2(k_j + 2)) for any provider j (module docstring)."""
    slack = capacity_slack(capacities)
    counts = _exact_counts(demands, capacities)
    coarsest = _largest_power_of_two_at_most(float(np.min(slack / (2.0 * (counts + 2)))))
    largest = float(np.max(capacities + slack))
    if not math.isfinite(largest):
        return coarsest
    # Every sum of units, (largest / u + 1)·(n + m), below 2^52: the search also holds them in
    # float64 (bounds, the cap on heavy users), which is exact only below 2^53.
    # (largest is at least τ_j > 0, so finest is positive)
    finest = largest * (demands.shape[0] + capacities.shape[0]) / 2.0**51
    return min(coarsest, math.ldexp(1.0, math.ceil(math.log2(finest))))


def value_unit(values: np.ndarray) -> float:
    """q: the power of two that puts Σ v_i just under 2^VALUE_BITS units (1 if Σ v_i = 0)."""
    total = float(values.sum())
    if total <= 0.0:
        return 1.0
    return math.ldexp(1.0, math.frexp(total)[1] - VALUE_BITS)


def integer_auction(auction: StandardAuction) -> IntegerAuction | None:
    """The auction in integer units, or None when its sums would not stay exact."""
    u = demand_unit(auction.demands, auction.capacities)
    slack = capacity_slack(auction.capacities)
    with np.errstate(over="ignore"):
        capacity_units = np.floor(auction.capacities / u) + np.floor(slack * (1.0 - SPARE) / u)
        weight_units = np.ceil(auction.demands / u)
    biggest = float(capacity_units.max())
    n = auction.n_users
    # A user heavier than every capacity never fits: its weight is capped at one unit over
    # the largest capacity, which changes nothing and bounds every sum of weights.
    if not (biggest + 1.0) * (n + auction.n_providers) < SUM_LIMIT:
        return None
    weights = np.minimum(weight_units, biggest + 1.0).astype(np.int64)
    capacities = capacity_units.astype(np.int64)
    q = value_unit(auction.values)
    profits = np.rint(auction.values / q).astype(np.int64)
    for array in (weights, capacities, profits):
        array.setflags(write=False)
    return IntegerAuction(weights, capacities, profits, u, q)
