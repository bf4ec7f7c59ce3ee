"""Sampled misreports: does lying about one's value (or cost) pay, on average?

A participant misreports by scaling its own number (a request's value, so its per-unit bid;
a node's fixed and per-unit costs) by a factor; its gain is its true utility under the
clearing of the misreported market minus its true utility under the truthful clearing.
`misreports_pay` is a one-sided t-test of "mean gain > 0".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

from mercat.clearing.base import Mechanism
from mercat.market.economics import node_utility, request_utility
from mercat.market.model import Clearing, Market

ClearFn = Callable[[Market, int], Clearing]


def misreport(market: Market, participant: str, factor: float) -> Market:
    """The market in which `participant` reports `factor` times its true value or costs."""
    if participant in market.request_by_id:
        requests = tuple(
            dataclasses.replace(t, value=t.value * factor) if t.id == participant else t
            for t in market.requests
        )
        return dataclasses.replace(market, requests=requests)
    nodes = tuple(
        dataclasses.replace(
            n, cost=n.cost * factor, unit_costs=tuple(c * factor for c in n.unit_costs)
        )
        if n.id == participant
        else n
        for n in market.nodes
    )
    return dataclasses.replace(market, nodes=nodes)


def true_utility(market: Market, clearing: Clearing, participant: str) -> float:
    if participant in market.request_by_id:
        return request_utility(market, clearing.allocation, clearing.payments, participant)
    return node_utility(market, clearing.allocation, clearing.rewards, participant)


def misreport_gains(
    mechanism: Mechanism | ClearFn,
    markets: Sequence[Market],
    rng: np.random.Generator,
    samples: int,
    *,
    choose: Callable[[Market, Clearing, np.random.Generator], str] | None = None,
    factors: tuple[float, float] = (0.5, 1.5),
) -> np.ndarray:
    """Gains of `samples` random misreports (market, participant and factor drawn from rng).

    `choose` picks the participant (default: uniformly among requests and nodes)."""
    clear: ClearFn = (
        (lambda m, s: mechanism.clear(m, seed=s)) if isinstance(mechanism, Mechanism) else mechanism
    )
    gains = np.empty(samples)
    for s in range(samples):
        market = markets[int(rng.integers(len(markets)))]
        truthful = clear(market, s)
        if choose is None:
            ids = [t.id for t in market.requests] + [n.id for n in market.nodes]
            participant = ids[int(rng.integers(len(ids)))]
        else:
            participant = choose(market, truthful, rng)
        lied = clear(misreport(market, participant, float(rng.uniform(*factors))), s)
        gains[s] = true_utility(market, lied, participant) - true_utility(
            market, truthful, participant
        )
    return gains


def misreports_pay(gains: np.ndarray, alpha: float = 1e-3, tol: float = 1e-9) -> tuple[bool, float]:
    """One-sided t-test of H0 "mean gain ≤ 0": (rejected at level alpha, p-value)."""
    gains = np.asarray(gains, dtype=float)
    if gains.max() <= tol:  # no sample gained anything: nothing to test
        return False, 1.0
    p_value = float(stats.ttest_1samp(gains, 0.0, alternative="greater").pvalue)
    return p_value < alpha, p_value
