"""Stackelberg pricing of compute (seed 002, §III.C with eq. 2-3): the provider leads, the
requesters follow.

The seed names the game ("the provider is considered to be a leader; the requesters and
oracles are followers") and the two payoffs, eq. 2 (provider profit Σ P·C_i − λ_i R_i) and
eq. 3 (requester utility Σ Q_i − P_i), but not the satisfaction Q or how to solve it. mercat's
reading, the textbook one for a leader posting a unit price:

- requester i values C compute units at Q_i(C) = a_i · ln(1 + C): diminishing returns, a_i
  its scale (its marginal value of the first unit);
- at price P it buys the C that maximizes eq. 3, Q_i(C) − P·C: C_i(P) = max(0, a_i / P − 1),
  so it buys only if a_i > P;
- the provider, knowing the followers' responses, posts the P that maximizes eq. 2 with an
  expected SLA penalty per unit: Π(P) = (P − c − v·λ·R) · Σ C_i(P), where c is its unit cost,
  v its violation probability, λ the penalty factor and R the oracle reports a violation
  draws; with a capacity K, Σ C_i(P) ≤ K.

`stackelberg_price` solves the leader's problem exactly. Between two consecutive a's the set
S of buying requesters is fixed, Π(P) = (P − c')(A_S / P − |S|) with A_S = Σ_S a_i is concave
in P (Π'' = −2c'A_S/P³), its stationary point is P = sqrt(c'·A_S/|S|), and capacity adds the
lower bound P ≥ A_S / (K + |S|). The best price is the best of the clipped stationary points
over the n intervals: O(n log n), no search. `stackelberg_price_reference` is its readable
twin, a dense grid over prices refined by scipy's bounded scalar minimizer; a test holds the
two to the same profit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mercat import validation as check
from mercat.errors import InvalidParameterError


@dataclass(frozen=True)
class StackelbergOutcome:
    price: float  # P, per compute unit
    demands: np.ndarray  # C_i(P), the followers' best responses
    profit: float  # eq. 2 in expectation: (P − c − v·λ·R) · Σ C_i
    utilities: np.ndarray  # eq. 3 per requester: a_i ln(1 + C_i) − P·C_i
    capacity_binding: bool  # whether the price was raised to keep demand within capacity

    @property
    def sold(self) -> float:
        return float(self.demands.sum())


def _inputs(
    satisfaction: Sequence[float], unit_cost: float, capacity: float, expected_penalty: float
) -> tuple[np.ndarray, float, float]:
    a = np.asarray(satisfaction, dtype=float)
    if a.ndim != 1 or a.size == 0:
        raise InvalidParameterError("satisfaction needs one scale a_i > 0 per requester")
    values = satisfaction.tolist() if isinstance(satisfaction, np.ndarray) else list(satisfaction)
    for i, value in enumerate(values):
        check.positive(f"satisfaction[{i}]", value)
    check.non_negative("unit cost", unit_cost)
    check.non_negative("expected penalty per unit", expected_penalty)
    if not (capacity == math.inf or check.positive("capacity", capacity)):
        raise InvalidParameterError(f"capacity must be > 0, got {capacity!r}")
    effective = float(unit_cost) + float(expected_penalty)
    if effective == 0 and capacity == math.inf:
        raise InvalidParameterError(
            "with zero marginal cost and no capacity the leader's best price tends to 0 and "
            "demand (a/P − 1) grows without bound: give a unit cost or a capacity"
        )
    return a, effective, float(capacity)


def demand(satisfaction: np.ndarray, price: float) -> np.ndarray:
    """The followers' best responses to `price`: argmax_C a·ln(1 + C) − P·C = max(0, a/P − 1)."""
    return np.maximum(0.0, np.asarray(satisfaction, dtype=float) / price - 1.0)


def _outcome(a: np.ndarray, price: float, effective: float, capacity: float) -> StackelbergOutcome:
    c = demand(a, price)
    binding = capacity < math.inf and c.sum() >= capacity * (1 - 1e-9)
    utilities = a * np.log1p(c) - price * c
    return StackelbergOutcome(price, c, (price - effective) * float(c.sum()), utilities, binding)


def stackelberg_price(
    satisfaction: Sequence[float],
    unit_cost: float,
    capacity: float = math.inf,
    expected_penalty: float = 0.0,
) -> StackelbergOutcome:
    """The leader's profit-maximizing unit price and the followers' responses (exact)."""
    a, effective, capacity = _inputs(satisfaction, unit_cost, capacity, expected_penalty)
    order = np.sort(a)[::-1]
    if order[0] <= effective:  # nobody values a unit above its cost: no profitable price
        return _outcome(a, order[0], effective, capacity)
    best_price, best_profit = order[0], 0.0
    total = 0.0
    for k in range(1, order.size + 1):
        total += order[k - 1]  # A_S for the k largest
        high = order[k - 1]  # above it the k-th requester stops buying
        low = order[k] if k < order.size else 0.0  # below it the (k+1)-th starts
        low = max(low, effective, total / (capacity + k) if capacity < math.inf else 0.0)
        if low > high:
            continue
        price = min(max(math.sqrt(effective * total / k), low), high)
        profit = (price - effective) * (total / price - k)
        if profit > best_profit:
            best_price, best_profit = price, profit
    return _outcome(a, best_price, effective, capacity)


def stackelberg_price_reference(
    satisfaction: Sequence[float],
    unit_cost: float,
    capacity: float = math.inf,
    expected_penalty: float = 0.0,
    grid: int = 20_001,
) -> StackelbergOutcome:
    """The readable twin: evaluate the profit on a dense grid of feasible prices, from the
    marginal cost (or the lowest price at which demand fits the capacity, found by bisection:
    demand falls as the price rises) up to the largest a_i, then refine around the best grid
    point with scipy's bounded minimizer."""
    from scipy.optimize import minimize_scalar

    a, effective, capacity = _inputs(satisfaction, unit_cost, capacity, expected_penalty)
    top = float(a.max())
    if top <= effective:
        return _outcome(a, top, effective, capacity)

    def profit(price: float) -> float:
        return (price - effective) * float(demand(a, price).sum())

    cheapest = max(effective, 1e-12 * top)  # demand at a zero price is unbounded
    if float(demand(a, cheapest).sum()) > capacity:
        lo, hi = cheapest, top
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if float(demand(a, mid).sum()) > capacity else (lo, mid)
        cheapest = hi
    prices = np.linspace(cheapest, top, grid)
    values = np.array([profit(p) for p in prices])
    i = int(values.argmax())
    lo, hi = prices[max(i - 1, 0)], prices[min(i + 1, grid - 1)]
    refined = minimize_scalar(lambda p: -profit(p), bounds=(lo, hi), method="bounded",
                              options={"xatol": 1e-12})  # fmt: skip
    price = float(refined.x) if -refined.fun >= values[i] else float(prices[i])
    return _outcome(a, price, effective, capacity)
