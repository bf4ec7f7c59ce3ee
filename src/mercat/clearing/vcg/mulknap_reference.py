"""The readable twin of `mulknap`: the multiple-knapsack search in plain Python.

The same integer units (`vcg.units`), the same surrogate bound (all open providers merged
into one knapsack), the same split of the surrogate solution into the providers and the
same bin completion on the smallest open provider, written for reading rather than speed:

- the surrogate knapsack is solved by the Pareto-set dynamic program (Nemhauser-Ullmann,
  a different algorithm from the compiled branch and bound);
- the split is an exact packing test (every way of placing the users, heaviest first),
  where the compiled code uses a subset-sum heuristic per provider, near the root the
  search of `vcg.split`, and at a pass's root a deal of the surrogate solution with room;
- every filling of the branching provider is a child (no waste or capacity-curve
  filters, no user-by-user branching, no reductions, no limits).

Exponential in the worst case: for the tests' markets (a dozen users). The tests hold it
and `mulknap.solve_mulknap` to the same optima, and both to brute force and the plain MILP.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from mercat.clearing.vcg.units import IntegerAuction


@dataclass(frozen=True)
class ReferenceResult:
    assignment: np.ndarray  # provider per user, -1 unserved
    value: int  # Σ p_i over the served users, value units (the optimum)


def best_knapsack(
    users: list[int], profits: np.ndarray, weights: np.ndarray, capacity: int
) -> tuple[int, tuple[int, ...]]:
    """The exact 0/1 knapsack over `users`: (value, users chosen), by keeping after each
    user the states (weight, profit) that no lighter state beats."""
    states: list[tuple[int, int, tuple[int, ...]]] = [(0, 0, ())]
    for i in users:
        grown = [(sw + int(weights[i]), sp + int(profits[i]), (*s, i)) for sw, sp, s in states]
        merged = sorted(
            (s for s in states + grown if s[0] <= capacity), key=lambda s: (s[0], -s[1])
        )
        states = []
        for state in merged:
            if not states or state[1] > states[-1][1]:
                states.append(state)
    _, value, chosen = max(states, key=lambda s: s[1])
    return value, chosen


def pack(
    users: list[int], providers: list[int], room: dict[int, int], weights: np.ndarray
) -> dict[int, int] | None:
    """Every user placed into a provider with room, or None when that is impossible: all
    placements, users in the given order (heaviest first prunes soonest)."""
    if not users:
        return {}
    user, rest = users[0], users[1:]
    for j in providers:
        if weights[user] <= room[j]:
            room[j] -= int(weights[user])
            placed = pack(rest, providers, room, weights)
            room[j] += int(weights[user])
            if placed is not None:
                return {user: j, **placed}
    return None


def solve_reference(units: IntegerAuction, excluded: int | None = None) -> ReferenceResult:
    """The welfare-maximising assignment of `units` (user `excluded` never served)."""
    profits, weights = units.profits, units.weights
    by_efficiency = np.argsort(-profits / weights, kind="stable").tolist()
    users = [i for i in by_efficiency if profits[i] > 0 and i != excluded]
    providers = np.argsort(units.capacities, kind="stable").tolist()  # smallest first
    best: dict = {"value": 0, "assignment": {}}

    def record(value: int, assignment: dict[int, int]) -> None:
        if value > best["value"]:
            best["value"], best["assignment"] = value, dict(assignment)

    def search(room: dict[int, int], fixed: dict[int, int]) -> None:
        """Room left per provider (0 once closed), users fixed to providers."""
        value_fixed = sum(int(profits[i]) for i in fixed)
        free = [i for i in users if i not in fixed and any(weights[i] <= r for r in room.values())]
        usable = {j: sum(int(weights[i]) for i in free if weights[i] <= room[j]) for j in providers}
        open_providers = [j for j in providers if usable[j] > 0]
        if not open_providers:
            record(value_fixed, fixed)
            return
        surrogate = sum(min(room[j], usable[j]) for j in open_providers)
        value, chosen = best_knapsack(free, profits, weights, surrogate)
        if value_fixed + value <= best["value"]:
            return  # the surrogate bound closes the node
        heaviest_first = sorted(chosen, key=lambda i: -weights[i])
        placed = pack(heaviest_first, open_providers, dict(room), weights)
        if placed is not None:  # the bound is reached: the node is solved
            record(value_fixed + value, {**fixed, **placed})
            return
        # Bin completion on the smallest open provider: one child per filling, the
        # provider closed in each.
        j = open_providers[0]
        may_use = [i for i in free if weights[i] <= room[j]]
        for size in range(len(may_use) + 1):
            for filling in itertools.combinations(may_use, size):
                if sum(int(weights[i]) for i in filling) <= room[j]:
                    search({**room, j: 0}, {**fixed, **dict.fromkeys(filling, j)})

    search({j: int(units.capacities[j]) for j in providers}, {})
    assignment = np.full(units.n_users, -1, dtype=np.int64)
    for i, j in best["assignment"].items():
        assignment[i] = j
    return ReferenceResult(assignment, int(best["value"]))
