"""Exact 0/1 knapsack with real weights: the pricing step of the VCG column generation.

Two questions are asked of one knapsack (profits p_i, weights w_i > 0, capacity C):

- `knapsack_max`: the best subset, max Σ p_i x_i subject to Σ w_i x_i ≤ C. Given a `floor`,
  only subsets worth more than the floor are of interest: the search proves "nothing beats
  the floor" much faster than it finds the exact maximum, and that is all column generation
  needs once a provider's dual price is known.
- `knapsack_enumerate`: every subset worth at least a threshold (the reduced-cost column
  enumeration that proves the VCG optimum).

Weights are real numbers (bandwidth demands), so dynamic programming over integer
capacities does not apply; both functions are a depth-first branch and bound over the
items in decreasing profit/weight order with the Dantzig bound (fill the residual capacity
greedily, the break item fractionally), computed in O(log n) from prefix sums.

Tolerances: a subset fits when Σ w ≤ capacity_limit(C) = C + FEASIBILITY_TOL·max(1, C), the
one capacity rule of every mechanism (`mercat.market.model.capacity_limit`); profits are
compared with an absolute `tol`, so "exact" means exact up to `tol`. Each search also stops
after `node_limit` nodes and says so: a caller that gets `complete=False` must treat its
answer as a heuristic.

The compiled functions (numba) have readable twins, `knapsack_max_reference` (a
Pareto-set dynamic program, a different algorithm) and `knapsack_enumerate_reference`
(plain recursion), and tests hold them to the same answers.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mercat.market.model import FEASIBILITY_TOL, capacity_limit

DEFAULT_NODE_LIMIT = 50_000_000


def _order(profits: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Items by decreasing profit/weight, positive profits first (ties by index: stable)."""
    return np.argsort(-(profits / weights), kind="stable")


# nogil: providers of the distributed auctioneer run these searches in a worker thread;
# holding the GIL for seconds would stall their event loop (messages, timeouts, SIGTERM).
@njit(cache=True, nogil=True)
def _dantzig(k, residual, pos_end, prefix_w, prefix_p, w, p):  # pragma: no cover - numba
    """Upper bound on what items k..pos_end-1 (positive, ratio-sorted) add within `residual`."""
    if k >= pos_end or residual <= 0.0:
        return 0.0
    target = prefix_w[k] + residual
    # Largest t in [k, pos_end] with prefix_w[t] <= target: items k..t-1 fit whole.
    lo = k
    hi = pos_end
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if prefix_w[mid] <= target:
            lo = mid
        else:
            hi = mid - 1
    t = lo
    bound = prefix_p[t] - prefix_p[k]
    if t < pos_end:
        bound += (target - prefix_w[t]) * p[t] / w[t]
    return bound


@njit(cache=True, nogil=True)
def _search(p, w, capacity, floor, tol, node_limit, enumerate_all, max_out):  # pragma: no cover
    """Depth-first branch and bound over ratio-sorted items (see the module docstring).

    Maximise (`enumerate_all` False): returns the best value found above `floor` and its
    items. Enumerate (`enumerate_all` True): records every subset worth ≥ floor - tol, once,
    at the moment its last item is added (the empty set first, if it qualifies).
    """
    n = p.shape[0]
    pos_end = 0
    while pos_end < n and p[pos_end] > 0.0:
        pos_end += 1
    prefix_w = np.zeros(pos_end + 1)
    prefix_p = np.zeros(pos_end + 1)
    for i in range(pos_end):
        prefix_w[i + 1] = prefix_w[i] + w[i]
        prefix_p[i + 1] = prefix_p[i] + p[i]
    # capacity_limit(capacity), spelled out for numba (the same floating-point operations).
    cap = capacity + FEASIBILITY_TOL * max(1.0, capacity)

    x = np.zeros(n, dtype=np.bool_)
    best = floor
    best_x = np.zeros(n, dtype=np.bool_)
    found = False
    out_items = np.empty(max(max_out, 1) * 4, dtype=np.int64)
    out_start = np.zeros(max_out + 1, dtype=np.int64)
    n_out = 0
    n_items_out = 0
    overflow = False
    if enumerate_all and floor - tol <= 0.0:
        if max_out > 0:
            n_out = 1
        else:
            overflow = True

    k = 0
    cw = 0.0
    cp = 0.0
    nodes = 0
    complete = True
    while True:
        nodes += 1
        if nodes > node_limit:
            complete = False
            break
        if not enumerate_all and cp > best + tol:
            best = cp
            found = True
            best_x[:] = x
        prune = k >= n
        if not prune:
            bound = cp + _dantzig(k, cap - cw, pos_end, prefix_w, prefix_p, w, p)
            prune = bound < floor - tol if enumerate_all else bound <= best + tol
        if not prune:
            if w[k] <= cap - cw:
                x[k] = True
                cw += w[k]
                cp += p[k]
                if enumerate_all and cp >= floor - tol:
                    if n_out >= max_out:
                        overflow = True
                        break
                    # Record the subset: the items set so far.
                    count = 0
                    for i in range(k + 1):
                        if x[i]:
                            count += 1
                    if n_items_out + count > out_items.shape[0]:
                        grown = np.empty(2 * out_items.shape[0] + count, dtype=np.int64)
                        grown[:n_items_out] = out_items[:n_items_out]
                        out_items = grown
                    for i in range(k + 1):
                        if x[i]:
                            out_items[n_items_out] = i
                            n_items_out += 1
                    out_start[n_out + 1] = n_items_out
                    n_out += 1
            k += 1
            continue
        # Backtrack: the deepest included item switches to its exclude branch.
        j = k - 1
        while j >= 0 and not x[j]:
            j -= 1
        if j < 0:
            break
        x[j] = False
        cw -= w[j]
        cp -= p[j]
        k = j + 1
    if enumerate_all:
        return (
            0.0,
            x,
            complete and not overflow,
            out_items[:n_items_out],
            out_start[: n_out + 1],
            overflow,
        )
    if not found:
        best_x[:] = False
    return best, best_x, complete, out_items[:0], out_start[:1], False


def _as_arrays(profits, weights, capacity):
    p = np.ascontiguousarray(profits, dtype=np.float64)
    w = np.ascontiguousarray(weights, dtype=np.float64)
    if p.shape != w.shape or p.ndim != 1:
        raise ValueError("profits and weights must be 1-d arrays of the same length")
    if np.any(w <= 0.0):
        raise ValueError("knapsack weights must be > 0")
    return p, w, float(capacity)


def knapsack_max(
    profits: np.ndarray,
    weights: np.ndarray,
    capacity: float,
    floor: float = 0.0,
    tol: float = 1e-10,
    node_limit: int = DEFAULT_NODE_LIMIT,
) -> tuple[float, np.ndarray, bool]:
    """Best subset worth more than `floor` (+ tol): (value, chosen item indices, complete).

    With `complete` True the answer is exact: either the returned subset is optimal, or
    no subset is worth more than floor + tol and the result is (floor, empty, True).
    With `complete` False the node limit stopped the search and the subset is only the
    best one seen.
    """
    p, w, cap = _as_arrays(profits, weights, capacity)
    useful = np.flatnonzero(p > 0.0)  # an item of profit <= 0 never improves a subset
    order = useful[_order(p[useful], w[useful])]
    value, chosen, complete, _, _, _ = _search(
        p[order], w[order], cap, float(floor), float(tol), int(node_limit), False, 0
    )
    return float(value), np.sort(order[chosen]), bool(complete)


def dantzig_bound(profits: np.ndarray, weights: np.ndarray, capacity: float) -> float:
    """The LP-relaxation bound on `knapsack_max` (what an interrupted search can still claim)."""
    p, w, cap = _as_arrays(profits, weights, capacity)
    keep = p > 0.0
    p, w = p[keep], w[keep]
    order = _order(p, w)
    p, w = p[order], w[order]
    limit = capacity_limit(cap)
    fits = np.cumsum(w) <= limit
    t = int(fits.sum())
    bound = float(p[:t].sum())
    if t < len(p):
        bound += (limit - float(w[:t].sum())) * p[t] / w[t]
    return bound


def knapsack_enumerate_csr(
    profits: np.ndarray,
    weights: np.ndarray,
    capacity: float,
    threshold: float,
    max_subsets: int,
    tol: float = 1e-10,
    node_limit: int = DEFAULT_NODE_LIMIT,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """`knapsack_enumerate` in compressed form: (items, starts, complete), subset s being
    items[starts[s]:starts[s + 1]] (item indices, unsorted); the empty subset comes first
    when it qualifies."""
    p, w, cap = _as_arrays(profits, weights, capacity)
    order = _order(p, w)
    _, _, complete, items, starts, _ = _search(
        p[order],
        w[order],
        cap,
        float(threshold),
        float(tol),
        int(node_limit),
        True,
        int(max_subsets),
    )
    return order[items], starts, bool(complete)


def knapsack_enumerate(
    profits: np.ndarray,
    weights: np.ndarray,
    capacity: float,
    threshold: float,
    max_subsets: int,
    tol: float = 1e-10,
    node_limit: int = DEFAULT_NODE_LIMIT,
) -> tuple[list[np.ndarray], bool]:
    """Every subset that fits and is worth ≥ threshold - tol: (subsets, complete).

    Items of negative profit take part too (a subset may carry one if it stays above the
    threshold). `complete` is False when more than `max_subsets` subsets qualify or the node
    limit was hit; the list is then partial.
    """
    items, starts, complete = knapsack_enumerate_csr(
        profits, weights, capacity, threshold, max_subsets, tol, node_limit
    )
    subsets = [np.sort(items[starts[s] : starts[s + 1]]) for s in range(len(starts) - 1)]
    return subsets, complete


# --- readable twins ------------------------------------------------------------------------


def knapsack_max_reference(
    profits: np.ndarray, weights: np.ndarray, capacity: float
) -> tuple[float, np.ndarray]:
    """Exact maximum by the Pareto-set dynamic program (Nemhauser-Ullmann), no pruning.

    After each item the list holds the non-dominated (weight, profit, items) states: no
    other state is at most as heavy and at least as profitable. Exponential in the worst
    case, fine for the tests' sizes. Returns (value, chosen item indices).
    """
    p, w, cap = _as_arrays(profits, weights, capacity)
    limit = capacity_limit(cap)
    states: list[tuple[float, float, tuple[int, ...]]] = [(0.0, 0.0, ())]
    for i in range(len(p)):
        if p[i] <= 0.0:
            continue  # never part of a maximum
        grown = [(sw + w[i], sp + p[i], (*items, i)) for sw, sp, items in states]
        merged = sorted(
            [s for s in states + grown if s[0] <= limit],
            key=lambda s: (s[0], -s[1]),
        )
        states = []
        for state in merged:  # keep a state only if it beats every lighter one
            if not states or state[1] > states[-1][1]:
                states.append(state)
    _, value, items = max(states, key=lambda s: s[1])
    return float(value), np.array(sorted(items), dtype=np.int64)


def knapsack_enumerate_reference(
    profits: np.ndarray, weights: np.ndarray, capacity: float, threshold: float
) -> list[np.ndarray]:
    """Every fitting subset worth ≥ threshold, by plain include/exclude recursion."""
    p, w, cap = _as_arrays(profits, weights, capacity)
    limit = capacity_limit(cap)
    found: list[np.ndarray] = []

    def visit(i: int, weight: float, value: float, items: tuple[int, ...]) -> None:
        if i == len(p):
            if value >= threshold - 1e-10:
                found.append(np.array(items, dtype=np.int64))
            return
        visit(i + 1, weight, value, items)
        if weight + w[i] <= limit:
            visit(i + 1, weight + w[i], value + p[i], (*items, i))

    visit(0, 0.0, 0.0, ())
    return found
