"""The standard auction's data (seed 003 §5.2.2) at array level: validation, the seed set-up.

n users, m providers. User i bids b_i per unit for a demand d_i > 0; provider j has
capacity C_j ≥ 0. An allocation gives each user one provider or none (-1), and is feasible
when every provider's assigned demand is at most its capacity (up to FEASIBILITY_TOL). The
welfare of an allocation is Σ b_i·d_i over the users it serves.

The seed's experimental set-up (§6.2-6.3), with the reading chosen for its capacity rule:
bids b_i ~ U[0.75, 1.25], demands d_i ~ U(0, 1], m = 8 providers, and "the capacity of the
providers is based on the overall bandwidth required ... scaled down using a random factor
in [0, 0.25], so roughly no more than a quarter of the users win": C_j = f_j·D/m with
D = Σ_i d_i the overall demand, D/m a provider's even share of it and f_j ~ U[0, 0.25].
The total capacity is then on average an eighth of the demand (never more than a quarter).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mercat.clearing.knapsack import FEASIBILITY_TOL
from mercat.errors import InvalidParameterError


@dataclass(frozen=True, eq=False)
class AuctionArrays:
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


def auction_arrays(bids: object, demands: object, capacities: object) -> AuctionArrays:
    """Validate (raising InvalidParameterError) and freeze the three arrays of an auction."""
    if isinstance(bids, AuctionArrays):
        raise InvalidParameterError("pass the three arrays, not an AuctionArrays")
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
    return AuctionArrays(b, d, c)


def seed003_standard_auction(
    n_users: int, n_providers: int = 8, seed: int | np.random.Generator | None = 0
) -> AuctionArrays:
    """The seed's set-up (see the module docstring for the capacity rule), reproducibly."""
    if isinstance(n_users, bool) or not isinstance(n_users, int | np.integer) or n_users < 1:
        raise InvalidParameterError(f"n_users must be an integer >= 1, got {n_users!r}")
    if (
        isinstance(n_providers, bool)
        or not isinstance(n_providers, int | np.integer)
        or n_providers < 1
    ):
        raise InvalidParameterError(f"n_providers must be an integer >= 1, got {n_providers!r}")
    rng = np.random.default_rng(seed)
    bids = rng.uniform(0.75, 1.25, n_users)
    demands = 1.0 - rng.uniform(0.0, 1.0, n_users)  # U(0, 1]: 1 - U[0, 1)
    share = demands.sum() / n_providers
    capacities = rng.uniform(0.0, 0.25, n_providers) * share
    return auction_arrays(bids, demands, capacities)


def check_assignment(auction: AuctionArrays, assignment: np.ndarray) -> float:
    """Welfare of a feasible assignment (provider per user, -1 for none); raises if infeasible."""
    a = np.asarray(assignment)
    if a.shape != (auction.n_users,):
        raise InvalidParameterError(f"assignment must have shape ({auction.n_users},)")
    if np.any((a < -1) | (a >= auction.n_providers)):
        raise InvalidParameterError("assignment names a provider that does not exist")
    served = a >= 0
    load = np.bincount(a[served], weights=auction.demands[served], minlength=auction.n_providers)
    over = load > auction.capacities + FEASIBILITY_TOL
    if np.any(over):
        j = int(np.flatnonzero(over)[0])
        raise InvalidParameterError(
            f"provider {j} is over capacity: load {load[j]} > {auction.capacities[j]}"
        )
    return float(auction.values[served].sum())
