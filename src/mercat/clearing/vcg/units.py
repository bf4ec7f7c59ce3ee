"""The standard auction in integer units, so that the multiple-knapsack search is exact.

Demands and values are real numbers; a branch and bound that adds and compares them in
floating point needs tolerances everywhere, and two providers of the distributed
auctioneer could disagree on a comparison that sits at the rounding error. Here every
quantity becomes an int64 once, with two stated scales, and the search adds and compares
integers only.

Demands. A provider j is feasible in the market when its load is at most capacity_limit(C_j)
= C_j + τ_j, with τ_j = FEASIBILITY_TOL·max(1, C_j) (mercat's one capacity rule,
`mercat.market.model.capacity_limit`). With a demand unit u (a power of two):

    w_i = ⌈d_i / u⌉,        K_j = ⌊C_j / u⌋ + ⌊τ_j / (2u)⌋,

and u is the largest power of two with u ≤ τ_j / (2(k_j + 2)) for every j, k_j being the
most users that fit C_j exactly (the k_j smallest demands). Then

- an assignment whose integer load fits, Σ w_i ≤ K_j, has a real load Σ d_i ≤ Σ w_i·u ≤
  C_j + τ_j/2: the market accepts it, with τ_j/2 to spare for the market's own floating
  point sum;
- an assignment that fits exactly, Σ d_i ≤ C_j with at most k_j users, has Σ w_i ≤ C_j/u +
  k_j ≤ ⌊C_j/u⌋ + k_j + 1 ≤ K_j: it fits in integers too.

So the integer problem sits between "every provider within its capacity exactly" and "within
the market's tolerance": every assignment that fits exactly is a candidate, nothing the
market would refuse is. The W*_{-i} re-solves of the Clarke payments use the same units as
the allocation, so W* and every W*_{-i} are optima of one feasible family.

Values. p_i = round(v_i / q) with q the power of two that puts Σ v_i just under 2^60: every
sum of profits is exact, and the welfare of any set of users is off by at most |S|·q/2
(about 10^-18 of the total welfare per user). The search maximises Σ p_i exactly; the
allocation it returns is optimal for the real values within n·q.

`integer_auction` returns None when the auction's range does not fit 62-bit sums (absurdly
spread capacities, say 10^-3 next to 10^12); the mechanism then uses the column-generation
solver, which works on floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mercat.clearing.vcg.instance import StandardAuction, capacity_slack

SUM_LIMIT = 2**62
"""Every integer sum the search forms stays below this (int64 holds 2^63 - 1)."""

VALUE_BITS = 60
"""Σ v_i is scaled to just under 2^VALUE_BITS value units."""


@dataclass(frozen=True, eq=False)
class IntegerAuction:
    """A standard auction in integer units (see the module docstring); read-only arrays."""

    weights: np.ndarray  # (n,) int64 demand units, ⌈d_i / u⌉ (capped, see below)
    capacities: np.ndarray  # (m,) int64 demand units, ⌊C_j / u⌋ + ⌊τ_j / (2u)⌋
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


def demand_unit(demands: np.ndarray, capacities: np.ndarray) -> float:
    """u: the largest power of two with u ≤ τ_j / (2(k_j + 2)) for every provider j."""
    slack = capacity_slack(capacities)
    counts = _exact_counts(demands, capacities)
    return _largest_power_of_two_at_most(float(np.min(slack / (2.0 * (counts + 2)))))


def value_unit(values: np.ndarray) -> float:
    """q: the power of two that puts Σ v_i just under 2^VALUE_BITS units (1 if Σ v_i = 0)."""
    total = float(values.sum())
    if total <= 0.0:
        return 1.0
    return math.ldexp(1.0, math.frexp(total)[1] - VALUE_BITS)


def integer_auction(auction: StandardAuction) -> IntegerAuction | None:
    """The auction in integer units, or None when its sums would not fit 62 bits."""
    u = demand_unit(auction.demands, auction.capacities)
    slack = capacity_slack(auction.capacities)
    with np.errstate(over="ignore"):
        capacity_units = np.floor(auction.capacities / u) + np.floor(slack / (2.0 * u))
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
