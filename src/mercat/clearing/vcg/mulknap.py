"""An exact multiple-knapsack solver for the standard auction, after Pisinger's MULKNAP.

The standard auction (seed 003 §5.2.2) is a multiple knapsack problem: users are items
(profit v_i = b_i·d_i, weight d_i), providers are knapsacks (capacity C_j), each user goes
whole to one provider or to none. D. Pisinger, "An exact algorithm for large multiple
knapsack problems", EJOR 114 (1999), solves it by a depth-first branch and bound whose
bounds come from the *surrogate relaxation* (all knapsacks merged into one of capacity
Σ_j c_j: a single 0/1 knapsack). With many items per knapsack that bound is almost always
the optimum, and the proof is to *split* the surrogate solution into the knapsacks.
Pisinger's own code is not used (its licence forbids commercial use); this is an
independent implementation of the published algorithm, adapted to real demands:

- Integer units (`vcg.units`): demand units that keep every assignment that fits exactly
  and nothing the market would refuse, value units of about 2^-60 of the total welfare.
  Every sum and comparison of the search is exact.
- A split into real-valued capacities needs subset sums far finer than Pisinger's integer
  weights (the surrogate solution often leaves 10^-7 of the capacity unused, in all):
  each provider is filled by a depth-first subset-sum search, then by meeting in the middle
  (`integer_knapsack.fill`).
- A provider too small for the surrogate to see (0.15 of capacity where users ask up to
  1) defeats Pisinger's user-by-user branching: the pooled bound does not move until the
  provider is full. Such providers are branched on by *bin completion*: one child per
  filling F that can still matter, the provider closed below it. Which fillings matter
  follows from two bounds. (1) For any λ ≥ 0 a completion is worth at most LP_λ -
  waste_λ(F), with LP_λ = λ·C + Σ max(0, p_i - λ w_i) and waste_λ(F) = λ·(unused capacity
  of the provider) + Σ_F max(0, λ w_i - p_i); λ is the surrogate's break efficiency.
  (2) F and the rest of a completion fit a knapsack of capacity C - c_j + w(F), so a
  completion is worth at most Z(C - c_j + w(F)), Z the surrogate knapsack as a function of
  its capacity: fillings lighter than a weight found by one more knapsack search cannot
  matter.

A node fixes some users to providers, forbids some (user, provider) pairs (user i may use
providers first[i], first[i]+1, ..., sorted by increasing capacity) and closes providers.
At each node:

1. *Candidates* are the free users that still fit a provider they may use; a provider is
   *open* when a candidate may use it and fits; it counts in the surrogate only up to what
   those candidates weigh. Pisinger's reduction drops the candidates that no improving
   completion can hold.
2. *Upper bound*: fixed profit + the exact 0/1 knapsack over the candidates with the
   surrogate capacity. A node whose bound does not beat the incumbent is closed.
3. *Split*: the knapsack's users are dealt into the open providers, smallest first, each
   allowed to leave a share of the surrogate's spare capacity unused; the largest open
   provider takes the rest. If every user finds a place, the bound is reached. At nodes
   up to SPLIT_DEPTH deep, when this fast deal fails, the search over the providers'
   fillings of `vcg.split` looks for a deal (it fails where one exists when a small
   provider's nearest filling wastes more than its share).
4. Otherwise a *lower bound*: what the split placed, the rest placed greedily.
5. *Branching* on the smallest open provider j: bin completion if its useful fillings
   number at most FILLINGS_LIMIT, else Pisinger's rule (the most efficient user of j's own
   best knapsack filling: first "it goes to j", then "it goes to no provider up to j").

The search stops at `node_limit` nodes (the answer then carries the largest bound of the
unexplored nodes: a certified gap), when the incumbent reaches a known upper bound (the
full problem's optimum bounds every W*_{-i}), or within a requested gap. Node limits,
never clocks, decide the answer when no deadline is given: the distributed auctioneer's
providers must all stop at the same point. With a deadline the search runs in slices of
SLICE_NODES nodes and stops at the first slice boundary past it.

`mulknap_reference.solve_reference` is the readable twin (plain Python, the same bounds
and branching); the tests hold the two to the same optima, and both to brute force and the
plain MILP.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from mercat.clearing.vcg.integer_knapsack import (
    dantzig_bound,
    fill,
    fillings,
    knapsack,
    knapsack_reduced,
    prefix_sums,
    reduce_items,
)
from mercat.clearing.vcg.split import SPLIT_NODES, split_exactly
from mercat.clearing.vcg.units import IntegerAuction
from mercat.errors import InvalidParameterError

DEFAULT_NODE_LIMIT = 1_000_000
"""Nodes per solve. The seed's set-up needs 1 node (n = 1000, most markets) to a few
thousand (a market with a provider of 0.15 bandwidth units); docs/vcg.md has the counts."""

KNAPSACK_NODE_LIMIT = 5_000_000
"""Nodes of one surrogate knapsack search; past it the node keeps the Dantzig bound."""

FILL_NODE_LIMIT = 100_000
"""Depth-first nodes of one subset-sum search of the split (then meet in the middle)."""

BRANCH_NODE_LIMIT = 1_000
"""Nodes of the knapsack that picks Pisinger's branching user (a heuristic choice)."""

FILLINGS_LIMIT = 4_096
"""Bin completion lists at most this many fillings; a provider with more is branched on
user by user."""

FILLINGS_NODE_LIMIT = 200_000
"""Nodes of the search that lists a provider's fillings."""

ROOM_GROWTH = 2
"""Each retry of `_deal_with_room` leaves this many times more room. Measured on seed 2 at
n = 1000 (docs/vcg.md): growth 8 settles fewer winners than 4, and 4 fewer than 2."""

ROOM_TRIES = 24
"""Retries of `_deal_with_room` at a pass's root (2^24 times the spare at most)."""

ROOM_SPLIT_NODES = 50
"""Listings of the split search of each retry."""

SLICE_NODES = 64
"""Nodes between two looks at the clock when a deadline is set."""

SPLIT_DEPTH = 3
"""Nodes at most this deep search the providers' fillings when the fast deal fails."""

ASPIRATION_SHIFT = 10
"""The first aspiration window is (root bound - best known) / 2^ASPIRATION_SHIFT."""

ASPIRATION_GROWTH = 4
"""Each aspiration window is this many times the last."""

ASPIRATION_NODES = 0
"""Nodes of all aspiration passes of one solve together, then an ordinary pass; 0 (the
default) runs none. Measured on seed 2 at n = 1000 with 256 (docs/vcg.md, "Measured"): two
hard W*_{-i} solves fall from 2,007 and 2,364 nodes to 297 and 60, but the others pay
the 256 nodes and the seed's payments take more nodes in all, so it stays off."""

# Frame kinds, and the columns of the frame table.
BINARY = 1
COMPLETION = 2
F_KIND, F_BIN, F_ITEM, F_SAVED, F_NEXT, F_COUNT, F_BASE, F_BOUND = range(8)
# The scalars of a search, in one int64 array so that it can be resumed.
S_FIXED, S_BEST, S_DEPTH, S_POOL, S_NODES, S_ROOT, S_TARGET, S_STATUS, S_STOP = range(9)
RUNNING, EXHAUSTED, STOPPED = 0, 1, 2
# stats: nodes, knapsack nodes, splits, whole splits, meet-in-the-middle passes,
# completion branchings, their children, binary branchings, subset-sum nodes, listings of
# the split searches, the nodes they split, nodes listing bin completion's fillings.
STATS = (
    "nodes",
    "knapsack_nodes",
    "splits",
    "whole_splits",
    "meet_in_the_middle",
    "completions",
    "completion_children",
    "binary_branchings",
    "subset_sum_nodes",
    "split_listings",
    "exact_splits",
    "filling_listing_nodes",
    "roomy_deals",
)


# --- the split and the lower bound ------------------------------------------------------


@njit(cache=True, nogil=True)
def _split(chosen, count, w, first, c, open_bin, spare, placed, stats):  # pragma: no cover
    """Deal the surrogate knapsack's users chosen[:count] into the open providers (the
    module docstring, step 3); placed[i] receives the provider of each user placed.
    Returns True when every user found a place."""
    m = c.shape[0]
    last = -1
    for j in range(m):
        if open_bin[j]:
            last = j
    if last < 0:
        return count == 0
    weights = np.empty(count, dtype=np.int64)
    for k in range(count):
        weights[k] = -w[chosen[k]]
    order = np.argsort(weights, kind="mergesort")  # heaviest first, ties by efficiency
    left = np.empty(count, dtype=np.int64)
    for k in range(count):
        left[k] = chosen[order[k]]
    nleft = count
    eligible = np.empty(count, dtype=np.int64)
    taken = np.empty(count, dtype=np.int64)
    fill_stats = np.zeros(2, dtype=np.int64)
    budget = spare  # what the providers before the last may leave unused, together
    bins_left = 0
    for j in range(last):
        if open_bin[j]:
            bins_left += 1
    for j in range(last):
        if not open_bin[j]:
            continue
        neligible = 0
        for k in range(nleft):
            i = left[k]
            if first[i] <= j and w[i] <= c[j]:
                eligible[neligible] = i
                neligible += 1
        share = budget // bins_left
        bins_left -= 1
        filled, ntaken = fill(
            eligible, neligible, w, c[j], c[j] - share, FILL_NODE_LIMIT, taken, fill_stats
        )
        budget -= c[j] - filled
        for k in range(ntaken):
            placed[taken[k]] = j
        kept = 0
        for k in range(nleft):
            if placed[left[k]] < 0:
                left[kept] = left[k]
                kept += 1
        nleft = kept
        if budget < 0:
            break
    stats[8] += fill_stats[0]
    stats[4] += fill_stats[1]
    if budget < 0:
        return False
    load = 0
    for k in range(nleft):
        i = left[k]
        if first[i] > last:
            return False
        load += w[i]
    if load > c[last]:
        return False
    for k in range(nleft):
        placed[left[k]] = last
    return True


@njit(cache=True, nogil=True)
def _fill_leftovers(p, w, first, c, placed, cand, ncand):  # pragma: no cover - numba
    """A lower bound: the split's placements, then every candidate not placed into the
    smallest provider it may use and fits, most efficient first. Sets placed[] and returns
    the profit placed."""
    residual = c.copy()
    value = 0
    for k in range(ncand):
        i = cand[k]
        if placed[i] >= 0:
            residual[placed[i]] -= w[i]
            value += p[i]
    for k in range(ncand):
        i = cand[k]
        if placed[i] >= 0:
            continue
        for j in range(first[i], c.shape[0]):
            if w[i] <= residual[j]:
                placed[i] = j
                residual[j] -= w[i]
                value += p[i]
                break
    return value


@njit(cache=True, nogil=True)
def _deal_with_room(
    p, w, first, c, open_bin, cand, ncand, surrogate, spare, floor, placed, stats
):  # pragma: no cover - numba
    """An assignment near a pass's root bound when its surrogate solution cannot be dealt:
    the surrogate knapsack again with `room` less capacity (room = spare·ROOM_GROWTH^k,
    k = 1, 2, ...), whose solution leaves the providers that much more waste to share and
    deals far more easily, worth at most about λ·room less (λ the break efficiency: some
    10^-7 of the welfare for a room of 10^7 units at n = 1000). Returns the value of the
    first solution dealt (placed[] holds its providers, -1 elsewhere), or -1 when none
    beats `floor` within ROOM_TRIES."""
    n = p.shape[0]
    chosen = np.empty(n, dtype=np.int64)
    room = max(spare, 1)
    for _ in range(ROOM_TRIES):
        room *= ROOM_GROWTH
        if room >= surrogate:
            break
        value, count, _, _, used = knapsack(
            p, w, cand, ncand, surrogate - room, floor, KNAPSACK_NODE_LIMIT, chosen
        )
        stats[1] += used
        if count == 0:
            break  # nothing beats the floor with this room, nor with more
        placed[:] = -1
        left = surrogate
        for k in range(count):
            left -= w[chosen[k]]
        whole = _split(chosen, count, w, first, c, open_bin, left, placed, stats)
        if not whole:
            whole, _, listings = split_exactly(
                chosen, count, w, first, c, open_bin, placed, ROOM_SPLIT_NODES
            )
            stats[9] += listings
        if whole:
            stats[12] += 1
            return value
    placed[:] = -1
    return -1


# --- node helpers ----------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _candidates(w, where, first, c, cand, reach):  # pragma: no cover - numba
    """The free users that fit a provider they may use, in efficiency order (their
    number); reach[j] = the largest capacity from provider j on."""
    m = c.shape[0]
    reach[m] = 0
    for j in range(m - 1, -1, -1):
        reach[j] = max(reach[j + 1], c[j])
    ncand = 0
    for i in range(where.shape[0]):
        if where[i] == -1 and first[i] < m and w[i] <= reach[first[i]]:
            cand[ncand] = i
            ncand += 1
    return ncand


@njit(cache=True, nogil=True)
def _surrogate(w, first, c, cand, ncand, usable, open_bin):  # pragma: no cover - numba
    """The surrogate capacity: Σ over open providers of min(c_j, what the candidates that
    may use j and fit it weigh); sets usable[] and open_bin[]."""
    m = c.shape[0]
    for j in range(m):
        usable[j] = 0
    for k in range(ncand):
        i = cand[k]
        for j in range(first[i], m):
            if w[i] <= c[j]:
                usable[j] += w[i]
    total = 0
    for j in range(m):
        open_bin[j] = usable[j] > 0
        if open_bin[j]:
            total += min(c[j], usable[j])
    return total


@njit(cache=True, nogil=True)
def _record(where, placed, best_bins):  # pragma: no cover - numba
    """The incumbent: fixed users where they are, free users where the heuristic put them."""
    for i in range(where.shape[0]):
        if where[i] >= 0:
            best_bins[i] = where[i]
        elif where[i] == -1 and placed[i] >= 0:
            best_bins[i] = placed[i]
        else:
            best_bins[i] = -1


@njit(cache=True, nogil=True)
def _heaviest_useless(p, w, cand, ncand, base, top, floor, stats):  # pragma: no cover
    """A weight x* in [-1, top] such that no subset of the candidates that fits base + x*
    is worth more than `floor` (-1: not even one that fits base).

    x* + base + 1 is the lightest subset worth more than the floor, W_min = min{w(S) :
    p(S) > floor}; its complement Y is the heaviest subset with p(Y) ≤ Σp - floor - 1: a
    knapsack with the roles of profit and weight swapped, whose efficiency order is ours
    reversed. Only W_min ≤ base + top matters, which is its floor; a search cut short by
    its node limit gives a bound, and x* errs low (it only keeps more fillings)."""
    total_w = 0
    total_p = 0
    for k in range(ncand):
        total_w += w[cand[k]]
        total_p += p[cand[k]]
    if total_p <= floor:
        return top  # nothing is worth more than the floor
    reverse = cand[:ncand][::-1].copy()
    chosen = np.empty(ncand, dtype=np.int64)
    floor_y = total_w - (base + top) - 1  # W_min ≤ base + top ⇔ w(Y) > floor_y
    _, _, _, bound_y, used = knapsack(
        w, p, reverse, ncand, total_p - floor - 1, floor_y, KNAPSACK_NODE_LIMIT, chosen
    )
    stats[1] += used
    if bound_y <= floor_y:
        return top  # every subset worth more than the floor is heavier than base + top
    lightest = total_w - bound_y  # ≤ W_min (exact when the search completed)
    return max(-1, min(top, lightest - 1 - base))


@njit(cache=True, nogil=True)
def _completion_children(
    p, w, first, c, usable, cand, ncand, surrogate, fixed, best, j, stats
):  # pragma: no cover - numba
    """The fillings F of provider j worth a child (the module docstring, bounds (1) and
    (2)). With rp_i = min(p_i, λ w_i), waste_λ(F) = λ·counted - Σ_F rp, counted being
    j's capacity in the surrogate. Returns (members, starts, worth, cut, count, complete):
    the fillings by increasing waste, filling s being members[starts[s]:starts[s + 1]]
    with Σ rp = worth[s]; a filling can beat an incumbent `best` only while worth > cut +
    best (the children come in decreasing worth: the first that fails ends the list)."""
    total = 0
    lam = 0.0  # the break item's efficiency
    for k in range(ncand):
        i = cand[k]
        if total + w[i] > surrogate:
            lam = float(p[i]) / float(w[i])
            break
        total += w[i]
    lp = lam * float(surrogate)
    for k in range(ncand):
        i = cand[k]
        lp += max(0.0, float(p[i]) - lam * float(w[i]))
    excess = float(fixed) + lp - float(best)  # what the fillings' waste must stay under
    counted = min(c[j], usable[j])
    rp = np.empty(w.shape[0])
    items = np.empty(ncand, dtype=np.int64)
    nitems = 0
    for k in range(ncand):
        i = cand[k]
        if first[i] <= j and w[i] <= c[j]:
            rp[i] = min(float(p[i]), lam * float(w[i]))
            items[nitems] = i
            nitems += 1
    heavier = _heaviest_useless(
        p, w, cand, ncand, surrogate - counted, counted, best - fixed, stats
    )
    # Floats enter the threshold: a margin far above their error keeps every filling that
    # might matter (an extra child only costs its evaluation).
    threshold = lam * float(counted) - excess
    threshold -= 1e-9 * (abs(lam * float(counted)) + abs(excess)) + 16.0
    cut = threshold - float(best)
    members, starts, count, complete, listed_nodes = fillings(
        rp, w, items, nitems, counted, heavier, threshold, FILLINGS_LIMIT, FILLINGS_NODE_LIMIT
    )
    stats[11] += listed_nodes
    if not complete or count == 0:
        return members, starts, np.zeros(0), cut, count, complete
    worth = np.empty(count)
    for s in range(count):
        acc = 0.0
        for q in range(starts[s], starts[s + 1]):
            acc += rp[members[q]]
        worth[s] = acc
    order = np.argsort(-worth, kind="mergesort")
    sorted_members = np.empty(starts[count], dtype=np.int64)
    sorted_starts = np.zeros(count + 1, dtype=np.int64)
    sorted_worth = np.empty(count)
    used = 0
    for r in range(count):
        s = order[r]
        for q in range(starts[s], starts[s + 1]):
            sorted_members[used] = members[q]
            used += 1
        sorted_starts[r + 1] = used
        sorted_worth[r] = worth[s]
    return sorted_members, sorted_starts, sorted_worth, cut, count, True


@njit(cache=True, nogil=True)
def _binary_item(p, w, first, c, cand, ncand, j, sub, chosen, stats):  # pragma: no cover
    """Pisinger's branching user for provider j: the most efficient user of j's own best
    knapsack filling (users are numbered in efficiency order)."""
    nsub = 0
    for k in range(ncand):
        i = cand[k]
        if first[i] <= j and w[i] <= c[j]:
            sub[nsub] = i
            nsub += 1
    _, count, _, _, used = knapsack(p, w, sub, nsub, c[j], 0, BRANCH_NODE_LIMIT, chosen)
    stats[1] += used
    item = sub[0]  # every profit is positive: count >= 1 unless the search was cut short
    if count > 0:
        item = chosen[0]
        for k in range(1, count):
            item = min(item, chosen[k])
    return item


# --- the search --------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _search(
    p, w, sc, c, where, first, best_bins, frames, frame_cut,
    pool_members, pool_starts, pool_worth, gap, budget, node_limit, stats,
):  # pragma: no cover - numba  # fmt: skip
    """Run the search of the module docstring for at most `budget` more nodes.

    Users 0..n-1 are sorted by decreasing efficiency, providers 0..m-1 by increasing
    capacity. The state lives in the arguments (sc: the S_* scalars; c, where, first:
    the current node; frames/frame_cut: the stack; pool_*: the children of the COMPLETION
    frames, child s being pool_members[pool_starts[s]:pool_starts[s + 1]]), so a search
    resumes where it stopped. Returns the pools (they grow).

    BINARY frames: "user goes to provider", then "user goes to no provider up to it".
    COMPLETION frames: one child per filling, the provider closed (capacity 0) below it.
    """
    n = p.shape[0]
    m = c.shape[0]
    cand = np.empty(n, dtype=np.int64)
    chosen = np.empty(n, dtype=np.int64)
    sub = np.empty(n, dtype=np.int64)
    status = np.empty(n, dtype=np.int64)
    placed = np.full(n, -1, dtype=np.int64)
    reach = np.empty(m + 1, dtype=np.int64)
    usable = np.empty(m, dtype=np.int64)
    open_bin = np.zeros(m, dtype=np.bool_)
    end = min(node_limit, sc[S_NODES] + budget)
    while sc[S_STATUS] == RUNNING:
        if sc[S_NODES] >= node_limit:
            sc[S_STATUS] = STOPPED
            break
        if sc[S_NODES] >= end:
            break  # the slice is over; the search resumes here
        sc[S_NODES] += 1
        fixed = sc[S_FIXED]
        best = sc[S_BEST]
        decision = 0
        branch_item = -1
        branch_bin = -1
        node_bound = fixed
        members = pool_members[:0]
        starts = pool_starts[:1]
        worth = pool_worth[:0]
        cut = 0.0
        nfillings = 0
        value = 0
        count = 0
        complete = False
        # 1. candidates and open providers
        ncand = _candidates(w, where, first, c, cand, reach)
        surrogate = _surrogate(w, first, c, cand, ncand, usable, open_bin)
        placed[:] = -1
        if ncand == 0 or surrogate == 0:
            if fixed > best:  # a leaf: nothing else fits
                best = fixed
                _record(where, placed, best_bins)
        else:
            pw, pp = prefix_sums(p, w, cand, ncand)
            lp_bound = dantzig_bound(0, surrogate, ncand, pw, pp, cand, p, w)
            node_bound = fixed + lp_bound
            if node_bound > best:
                # Candidates that no improving completion can hold leave this node (its
                # capacities only shrink below it); those that every improving one
                # holds are fixed for its knapsack.
                reduce_items(p, w, cand, ncand, surrogate, best - fixed, status)
                kept = 0
                for k in range(ncand):
                    if status[k] >= 0:
                        cand[kept] = cand[k]
                        status[kept] = status[k]
                        kept += 1
                if kept < ncand:
                    ncand = kept
                    surrogate = _surrogate(w, first, c, cand, ncand, usable, open_bin)
                # 2. upper bound: the surrogate knapsack
                value, count, complete, bound, used = knapsack_reduced(
                    p, w, cand, ncand, surrogate, best - fixed, KNAPSACK_NODE_LIMIT, chosen,
                    status, lp_bound,
                )  # fmt: skip
                stats[1] += used
                node_bound = fixed + bound
            if node_bound > best:
                # 3. split the surrogate solution
                spare = surrogate
                for k in range(count):
                    spare -= w[chosen[k]]
                stats[2] += 1
                whole = count > 0 and _split(
                    chosen, count, w, first, c, open_bin, spare, placed, stats
                )
                if not whole and count > 0 and sc[S_DEPTH] <= SPLIT_DEPTH:
                    # Near the root the bound is often the optimum itself (W*_{-i} of some
                    # winners), and the fast deal above fails where a deal exists. The
                    # search over the providers' fillings (`vcg.split`) settles those at
                    # once; deeper nodes keep the fast deal only.
                    whole, _, listings = split_exactly(
                        chosen, count, w, first, c, open_bin, placed, SPLIT_NODES
                    )
                    stats[9] += listings
                    stats[10] += whole
                if not whole and count > 0 and sc[S_DEPTH] == 0:
                    roomy = _deal_with_room(
                        p, w, first, c, open_bin, cand, ncand, surrogate, spare, best - fixed,
                        sub, stats,
                    )  # fmt: skip
                    if roomy > 0 and fixed + roomy > best:
                        best = fixed + roomy
                        _record(where, sub, best_bins)
                if whole:
                    stats[3] += 1
                    if fixed + value > best:
                        best = fixed + value
                        _record(where, placed, best_bins)
                else:
                    # 4. lower bound: the placements, the rest placed greedily
                    lower = fixed + _fill_leftovers(p, w, first, c, placed, cand, ncand)
                    if lower > best:
                        best = lower
                        _record(where, placed, best_bins)
                if node_bound > best and not (whole and complete):
                    # 5. branch on the smallest open provider
                    for j in range(m):
                        if open_bin[j]:
                            branch_bin = j
                            break
                    members, starts, worth, cut, nfillings, listed = _completion_children(
                        p, w, first, c, usable, cand, ncand, surrogate, fixed, best, branch_bin,
                        stats,
                    )  # fmt: skip
                    if listed:
                        decision = COMPLETION
                        stats[5] += 1
                        stats[6] += nfillings
                    else:
                        decision = BINARY
                        stats[7] += 1
                        branch_item = _binary_item(
                            p, w, first, c, cand, ncand, branch_bin, sub, chosen, stats
                        )
        sc[S_BEST] = best
        if sc[S_ROOT] < 0:
            sc[S_ROOT] = max(node_bound, best)
            if gap > 0.0:
                sc[S_TARGET] = min(sc[S_TARGET], int(np.ceil(sc[S_ROOT] / (1.0 + gap))))
        if best >= sc[S_TARGET]:  # the known bound (proven) or the requested gap (not)
            sc[S_STATUS] = EXHAUSTED if best >= sc[S_STOP] else STOPPED
            break
        if decision == COMPLETION and nfillings == 0:
            decision = 0  # no filling can improve: the node is closed
        depth = sc[S_DEPTH]
        # ---- descend -----------------------------------------------------------------
        if decision == BINARY:
            frames[depth, F_KIND] = BINARY
            frames[depth, F_ITEM] = branch_item
            frames[depth, F_BIN] = branch_bin
            frames[depth, F_SAVED] = first[branch_item]
            frames[depth, F_NEXT] = 0
            frames[depth, F_BOUND] = node_bound
            sc[S_DEPTH] = depth + 1
            where[branch_item] = branch_bin
            c[branch_bin] -= w[branch_item]
            sc[S_FIXED] = fixed + p[branch_item]
            continue
        if decision == COMPLETION:
            top = sc[S_POOL]
            offset = pool_starts[top]
            need = offset + starts[nfillings]
            if need > pool_members.shape[0]:
                grown = np.empty(2 * need, dtype=np.int64)
                grown[:offset] = pool_members[:offset]
                pool_members = grown
            if top + nfillings + 1 > pool_starts.shape[0]:
                size = 2 * (top + nfillings + 1)
                grown = np.zeros(size, dtype=np.int64)
                grown[: top + 1] = pool_starts[: top + 1]
                pool_starts = grown
                grown_worth = np.empty(size)
                grown_worth[:top] = pool_worth[:top]
                pool_worth = grown_worth
            for q in range(starts[nfillings]):
                pool_members[offset + q] = members[q]
            for s in range(nfillings):
                pool_starts[top + s + 1] = offset + starts[s + 1]
                pool_worth[top + s] = worth[s]
            frames[depth, F_KIND] = COMPLETION
            frames[depth, F_BIN] = branch_bin
            frames[depth, F_SAVED] = c[branch_bin]
            frames[depth, F_NEXT] = 0
            frames[depth, F_COUNT] = nfillings
            frames[depth, F_BASE] = top
            frames[depth, F_BOUND] = node_bound
            frame_cut[depth] = cut
            sc[S_DEPTH] = depth + 1
            sc[S_POOL] = top + nfillings
            c[branch_bin] = 0  # closed below this node
            for q in range(pool_starts[top], pool_starts[top + 1]):
                where[pool_members[q]] = branch_bin
                fixed += p[pool_members[q]]
            sc[S_FIXED] = fixed
            continue
        # ---- backtrack to the next unexplored child ----------------------------------
        resumed = False
        while depth > 0:
            f = depth - 1
            j = frames[f, F_BIN]
            if frames[f, F_KIND] == BINARY:
                item = frames[f, F_ITEM]
                if frames[f, F_NEXT] == 0:
                    where[item] = -1  # undo "item goes to j", then forbid j and below
                    c[j] += w[item]
                    fixed -= p[item]
                    first[item] = j + 1
                    frames[f, F_NEXT] = 1
                    resumed = True
                    break
                first[item] = frames[f, F_SAVED]
                depth -= 1
                continue
            child = frames[f, F_BASE] + frames[f, F_NEXT]
            for q in range(pool_starts[child], pool_starts[child + 1]):
                where[pool_members[q]] = -1
                fixed -= p[pool_members[q]]
            frames[f, F_NEXT] += 1
            if frames[f, F_NEXT] < frames[f, F_COUNT] and pool_worth[child + 1] > (
                frame_cut[f] + float(best)
            ):
                for q in range(pool_starts[child + 1], pool_starts[child + 2]):
                    where[pool_members[q]] = j
                    fixed += p[pool_members[q]]
                resumed = True
                break
            c[j] = frames[f, F_SAVED]
            sc[S_POOL] = frames[f, F_BASE]
            depth -= 1
        sc[S_DEPTH] = depth
        sc[S_FIXED] = fixed
        if not resumed:
            sc[S_STATUS] = EXHAUSTED
    stats[0] = sc[S_NODES]
    return pool_members, pool_starts, pool_worth


# --- the Python face -------------------------------------------------------------------------


@dataclass(frozen=True)
class MulknapResult:
    """The best assignment found, in the auction's own user and provider indices."""

    assignment: np.ndarray  # provider per user, -1 unserved
    value: int  # Σ p_i of the assignment, value units
    bound: int  # proven upper bound on the optimum, value units
    proven: bool  # value is the optimum
    nodes: int
    stats: dict[str, int] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, eq=False)
class _Sorted:
    """Users by decreasing efficiency p/w (users of profit 0 dropped: they never add),
    providers by increasing capacity; both stable, so the order is deterministic."""

    users: np.ndarray  # sorted position -> user
    providers: np.ndarray  # sorted position -> provider
    p: np.ndarray
    w: np.ndarray
    cap: np.ndarray


def _sorted(units: IntegerAuction) -> _Sorted:
    useful = np.flatnonzero(units.profits > 0)
    ratio = units.profits[useful] / units.weights[useful]
    users = useful[np.argsort(-ratio, kind="stable")]
    providers = np.argsort(units.capacities, kind="stable")
    return _Sorted(
        users,
        providers,
        np.ascontiguousarray(units.profits[users]),
        np.ascontiguousarray(units.weights[users]),
        np.ascontiguousarray(units.capacities[providers]),
    )


def _check_options(n: int, excluded, node_limit, target_gap) -> None:
    if isinstance(node_limit, bool) or not isinstance(node_limit, int) or node_limit < 1:
        raise InvalidParameterError(f"node_limit must be an integer >= 1, got {node_limit!r}")
    if not (isinstance(target_gap, int | float) and 0.0 <= target_gap < 1.0):
        raise InvalidParameterError(f"target_gap must be in [0, 1), got {target_gap!r}")
    if excluded is not None and not (isinstance(excluded, int | np.integer) and 0 <= excluded < n):
        raise InvalidParameterError(f"excluded must be a user index, got {excluded!r}")


class _Search:
    """The search of one welfare problem, run in passes over fresh trees.

    A pass is the depth-first search of the module docstring with a *floor*: it looks only
    for assignments worth more than the floor and prunes every node whose bound does not
    beat it, so a pass that ends without finding one proves that the optimum is at most
    the floor. An ordinary pass has the best known assignment's value as its floor.
    `aspire` can first run passes whose floors sit just under the root's bound and go down
    geometrically (aspiration windows, within ASPIRATION_NODES nodes). Why: in the seed's
    set-up the root's bound lies within about 10^-6 of W*_{-i} while the warm start lies
    10^-5 below it, and on some winners a depth-first search from the warm start spends
    thousands of nodes in subtrees whose bounds lie between the two before it finds the
    optimum, where the proof from the optimum itself takes under a hundred (seed 2 at
    n = 1000: 4,724 nodes against 82). A pass whose floor is above the optimum explores
    no more than that proof; the first pass whose floor is below the optimum finds the
    optimum and proves it (nothing it pruned beats its floor). On other winners the proof
    alone takes over a thousand nodes and the passes only add to it: hence the budget,
    and the default of none. Every pass counts its nodes against the one node limit:
    without a deadline the answer is still a function of the inputs and that limit."""

    def __init__(self, view: _Sorted, where, best_bins, start_value, stop, gap, node_limit):
        size, m = view.users.shape[0], view.cap.shape[0]
        self.view, self.initial_where, self.best_bins = view, where, best_bins
        self.best = int(start_value)  # the value of best_bins, a real assignment
        self.stop, self.gap, self.node_limit = int(stop), float(gap), int(node_limit)
        self.proven_cap = self.stop  # the optimum is at most this (passes lower it)
        self.root = -1  # the root's bound, once the first pass has evaluated it
        self.status = RUNNING
        self.nodes = 0
        self.floor = self.best
        self.pass_start = 0  # self.nodes when the current pass started
        self.frames = np.zeros((size * (m + 1) + m + 1, 8), dtype=np.int64)
        self.frame_cut = np.zeros(self.frames.shape[0])
        self.pools = (
            np.empty(1024, dtype=np.int64),
            np.zeros(1025, dtype=np.int64),
            np.empty(1024),
        )
        self.stats = np.zeros(len(STATS), dtype=np.int64)
        self.sc = np.zeros(9, dtype=np.int64)
        self.state: tuple = ()

    def start(self, floor: int) -> None:
        """A fresh pass that looks for assignments worth more than `floor`."""
        view, sc = self.view, self.sc
        sc[:] = 0
        sc[S_BEST] = floor
        sc[S_ROOT] = -1
        sc[S_NODES] = self.nodes
        sc[S_STOP] = sc[S_TARGET] = min(self.stop, self.proven_cap)
        self.floor, self.pass_start, self.status = floor, self.nodes, RUNNING
        where = self.initial_where.copy()
        first = np.zeros(where.shape[0], dtype=np.int64)
        self.state = (view.p, view.w, sc, view.cap.copy(), where, first)

    def run(self, nodes: int, deadline: float | None) -> None:
        """The current pass for at most `nodes` more nodes (and up to `deadline`)."""
        sc = self.sc
        end = min(self.node_limit, self.nodes + nodes)
        while self.nodes < end:
            budget = end - self.nodes if deadline is None else min(end - self.nodes, SLICE_NODES)
            self.pools = _search(
                *self.state, self.best_bins, self.frames, self.frame_cut, *self.pools,
                self.gap, budget, self.node_limit, self.stats,
            )  # fmt: skip
            self.nodes = int(sc[S_NODES])
            if self.root < 0 and sc[S_ROOT] >= 0:
                self.root = int(sc[S_ROOT])
            if sc[S_BEST] > self.floor:  # the pass found (and recorded) an assignment
                self.best = max(self.best, int(sc[S_BEST]))
            if sc[S_STATUS] != RUNNING:
                break
            if deadline is not None and time.perf_counter() >= deadline:
                sc[S_STATUS] = STOPPED
                break
        self.status = int(sc[S_STATUS])
        if self.nodes >= self.node_limit and self.status == RUNNING:
            self.status = sc[S_STATUS] = STOPPED
        if self.status == EXHAUSTED and self.best < self.floor:
            # An aspiration pass found nothing above its floor: the optimum is at most the
            # floor, and the search goes on below it.
            self.proven_cap = min(self.proven_cap, self.floor)
            self.status = RUNNING

    def aspire(self, deadline: float | None) -> None:
        """Passes with floors top - δ (top: the root's bound, or the known upper bound if
        lower), δ growing ×ASPIRATION_GROWTH from (top - best) / 2^ASPIRATION_SHIFT, within
        ASPIRATION_NODES nodes in all. It ends when a pass finds an assignment (the
        optimum, proven, unless a limit stopped that pass), when a limit stops the search,
        or when the floor reaches the best known value or the budget is spent: then an
        ordinary pass is started (not run) from the best assignment known."""
        top = min(self.root, self.proven_cap)
        delta = max(1, (top - self.best) >> ASPIRATION_SHIFT)
        budget_end = self.nodes + ASPIRATION_NODES
        while self.status == RUNNING and self.nodes < budget_end:
            floor = top - delta
            if floor <= self.best:
                break
            self.start(floor)
            self.run(budget_end - self.nodes, deadline)
            delta *= ASPIRATION_GROWTH
        if self.status == RUNNING:
            self.start(self.best)

    def bound(self) -> int:
        """A proven upper bound on the optimum: the best value once proven; otherwise the
        least of what the passes proved, the root's bound and, if the current pass has
        begun, the largest of its floor (what it pruned is worth at most that) and the
        bounds of its open nodes."""
        if self.status == EXHAUSTED:
            return self.best
        known = self.proven_cap if self.root < 0 else min(self.proven_cap, self.root)
        if self.nodes > self.pass_start:
            depth = int(self.sc[S_DEPTH])
            current = max(self.floor, int(self.frames[:depth, F_BOUND].max(initial=0)))
            if depth == 0:
                current = max(current, int(self.sc[S_ROOT]))
            known = min(known, current)
        return max(self.best, known)


def solve_mulknap(
    units: IntegerAuction,
    *,
    excluded: int | None = None,
    incumbent: np.ndarray | None = None,
    upper: int | None = None,
    target_gap: float = 0.0,
    node_limit: int = DEFAULT_NODE_LIMIT,
    deadline: float | None = None,
) -> MulknapResult:
    """The welfare-maximising assignment of `units` (without user `excluded`).

    `incumbent`: a feasible assignment to start from (it must fit and leave `excluded`
    unserved); `upper`: a known upper bound on the optimum, in value units (for W*_{-i},
    the full problem's optimum): the search stops when the incumbent reaches it;
    `target_gap` > 0 stops within that relative gap; `deadline` (a time.perf_counter()
    value) stops at the first slice of SLICE_NODES nodes past it. Without a deadline the
    answer depends on the inputs and `node_limit` only. Raises InvalidParameterError on a
    bad incumbent or option."""
    n = units.n_users
    _check_options(n, excluded, node_limit, target_gap)
    view = _sorted(units)
    size = view.users.shape[0]
    m = units.n_providers
    position = np.full(n, -1, dtype=np.int64)
    position[view.users] = np.arange(size)
    rank = np.empty(m, dtype=np.int64)
    rank[view.providers] = np.arange(m)
    where = np.full(size, -1, dtype=np.int64)
    if excluded is not None and position[excluded] >= 0:
        where[position[excluded]] = -2
    best_bins = np.full(size, -1, dtype=np.int64)
    start_value = 0
    if incumbent is not None:
        incumbent = np.asarray(incumbent, dtype=np.int64)
        if incumbent.shape != (n,) or np.any((incumbent < -1) | (incumbent >= m)):
            raise InvalidParameterError("the incumbent must name a provider (or -1) per user")
        if not units.fits(incumbent):
            raise InvalidParameterError("the incumbent does not fit the capacities")
        if excluded is not None and incumbent[excluded] >= 0:
            raise InvalidParameterError("the incumbent serves the excluded user")
        served = np.flatnonzero((incumbent >= 0) & (position >= 0))
        best_bins[position[served]] = rank[incumbent[served]]
        start_value = int(units.profits[served].sum())
    stop = np.iinfo(np.int64).max if upper is None else int(upper)
    search = _Search(view, where, best_bins, start_value, stop, target_gap, node_limit)
    search.start(start_value)
    search.run(1, deadline)  # the root: its bound, and often the proof
    if search.status == RUNNING and target_gap == 0.0 and ASPIRATION_NODES > 0:
        search.aspire(deadline)
    if search.status == RUNNING:
        search.run(node_limit, deadline)
    best, bound, proven = search.best, search.bound(), search.status == EXHAUSTED
    assignment = np.full(n, -1, dtype=np.int64)
    served = best_bins >= 0
    assignment[view.users[served]] = view.providers[best_bins[served]]
    return MulknapResult(
        assignment,
        best,
        bound,
        proven,
        search.nodes,
        dict(zip(STATS, (int(x) for x in search.stats), strict=True)),
    )


def users_per_provider(units: IntegerAuction) -> float:
    """How many users the surrogate knapsack (all capacities merged) serves, per provider:
    the surrogate bound is tight, and this solver fast, when the number is large (about 2
    at n = 125 in the seed's set-up, 5 at n = 250, 9-19 at n = 1000)."""
    view = _sorted(units)
    size = view.users.shape[0]
    chosen = np.empty(size, dtype=np.int64)
    _, count, _, _, _ = knapsack(
        view.p, view.w, np.arange(size), size, int(view.cap.sum()), 0, KNAPSACK_NODE_LIMIT,
        chosen,
    )  # fmt: skip
    return count / units.n_providers


def refill(
    units: IntegerAuction, assignment: np.ndarray, provider: int, excluded: int
) -> np.ndarray:
    """The warm start of a W*_{-i} solve: `assignment` (the allocation without user
    `excluded`) with the provider's spare capacity filled by an exact knapsack over the
    users nobody serves, `excluded` apart."""
    assignment = np.asarray(assignment, dtype=np.int64).copy()
    served = assignment >= 0
    load = int(units.weights[served & (assignment == provider)].sum())
    spare = int(units.capacities[provider]) - load
    idle = ~served & (units.profits > 0) & (units.weights <= spare)
    idle[excluded] = False
    idle = np.flatnonzero(idle)
    if spare <= 0 or idle.shape[0] == 0:
        return assignment
    ratio = units.profits[idle] / units.weights[idle]
    idle = idle[np.argsort(-ratio, kind="stable")]
    chosen = np.empty(idle.shape[0], dtype=np.int64)
    _, count, _, _, _ = knapsack(
        units.profits, units.weights, idle, idle.shape[0], spare, 0, BRANCH_NODE_LIMIT, chosen
    )
    assignment[chosen[:count]] = provider
    return assignment
