"""Exact set packing over listed columns, by a depth-first search on Lagrangian waste.

With duals π ≥ 0 and z_k the best reduced profit of provider k (see `vcg_colgen`), every
assignment's distance below the bound L = Σ π + Σ z splits into non-negative parts:

    waste = Σ_k waste_k + Σ_{i unserved} π_i,   waste_k = z_k - Σ_{i∈S_k} (v_i - π_i),

where S_k is provider k's set (empty: waste_k = z_k). Minimising the waste over the listed
columns maximises welfare. The search decides, in turn:

1. an undecided user with π_i > 0 (largest π first): served by one of the listed columns
   that contain it (on a provider still free, disjoint from what is taken), or never
   served (it then costs π_i and is kept out of later columns);
2. once no such user can still be served, the remaining providers one by one: one of
   their compatible columns, or empty.

A node's lower bound is its waste so far, plus each free provider's cheapest compatible
column (or z_k), plus π_i of each undecided user that no compatible column can serve. The
columns are visited in increasing waste, so a branch stops at the first column that cannot
beat the incumbent. A MILP solver's LP bound is barely stronger here (the LP mixes columns
fractionally and fills every provider), and this search is orders of magnitude faster per
node; `packing_reference` is the brute-force twin the tests compare it with.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numba import njit


@dataclass(frozen=True)
class ColumnList:
    """Columns in compressed form: column c is provider `providers[c]` serving users
    `items[starts[c]:starts[c + 1]]`."""

    providers: np.ndarray
    starts: np.ndarray
    items: np.ndarray

    def __len__(self) -> int:
        return int(self.providers.shape[0])

    def members(self, c: int) -> np.ndarray:
        return self.items[self.starts[c] : self.starts[c + 1]]

    @classmethod
    def from_lists(cls, providers: np.ndarray, members: list[np.ndarray]) -> ColumnList:
        lengths = np.array([len(users) for users in members], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        items = (
            np.concatenate([np.asarray(u, dtype=np.int64) for u in members])
            if members
            else np.zeros(0, dtype=np.int64)
        )
        return cls(np.asarray(providers, dtype=np.int64), starts, items)

    @classmethod
    def concat(cls, parts: list[ColumnList]) -> ColumnList:
        if not parts:
            return cls(np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.int64))
        offsets = np.cumsum([0] + [int(p.starts[-1]) for p in parts[:-1]])
        starts = np.concatenate(
            [[0]] + [p.starts[1:] + off for p, off in zip(parts, offsets, strict=True)]
        )
        return cls(
            np.concatenate([p.providers for p in parts]),
            starts.astype(np.int64),
            np.concatenate([p.items for p in parts]),
        )


# nogil: providers of the distributed auctioneer run these searches in a worker thread;
# holding the GIL for seconds would stall their event loop (messages, timeouts, SIGTERM).
@njit(cache=True, nogil=True)
def _user_bits(starts, items, order, n_users):  # pragma: no cover - numba
    """Columns (in `order`) as bitsets over users: (n_columns, ceil(n/64)) uint64."""
    words = max(1, (n_users + 63) // 64)
    bits = np.zeros((order.shape[0], words), dtype=np.uint64)
    for r in range(order.shape[0]):
        c = order[r]
        for t in range(starts[c], starts[c + 1]):
            u = items[t]
            bits[r, u >> 6] |= np.uint64(1) << np.uint64(u & 63)
    return bits


@njit(cache=True, nogil=True)
def _fits(bits, c, taken):  # pragma: no cover - numba
    # A plain loop: numba compiles no generator expressions inside all().
    for w in range(bits.shape[1]):  # noqa: SIM110
        if bits[c, w] & taken[w]:
            return False
    return True


@njit(cache=True, nogil=True)
def _holds(bits, c, u):  # pragma: no cover - numba
    return (bits[c, u >> 6] >> np.uint64(u & 63)) & np.uint64(1) != 0


@njit(cache=True, nogil=True)
def _search(
    problem, candidates, acc, taken, free, choice, best, best_choice, counter, limit
):  # pragma: no cover
    """One node of the search.

    `problem` = (bits, col_starts, col_items, provider, waste, empty_waste, penalty,
    penalised, slot): columns sorted by waste, as bitsets and as user lists
    (col_items[col_starts[c]:col_starts[c + 1]]), their provider and waste; z_k per
    provider; π per user; the users with π > 0, and slot[u] = u's position among them
    (-1 if none). `candidates`: columns that fitted at the parent; `taken`: users served or
    given up (a bitset); `free[k]`: provider k undecided; `choice[k]`: k's column (-1:
    empty or undecided)."""
    bits, col_starts, col_items, provider, waste, empty_waste, penalty, penalised, slot = problem
    counter[0] += 1
    if counter[0] > limit:
        counter[1] = 1
        return
    m = empty_waste.shape[0]
    words = bits.shape[1]
    # The columns still usable, the cheapest per free provider, and for each undecided
    # user with π > 0 how many usable columns could still serve it.
    live = np.empty(candidates.shape[0], dtype=np.int64)
    n_live = 0
    cheapest = np.zeros(m)
    for k in range(m):
        if free[k]:
            cheapest[k] = empty_waste[k]
    options = np.zeros(penalised.shape[0], dtype=np.int64)
    for t in range(candidates.shape[0]):
        c = candidates[t]
        k = provider[c]
        if free[k] and _fits(bits, c, taken):
            live[n_live] = c
            n_live += 1
            if waste[c] < cheapest[k]:
                cheapest[k] = waste[c]
            for e in range(col_starts[c], col_starts[c + 1]):
                if slot[col_items[e]] >= 0:
                    options[slot[col_items[e]]] += 1
    live = live[:n_live]
    rest = 0.0
    for k in range(m):
        rest += cheapest[k]
    # Branch on the undecided user with the fewest options (fail first; ties: larger π).
    target = -1
    fewest = 0
    lost = 0.0  # π of undecided users nobody can serve any more
    for t in range(penalised.shape[0]):
        u = penalised[t]
        if (taken[u >> 6] >> np.uint64(u & 63)) & np.uint64(1):
            continue
        if options[t] == 0:
            lost += penalty[u]
        elif target < 0 or options[t] < fewest:
            target = u
            fewest = options[t]
    if acc + rest + lost >= best[0]:
        return
    if target < 0:
        # Nobody with π > 0 can still be served: decide the first free provider.
        k0 = -1
        for k in range(m):
            if free[k]:
                k0 = k
                break
        if k0 < 0:  # leaf: every provider decided; the lost users are paid in `lost`
            best[0] = acc + lost
            best_choice[:] = choice
            return
    for t in range(n_live):
        c = live[t]
        if acc + waste[c] + lost >= best[0]:
            break  # live columns are sorted by waste
        k = provider[c]
        if target >= 0:
            if not _holds(bits, c, target):
                continue
        elif k != k0:
            continue
        # The child's bound is at least this: the other free providers' cheapest only grow.
        if acc + waste[c] + rest - cheapest[k] + lost >= best[0]:
            continue
        for w in range(words):
            taken[w] |= bits[c, w]
        free[k] = False
        choice[k] = c
        _search(
            problem, live, acc + waste[c], taken, free, choice, best, best_choice, counter, limit
        )
        free[k] = True
        choice[k] = -1
        for w in range(words):
            taken[w] &= ~bits[c, w]
    if target >= 0:  # or give the target up: it pays π and no later column may serve it
        if acc + penalty[target] + rest + lost < best[0]:
            mask = np.uint64(1) << np.uint64(target & 63)
            taken[target >> 6] |= mask
            _search(
                problem,
                live,
                acc + penalty[target],
                taken,
                free,
                choice,
                best,
                best_choice,
                counter,
                limit,
            )
            taken[target >> 6] &= ~mask
    elif acc + empty_waste[k0] + rest - cheapest[k0] + lost < best[0]:  # or leave k0 empty
        free[k0] = False
        _search(
            problem,
            live,
            acc + empty_waste[k0],
            taken,
            free,
            choice,
            best,
            best_choice,
            counter,
            limit,
        )
        free[k0] = True


def min_waste_packing(
    columns: ColumnList,
    waste: np.ndarray,
    empty_waste: np.ndarray,
    penalty: np.ndarray,
    budget: float,
    node_limit: int = 50_000_000,
) -> tuple[float, np.ndarray, bool, int]:
    """The least-waste packing worth less than `budget`: (waste, column per provider, complete,
    nodes). Column -1 means empty. If no packing beats the budget, returns (budget, all -1).

    `waste[c]` ≥ 0 for column c; `empty_waste[k]` = z_k; `penalty[u]` = π_u.
    `complete` is False when the node limit stopped the search."""
    n_users = penalty.shape[0]
    m = empty_waste.shape[0]
    order = np.argsort(waste, kind="stable").astype(np.int64)
    lengths = np.diff(columns.starts)[order]
    col_starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    within = np.arange(int(col_starts[-1])) - np.repeat(col_starts[:-1], lengths)
    col_items = columns.items[np.repeat(columns.starts[order], lengths) + within]
    penalised = np.flatnonzero(penalty > 0.0)
    penalised = penalised[np.argsort(-penalty[penalised], kind="stable")].astype(np.int64)
    slot = np.full(n_users, -1, dtype=np.int64)
    slot[penalised] = np.arange(penalised.shape[0])
    problem = (
        _user_bits(columns.starts, columns.items, order, n_users),
        col_starts,
        col_items.astype(np.int64),
        columns.providers[order],
        np.asarray(waste, dtype=np.float64)[order],
        np.asarray(empty_waste, dtype=np.float64),
        np.asarray(penalty, dtype=np.float64),
        penalised,
        slot,
    )
    best = np.array([float(budget)])
    best_choice = np.full(m, -1, dtype=np.int64)
    counter = np.zeros(2, dtype=np.int64)
    taken = np.zeros(problem[0].shape[1], dtype=np.uint64)
    free = np.ones(m, dtype=np.bool_)
    choice = np.full(m, -1, dtype=np.int64)
    candidates = np.arange(len(order), dtype=np.int64)
    _search(problem, candidates, 0.0, taken, free, choice, best, best_choice, counter, node_limit)
    chosen = np.array([order[c] if c >= 0 else -1 for c in best_choice], dtype=np.int64)
    return float(best[0]), chosen, counter[1] == 0, int(counter[0])


def packing_reference(
    columns: ColumnList,
    waste: np.ndarray,
    empty_waste: np.ndarray,
    penalty: np.ndarray,
) -> float:
    """Least waste over every choice of one listed column (or none) per provider: brute force."""
    m = empty_waste.shape[0]
    options = [
        [-1] + [c for c in range(len(columns)) if columns.providers[c] == k] for k in range(m)
    ]
    best = np.inf
    for pick in itertools.product(*options):
        served: set[int] = set()
        total = 0.0
        for k, c in enumerate(pick):
            if c < 0:
                total += empty_waste[k]
                continue
            users = set(int(u) for u in columns.members(c))
            if users & served:
                break
            served |= users
            total += waste[c]
        else:
            total += sum(penalty[u] for u in range(penalty.shape[0]) if u not in served)
            best = min(best, total)
    return float(best)
