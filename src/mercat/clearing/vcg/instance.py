"""The standard auction's data (seed 003 §5.2.2) at array level: validation, the seed set-up.

n users, m providers. User i bids b_i per unit for a demand d_i > 0; provider j has
capacity C_j ≥ 0. An allocation gives each user one provider or none (-1), and is feasible
when every provider's assigned demand is at most capacity_limit(C_j), the capacity rule of
every mechanism (`mercat.market.model.capacity_limit`). The
welfare of an allocation is Σ b_i·d_i over the users it serves.

The seed's experimental set-up (§6.2-6.3) is drawn by `mercat.market.generators`: bids
U[0.75, 1.25], demands U(0, 1], m = 8, capacity C_j = f_j·D/m with D the overall demand.
Two readings of the capacity factor f_j matter here:

- the seed's literal text, f_j ~ U[0, 0.25] ("scaled down using a random factor in
  [0, 0.25], so roughly no more than a quarter of the users win"): about an eighth of the
  users win. This is the generators' default and the set-up of the VCG bars
  (benchmarks/bench_vcg.py, docs/vcg.md).
- a wider reading, f_j ~ U[0, 0.5], read from the seed's purpose (about a quarter of
  the demand fits). Twice as many winners per provider make the proof of optimality far
  harder (docs/vcg.md, "When the optimum cannot be proven").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mercat.errors import InvalidParameterError
from mercat.market.generators import SEED_CAPACITY_FACTOR
from mercat.market.model import FEASIBILITY_TOL


@dataclass(frozen=True, eq=False)
class StandardAuction:
    """A validated standard auction: float64 arrays, read-only."""

    bids: np.ndarray  # (n,) per-unit bids b_i >= 0
    demands: np.ndarray  # (n,) demands d_i > 0
    capacities: np.ndarray  # (m,) capacities C_j >= 0

    @property
    def n_users(self) -> int:
        return int(self.bids.shape[0])

    @property
    def n_providers(self) -> int:
        return int(self.capacities.shape[0])

    @property
    def values(self) -> np.ndarray:
        """Each user's bid for its whole demand, b_i·d_i."""
        return self.bids * self.demands


def _vector(name: str, values: object) -> np.ndarray:
    try:
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"{name} must be a 1-d array of numbers: {exc}") from None
    if array.ndim != 1:
        raise InvalidParameterError(f"{name} must be 1-d, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InvalidParameterError(f"{name} must be finite, got {array[~np.isfinite(array)]}")
    array.setflags(write=False)
    return array


def capacity_limits(capacities: np.ndarray) -> np.ndarray:
    """`mercat.market.model.capacity_limit` of each capacity (the same floats, vectorised)."""
    return capacities + FEASIBILITY_TOL * np.maximum(1.0, capacities)


def capacity_slack(capacities: np.ndarray) -> np.ndarray:
    """What the capacity rule allows over each capacity, τ_j = FEASIBILITY_TOL·max(1, C_j)
    (`capacity_limits` minus the capacity; the integer units of `vcg.units` keep half)."""
    return FEASIBILITY_TOL * np.maximum(1.0, capacities)


def standard_auction(bids: object, demands: object, capacities: object) -> StandardAuction:
    """Validate (raising InvalidParameterError) and freeze the three arrays of an auction."""
    b = _vector("bids", bids)
    d = _vector("demands", demands)
    c = _vector("capacities", capacities)
    if b.shape != d.shape:
        raise InvalidParameterError(
            f"bids and demands must have the same length, got {b.shape[0]} and {d.shape[0]}"
        )
    if np.any(b < 0):
        raise InvalidParameterError(f"bids must be >= 0, got {b[b < 0][:3]}")
    if np.any(d <= 0):
        raise InvalidParameterError(f"demands must be > 0, got {d[d <= 0][:3]}")
    if np.any(c < 0):
        raise InvalidParameterError(f"capacities must be >= 0, got {c[c < 0][:3]}")
    if c.shape[0] == 0:
        raise InvalidParameterError("an auction needs at least one provider")
    return StandardAuction(b, d, c)


def seed003_standard_auction(
    n_users: int,
    n_providers: int = 8,
    seed: int | np.random.Generator | None = 0,
    capacity_factor: tuple[float, float] = SEED_CAPACITY_FACTOR,
) -> StandardAuction:
    """The seed's set-up (`mercat.market.generators.standard_auction_arrays`), reproducibly.

    `capacity_factor` defaults to the seed's literal U[0, 0.25] (see the module docstring);
    `mercat.market.generators.WIDE_CAPACITY_FACTOR` is the wider quarter-of-demand reading."""
    from mercat.market.generators import standard_auction_arrays

    arrays = standard_auction_arrays(seed, n_users, n_providers, capacity_factor=capacity_factor)
    return standard_auction(arrays.bids, arrays.demands, arrays.capacities)


def check_assignment(auction: StandardAuction, assignment: np.ndarray) -> float:
    """Welfare of a feasible assignment (provider per user, -1 for none); raises if infeasible."""
    a = np.asarray(assignment)
    if a.shape != (auction.n_users,):
        raise InvalidParameterError(f"assignment must have shape ({auction.n_users},)")
    if np.any((a < -1) | (a >= auction.n_providers)):
        raise InvalidParameterError("assignment names a provider that does not exist")
    served = a >= 0
    load = np.bincount(a[served], weights=auction.demands[served], minlength=auction.n_providers)
    over = load > capacity_limits(auction.capacities)
    if np.any(over):
        j = int(np.flatnonzero(over)[0])
        raise InvalidParameterError(
            f"provider {j} is over capacity: load {load[j]} > {auction.capacities[j]}"
        )
    return float(auction.values[served].sum())
