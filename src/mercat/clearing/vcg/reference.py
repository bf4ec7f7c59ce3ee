"""Readable reference twins of the VCG solver: the plain MILP and brute force.

`plain_milp` is the textbook assignment MILP (x_ij = 1 when user i is served by provider
j): max Σ b_i d_i x_ij, Σ_j x_ij ≤ 1, Σ_i d_i x_ij ≤ C_j. It is what one would write first,
it is correct, and it stalls on the seed's set-up (see docs/vcg.md): the tests use it on
small markets, the benchmark runs it side by side with a time limit.

`brute_force_optimum` tries all (m+1)^n assignments; `brute_force_clarke` applies the
Clarke pivot rule to it literally. For tiny markets only.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from mercat.clearing.vcg.highs import new_highs, pass_model, run_mip
from mercat.clearing.vcg.instance import StandardAuction, capacity_limits
from mercat.errors import InvalidParameterError


@dataclass(frozen=True)
class ReferenceAllocation:
    """An assignment (provider per user, -1 unserved) with its welfare and proven bound."""

    assignment: np.ndarray
    welfare: float
    bound: float
    proven_optimal: bool
    seconds: float


def plain_milp(
    auction: StandardAuction,
    time_limit: float | None = None,
    exclude: int | None = None,
) -> ReferenceAllocation:
    """Solve the assignment MILP with HiGHS (one thread); `exclude` drops one user."""
    n, m = auction.n_users, auction.n_providers
    users = np.array([i for i in range(n) if i != exclude], dtype=np.int64)
    k = users.shape[0]
    # Column (u, j) for u-th kept user and provider j, index u*m + j; rows: k user rows
    # (Σ_j x ≤ 1) then m capacity rows.
    cost = np.repeat(auction.values[users], m)
    starts = np.arange(0, 2 * k * m + 1, 2)
    index = np.empty(2 * k * m, dtype=np.int64)
    index[0::2] = np.repeat(np.arange(k), m)
    index[1::2] = k + np.tile(np.arange(m), k)
    coef = np.empty(2 * k * m)
    coef[0::2] = 1.0
    coef[1::2] = np.repeat(auction.demands[users], m)
    row_upper = np.concatenate([np.ones(k), capacity_limits(auction.capacities)])
    h = new_highs(time_limit=time_limit)
    pass_model(h, cost, np.ones(k * m), row_upper, starts, index, coef, integer=True)
    answer = run_mip(h)
    assignment = np.full(n, -1, dtype=np.int64)
    if answer.x.shape[0]:
        chosen = np.flatnonzero(answer.x > 0.5)
        assignment[users[chosen // m]] = chosen % m
    welfare = float(auction.values[assignment >= 0].sum())
    return ReferenceAllocation(
        assignment, welfare, max(answer.bound, welfare), answer.optimal, h.getRunTime()
    )


def _check_tiny(auction: StandardAuction, limit: int = 2_000_000) -> None:
    count = (auction.n_providers + 1) ** auction.n_users
    if count > limit:
        raise InvalidParameterError(
            f"brute force over {count} assignments is too large (limit {limit})"
        )


def brute_force_optimum(auction: StandardAuction, exclude: int | None = None) -> float:
    """Best welfare over every assignment (users by index; `exclude` is never served)."""
    _check_tiny(auction)
    values, demands, caps = auction.values, auction.demands, auction.capacities
    best = 0.0
    choices = range(-1, auction.n_providers)
    for assignment in itertools.product(choices, repeat=auction.n_users):
        load = np.zeros(auction.n_providers)
        welfare = 0.0
        for i, j in enumerate(assignment):
            if j >= 0:
                if i == exclude:
                    break
                load[j] += demands[i]
                welfare += values[i]
        else:
            if np.all(load <= capacity_limits(caps)):
                best = max(best, welfare)
    return best


def brute_force_clarke(auction: StandardAuction, assignment: np.ndarray) -> np.ndarray:
    """Clarke pivot payments for an optimal assignment, literally, for every user.

    p_i = W*_{-i} - (welfare of the others under the assignment), where W*_{-i} is the
    optimum without user i; no shortcut for users who do not win.
    """
    w_star = brute_force_optimum(auction)
    payments = np.zeros(auction.n_users)
    for i in range(auction.n_users):
        others = w_star - (auction.values[i] if assignment[i] >= 0 else 0.0)
        payments[i] = brute_force_optimum(auction, exclude=i) - others
    return payments
