"""An exact multiple-knapsack solver for the standard auction, after Pisinger's MULKNAP.

The standard auction (seed 003 §5.2.2) is a multiple knapsack problem: users are items
(profit v_i = b_i·d_i, weight d_i), providers are knapsacks (capacity C_j), each item goes
whole into one knapsack or none. D. Pisinger, "An exact algorithm for large multiple
knapsack problems", EJOR 114 (1999), solves it by a depth-first branch and bound whose
bounds come from the *surrogate relaxation*: all knapsacks merged into one of capacity
Σ_j c_j, a single 0/1 knapsack. When there are many items per knapsack that bound is
almost always the optimum, and the proof is to *split* the surrogate solution into the
knapsacks. Pisinger's own code is not used here (its licence forbids commercial use); this
is an independent implementation of the published algorithm, adapted as follows.

Integer units. Weights and profits are int64 (`vcg.units`: demand units that keep every
assignment the market would accept and nothing it would refuse, value units of about 2^-60
of the total welfare), so every sum and comparison of the search is exact.

A node of the search fixes some users to providers and forbids some (user, provider)
pairs: user i may only go to providers first[i], first[i]+1, ... (providers sorted by
increasing capacity). At each node:

1. *Candidates* are the free users that still fit some provider they may use; a provider
   is *open* when some candidate may use it and fits. Its capacity counts in the surrogate
   only up to the candidates' total weight.
2. *Upper bound*: fixed profit + the exact 0/1 knapsack over the candidates with capacity
   Σ_open c_j (`_knapsack`: depth-first branch and bound with the Dantzig bound from
   prefix sums, the same search as `vcg.knapsack` but on integers). A node whose bound
   does not beat the incumbent is closed.
3. *Split*: the knapsack's users are dealt into the open providers, smallest first, each
   filled by a subset-sum search (`_fill`) that may leave at most a share of the
   surrogate's spare capacity unused; the largest provider takes the rest. If every user
   finds a place, the bound is reached: the node is solved.
4. Otherwise a *lower bound*: what the split placed, and each provider's remaining space
   filled by an exact knapsack over the users left.
5. *Branching* (Pisinger's rule): on the smallest open provider j, the most efficient user
   of j's own best knapsack filling; first "i goes to j", then "i goes to no provider up
   to j". Providers before j are closed, so the two branches cover every assignment.

The search stops at `node_limit` nodes (then the answer carries the largest bound of the
unexplored nodes: a certified gap), when the incumbent reaches a known upper bound (the
full problem's optimum bounds every W*_{-i}), or when it is within a requested gap.
Node limits, never clocks: the distributed auctioneer's providers must all stop at the same
point.

`mulknap_reference.solve_reference` is the readable twin (plain Python, the same bounds and
branching, no limits); the tests hold the two to the same optima, and both to brute force
and the plain MILP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from mercat.clearing.vcg.units import IntegerAuction
from mercat.errors import InvalidParameterError

DEFAULT_NODE_LIMIT = 200_000
"""Branch-and-bound nodes per solve (each node solves one knapsack over all candidates)."""

KNAPSACK_NODE_LIMIT = 5_000_000
"""Nodes of one surrogate knapsack search; past it the node keeps the Dantzig bound."""

FILL_NODE_LIMIT = 100_000
"""Nodes of one subset-sum search of the split (a heuristic: a miss only costs a branch)."""

HEURISTIC_NODE_LIMIT = 1_000
"""Nodes of the knapsack that picks the branching user (a heuristic choice)."""

FILLINGS_LIMIT = 4_096
"""Bin completion lists at most this many fillings; a provider with more is branched on
user by user instead."""

FILLINGS_NODE_LIMIT = 200_000
"""Nodes of the search that lists a provider's fillings."""

BISECTION_STEPS = 16
"""Knapsack searches that place the weight below which a provider's fillings are useless."""

BINARY = 1
COMPLETION = 2

# The fractional item of the Dantzig bound is the one place where floats enter: the bound
# is rounded up with a margin far above their error (items are sorted by float efficiency,
# so two items whose ratios agree to 2^-52 may be out of order: that shifts the bound by
# at most 2^-52 of the break item's profit).
_FRACTION_MARGIN = 1e-12


# nogil: a provider of the distributed auctioneer runs these searches in a worker thread;
# holding the GIL for seconds would stall its event loop (messages, timeouts, SIGTERM).
@njit(cache=True, nogil=True)
def _dantzig(k, residual, ncand, pw, pp, cand, p, w):  # pragma: no cover - numba
    """Upper bound (an integer ≥ the LP value) on what candidates k.. add within `residual`."""
    if k >= ncand or residual <= 0:
        return 0
    target = pw[k] + residual
    lo = k
    hi = ncand
    while lo < hi:  # largest t with pw[t] <= target: candidates k..t-1 fit whole
        mid = (lo + hi + 1) // 2
        if pw[mid] <= target:
            lo = mid
        else:
            hi = mid - 1
    t = lo
    bound = pp[t] - pp[k]
    if t < ncand:
        i = cand[t]
        fraction = float(target - pw[t]) * (float(p[i]) / float(w[i]))
        bound += int(fraction + float(p[i]) * _FRACTION_MARGIN) + 1
    return bound


@njit(cache=True, nogil=True)
def _dantzig_without(skip, residual, ncand, pw, pp, cand, p, w):  # pragma: no cover - numba
    """`_dantzig(0, residual, ...)` over the candidates without position `skip`."""
    if residual <= 0:
        return 0
    skip_w = w[cand[skip]]
    lo = 0
    hi = ncand
    while lo < hi:  # largest t whose prefix, less the skipped weight, fits
        mid = (lo + hi + 1) // 2
        weight = pw[mid] - (skip_w if mid > skip else 0)
        if weight <= residual:
            lo = mid
        else:
            hi = mid - 1
    t = lo  # never `skip` itself: the prefixes up to skip and skip + 1 weigh the same
    bound = pp[t] - (p[cand[skip]] if t > skip else 0)
    if t < ncand:
        i = cand[t]
        used = pw[t] - (skip_w if t > skip else 0)
        fraction = float(residual - used) * (float(p[i]) / float(w[i]))
        bound += int(fraction + float(p[i]) * _FRACTION_MARGIN) + 1
    return bound


@njit(cache=True, nogil=True)
def _prefix_sums(p, w, cand, ncand):  # pragma: no cover - numba
    pw = np.zeros(ncand + 1, dtype=np.int64)
    pp = np.zeros(ncand + 1, dtype=np.int64)
    for k in range(ncand):
        pw[k + 1] = pw[k] + w[cand[k]]
        pp[k + 1] = pp[k] + p[cand[k]]
    return pw, pp


@njit(cache=True, nogil=True)
def _reduce(p, w, cand, ncand, cap, floor, status):  # pragma: no cover - numba
    """Pisinger's reduction: status[k] = 1 when every subset worth more than `floor`
    holds candidate k (dropping it bounds them at ≤ floor), -1 when none does (taking it
    bounds them at ≤ floor), 0 otherwise. Returns the number of fixed candidates."""
    pw, pp = _prefix_sums(p, w, cand, ncand)
    brk = 0  # the break position: candidates before it fill the capacity greedily
    while brk < ncand and pw[brk + 1] <= cap:
        brk += 1
    fixed = 0
    for k in range(ncand):
        status[k] = 0
        i = cand[k]
        if k < brk:
            if _dantzig_without(k, cap, ncand, pw, pp, cand, p, w) <= floor:
                status[k] = 1
        elif (
            w[i] > cap or p[i] + _dantzig_without(k, cap - w[i], ncand, pw, pp, cand, p, w) <= floor
        ):
            status[k] = -1
        if status[k] != 0:
            fixed += 1
    return fixed


@njit(cache=True, nogil=True)
def _knapsack(p, w, cand, ncand, cap, floor, node_limit, chosen):  # pragma: no cover
    """Max Σ p over a subset of cand[:ncand] (efficiency order) with Σ w ≤ cap.

    Only subsets worth more than `floor` are of interest: `_reduce` first fixes the
    candidates that every such subset holds or avoids, then `_knapsack_reduced` searches
    the others. Returns (value, count, complete, bound, nodes): the best subset found,
    worth `value` > floor, in chosen[:count] (count 0 and value = floor when none was
    found); `complete` when the search finished, so that the subset is optimal or nothing
    beats the floor; `bound` ≥ the optimum in any case.
    """
    pw, pp = _prefix_sums(p, w, cand, ncand)
    root_bound = _dantzig(0, cap, ncand, pw, pp, cand, p, w)
    if root_bound <= floor:
        return floor, 0, True, root_bound, 1
    status = np.empty(ncand, dtype=np.int64)
    _reduce(p, w, cand, ncand, cap, floor, status)
    return _knapsack_reduced(p, w, cand, ncand, cap, floor, node_limit, chosen, status, root_bound)


@njit(cache=True, nogil=True)
def _knapsack_reduced(
    p, w, cand, ncand, cap, floor, node_limit, chosen, status, root_bound
):  # pragma: no cover - numba
    """`_knapsack` after the reduction: status[k] = 1 (every improving subset holds
    candidate k), -1 (none does) or 0; `root_bound` is the Dantzig bound of them all.
    Depth-first branch and bound over the status-0 candidates: include first, Dantzig
    bounds from prefix sums."""
    core = np.empty(ncand, dtype=np.int64)
    ncore = 0
    base_w = 0
    base_p = 0
    for k in range(ncand):
        if status[k] == 1:
            base_w += w[cand[k]]
            base_p += p[cand[k]]
        elif status[k] == 0:
            core[ncore] = cand[k]
            ncore += 1
    if base_w > cap:  # the forced candidates do not fit together: nothing beats the floor
        return floor, 0, True, floor, 1
    pw, pp = _prefix_sums(p, w, core, ncore)
    room = cap - base_w
    x = np.zeros(ncore, dtype=np.bool_)
    best_x = np.zeros(ncore, dtype=np.bool_)
    best = floor - base_p
    found = False
    k = 0
    cw = 0
    cp = 0
    nodes = 0
    complete = True
    while True:
        nodes += 1
        if nodes > node_limit:
            complete = False
            break
        if cp > best:
            best = cp
            found = True
            best_x[:] = x
        prune = k >= ncore
        if not prune:
            prune = cp + _dantzig(k, room - cw, ncore, pw, pp, core, p, w) <= best
        if not prune:
            i = core[k]
            if w[i] <= room - cw:  # include first; the exclusion is visited on backtracking
                x[k] = True
                cw += w[i]
                cp += p[i]
            k += 1
            continue
        j = k - 1  # backtrack: the deepest included candidate switches to excluded
        while j >= 0 and not x[j]:
            j -= 1
        if j < 0:
            break
        x[j] = False
        cw -= w[core[j]]
        cp -= p[core[j]]
        k = j + 1
    count = 0
    if found:
        for k in range(ncand):  # in efficiency order: forced candidates and core merged
            if status[k] == 1:
                chosen[count] = cand[k]
                count += 1
        for k in range(ncore):
            if best_x[k]:
                chosen[count] = core[k]
                count += 1
        chosen[:count].sort()
    value = best + base_p if found else floor
    bound = value if complete else max(root_bound, value)
    return value, count, complete, bound, nodes


@njit(cache=True, nogil=True)
def _fill_depth_first(items, nitems, w, cap, enough, node_limit, taken, stats):  # pragma: no cover
    """Subset-sum by depth-first search over items[:nitems] (heaviest first): the greedy
    filling first, then backtracking until a subset weighs `enough` (≤ cap) or the node
    limit. Returns (weight, count, exhausted): the heaviest subset seen, its items in
    taken[:count]; exhausted when the search ended by itself (the subset is then the
    heaviest that fits, or weighs `enough`)."""
    suffix = np.zeros(nitems + 1, dtype=np.int64)
    for k in range(nitems - 1, -1, -1):
        suffix[k] = suffix[k + 1] + w[items[k]]
    x = np.zeros(nitems, dtype=np.bool_)
    best_x = np.zeros(nitems, dtype=np.bool_)
    best = 0
    k = 0
    cw = 0
    nodes = 0
    exhausted = False
    while nodes < node_limit:
        nodes += 1
        if k < nitems and cw + suffix[k] > best:
            i = items[k]
            if w[i] <= cap - cw:
                x[k] = True
                cw += w[i]
            k += 1
            continue
        if cw > best:  # a leaf (or a pruned node) holds the heaviest subset of its path
            best = cw
            best_x[:] = x
        if best >= enough:
            exhausted = True
            break
        j = k - 1
        while j >= 0 and not x[j]:
            j -= 1
        if j < 0:
            exhausted = True
            break
        x[j] = False
        cw -= w[items[j]]
        k = j + 1
    stats[7] += nodes
    count = 0
    for k in range(nitems):
        if best_x[k]:
            taken[count] = items[k]
            count += 1
    return best, count, exhausted


@njit(cache=True, nogil=True)
def _subset_sums(items, w):  # pragma: no cover - numba
    """Σ w over every subset of `items`, subset `mask` at index mask."""
    sums = np.zeros(1 << items.shape[0], dtype=np.int64)
    for b in range(items.shape[0]):
        step = 1 << b
        for mask in range(step):
            sums[mask | step] = sums[mask] + w[items[b]]
    return sums


@njit(cache=True, nogil=True)
def _fill_halves(items, nitems, w, cap, enough, half, taken):  # pragma: no cover - numba
    """Subset-sum by meeting in the middle, for targets finer than a depth-first search
    reaches: the 2·`half` lightest items (the last ones) are the fine part, the others fill
    greedily (heaviest first) up to about cap - (fine weight)/2, and the best pair of
    subset sums of the fine part's two halves completes the filling: 4^half combinations
    for 2^(half+1) sums and two sorts. Returns (weight, count), items in taken[:count]."""
    nfine = min(2 * half, nitems)
    fine = items[nitems - nfine : nitems]
    fine_w = 0
    for k in range(nfine):
        fine_w += w[fine[k]]
    target = cap - fine_w // 2
    count = 0
    coarse = 0
    for k in range(nitems - nfine):
        i = items[k]
        if coarse + w[i] <= target:
            taken[count] = i
            count += 1
            coarse += w[i]
    room = cap - coarse  # what the fine part may add
    need = enough - coarse
    first_half = fine[: nfine // 2]
    second_half = fine[nfine // 2 :]
    sums_a = _subset_sums(first_half, w)
    sums_b = _subset_sums(second_half, w)
    order_a = np.argsort(sums_a)
    order_b = np.argsort(sums_b)
    best = -1
    best_a = 0
    best_b = 0
    j = order_b.shape[0] - 1
    for a in order_a:  # sums of the first half ascending, of the second descending
        while j >= 0 and sums_a[a] + sums_b[order_b[j]] > room:
            j -= 1
        if j < 0:
            break
        total = sums_a[a] + sums_b[order_b[j]]
        if total > best:
            best = total
            best_a = a
            best_b = order_b[j]
            if best >= need:
                break
    if best < 0:
        return coarse, count
    for b in range(first_half.shape[0]):
        if best_a & (1 << b):
            taken[count] = first_half[b]
            count += 1
    for b in range(second_half.shape[0]):
        if best_b & (1 << b):
            taken[count] = second_half[b]
            count += 1
    return coarse + best, count


@njit(cache=True, nogil=True)
def _fill(items, nitems, w, cap, enough, node_limit, taken, stats):  # pragma: no cover - numba
    """A subset of items[:nitems] (heaviest first) weighing at most cap, at least `enough`
    if the searches find one: depth first, then meeting in the middle with 2^11 and 2^15
    sums per half. Returns (weight, count), items in taken[:count]."""
    best, count, exhausted = _fill_depth_first(
        items, nitems, w, cap, enough, node_limit, taken, stats
    )
    if exhausted:
        return best, count
    scratch = np.empty(nitems, dtype=np.int64)
    for half in (11, 15):
        if half > 11 and nitems <= 2 * 11:
            break  # the first pass already took every item into its fine part
        stats[4] += 1
        weight, got = _fill_halves(items, nitems, w, cap, enough, half, scratch)
        if weight > best:
            best = weight
            count = got
            taken[:got] = scratch[:got]
        if best >= enough:
            break
    return best, count


@njit(cache=True, nogil=True)
def _split(
    chosen, count, w, first, c, open_bin, spare, node_limit, placed, stats
):  # pragma: no cover
    """Deal the surrogate knapsack's users into the open providers (see the module
    docstring, step 3). placed[i] receives the provider of each user it places (others
    are left as they were, -1). Returns True when every user found a place."""
    m = c.shape[0]
    last = -1
    for j in range(m):
        if open_bin[j]:
            last = j
    if last < 0:
        return count == 0
    # Users by decreasing weight (ties by efficiency order, so the split is deterministic).
    keys = np.empty(count, dtype=np.int64)
    for k in range(count):
        keys[k] = chosen[k]
    weights = np.empty(count, dtype=np.int64)
    for k in range(count):
        weights[k] = -w[keys[k]]
    order = np.argsort(weights, kind="mergesort")
    left = np.empty(count, dtype=np.int64)
    for k in range(count):
        left[k] = keys[order[k]]
    nleft = count
    eligible = np.empty(count, dtype=np.int64)
    taken = np.empty(count, dtype=np.int64)
    budget = spare
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
        share = budget // bins_left if bins_left > 0 else budget
        filled, ntaken = _fill(eligible, neligible, w, c[j], c[j] - share, node_limit, taken, stats)
        bins_left -= 1
        budget -= c[j] - filled
        for k in range(ntaken):
            placed[taken[k]] = j
        # Keep the users not taken, in their order.
        kept = 0
        for k in range(nleft):
            if placed[left[k]] < 0:
                left[kept] = left[k]
                kept += 1
        nleft = kept
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
    """A lower bound: the split's placements, then each provider's remaining space filled
    greedily by the candidates not placed, most efficient first. Sets placed[] and returns
    its profit."""
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
        for j in range(first[i], c.shape[0]):  # the smallest provider it fits
            if w[i] <= residual[j]:
                placed[i] = j
                residual[j] -= w[i]
                value += p[i]
                break
    return value


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
def _fillings(
    rp, w, items, nitems, cap, heavier, threshold, max_out, node_limit
):  # pragma: no cover
    """Every subset F of items[:nitems] (in decreasing rp/w order) with heavier < w(F) ≤
    cap and Σ_F rp ≥ threshold: depth first, Dantzig bounds on rp. Returns (members, starts,
    count, complete): filling s is members[starts[s]:starts[s + 1]]; complete is False when
    there are more than max_out or the node limit stopped the search."""
    pw = np.zeros(nitems + 1, dtype=np.int64)
    pr = np.zeros(nitems + 1)
    for k in range(nitems):
        pw[k + 1] = pw[k] + w[items[k]]
        pr[k + 1] = pr[k] + rp[items[k]]
    members = np.empty(max(16, 4 * max_out), dtype=np.int64)
    starts = np.zeros(max_out + 2, dtype=np.int64)
    count = 0
    used = 0
    complete = True
    if threshold <= 0.0 and heavier < 0:  # the empty filling
        count = 1
    x = np.zeros(nitems, dtype=np.bool_)
    k = 0
    cw = 0
    cr = 0.0
    nodes = 0
    while True:
        nodes += 1
        if nodes > node_limit:
            complete = False
            break
        prune = k >= nitems
        if not prune:  # the Dantzig bound of what items k.. can still add
            room = cap - cw
            lo = k
            hi = nitems
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if pw[mid] - pw[k] <= room:
                    lo = mid
                else:
                    hi = mid - 1
            bound = cr + pr[lo] - pr[k]
            if lo < nitems:
                i = items[lo]
                bound += float(room - (pw[lo] - pw[k])) * rp[i] / float(w[i])
            prune = bound < threshold
        if not prune:
            i = items[k]
            if w[i] <= cap - cw:
                x[k] = True
                cw += w[i]
                cr += rp[i]
                if cr >= threshold and cw > heavier:  # record it when its last member joins
                    if count >= max_out:
                        complete = False
                        break
                    size = 0
                    for q in range(k + 1):
                        if x[q]:
                            size += 1
                    if used + size > members.shape[0]:
                        grown = np.empty(2 * members.shape[0] + size, dtype=np.int64)
                        grown[:used] = members[:used]
                        members = grown
                    for q in range(k + 1):
                        if x[q]:
                            members[used] = items[q]
                            used += 1
                    count += 1
                    starts[count] = used
            k += 1
            continue
        j = k - 1
        while j >= 0 and not x[j]:
            j -= 1
        if j < 0:
            break
        x[j] = False
        cw -= w[items[j]]
        cr -= rp[items[j]]
        k = j + 1
    return members, starts, count, complete


@njit(cache=True, nogil=True)
def _heaviest_useless(p, w, cand, ncand, base, top, floor):  # pragma: no cover - numba
    """A weight x* in [-1, top] such that no subset of the candidates fitting base + x*
    is worth more than `floor` (-1: not even with capacity base). Bisection in
    BISECTION_STEPS knapsack searches; it errs low, which only keeps more fillings."""
    chosen = np.empty(ncand, dtype=np.int64)
    value, _, complete, _, _ = _knapsack(
        p, w, cand, ncand, base, floor, HEURISTIC_NODE_LIMIT, chosen
    )
    if value > floor or not complete:
        return -1
    lo = 0  # nothing beats the floor at base + lo
    hi = top + 1  # something may beat it at base + hi
    for _ in range(BISECTION_STEPS):
        if hi - lo <= 1:
            break
        mid = lo + (hi - lo) // 2
        value, _, complete, _, _ = _knapsack(
            p, w, cand, ncand, base + mid, floor, HEURISTIC_NODE_LIMIT, chosen
        )
        if value > floor or not complete:
            hi = mid
        else:
            lo = mid
    return lo


@njit(cache=True, nogil=True)
def _completion_children(
    p, w, first, c, usable, cand, ncand, surrogate, fixed, best, j, out_max
):  # pragma: no cover - numba
    """Bin completion on provider j. With λ the efficiency of the
    surrogate's break item, any completion of the node is worth at most LP_λ - waste(F),
    LP_λ = λ·surrogate + Σ max(0, p_i - λ w_i) and waste(F) = λ·(j's counted capacity -
    w(F)) + Σ_F max(0, λ w_i - p_i), F being what provider j holds: only fillings with
    waste < fixed + LP_λ - best can lead to a better assignment. With rp_i = min(p_i,
    λ w_i), waste(F) = λ·counted - Σ_F rp. Returns (members, starts, worth, cut, count,
    complete): the fillings by increasing waste, filling s being
    members[starts[s]:starts[s + 1]] with Σ rp = worth[s]; a filling can improve on an
    incumbent `best` only while worth > cut + best."""
    excess = fixed - best
    # λ: the break item of the surrogate's Dantzig solution.
    total = 0
    lam = 0.0
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
    gap = lp + excess  # excess = fixed - best: gap = fixed + LP_λ - best
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
    # A child F is worth at most fixed + Z(surrogate - counted + w(F)), Z(x) being the
    # knapsack over the node's candidates with capacity x (F and the rest of a completion
    # fit it together). Z grows with x: fillings no heavier than `heavier` cannot help.
    heavier = _heaviest_useless(p, w, cand, ncand, surrogate - counted, counted, best - fixed)
    # Floating point enters the threshold: a margin far above its error keeps every
    # filling that might be needed (an extra child only costs its evaluation).
    threshold = lam * float(counted) - gap
    threshold -= 1e-9 * (abs(lam * float(counted)) + abs(gap)) + 16.0
    members, starts, count, complete = _fillings(
        rp, w, items, nitems, counted, heavier, threshold, out_max, FILLINGS_NODE_LIMIT
    )
    # A child is worth its evaluation while Σ_F rp > cut + best: the incumbent rises as
    # the search goes on, and the children come by decreasing Σ_F rp (least waste first).
    cut = threshold - best
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
def _branch_and_bound(
    p, w, cap, enabled, start_bins, start_value, stop_value, gap, node_limit, stats
):  # pragma: no cover - numba
    """The search of the module docstring on users 0..n-1 sorted by decreasing efficiency
    and providers 0..m-1 sorted by increasing capacity.

    `start_bins` is a feasible assignment worth `start_value`; `stop_value` a known upper
    bound (the search stops once the incumbent reaches it); `gap` a relative gap at which
    to stop. Returns (bins, value, bound, complete, nodes): `bound` ≥ the optimum; complete
    when the whole tree was searched (or the incumbent reached `stop_value`).

    The stack holds two kinds of frames. BINARY (user, provider): first "user goes to
    provider", then "user goes to no provider up to it". COMPLETION (provider, fillings):
    one child per filling, each with the provider closed (capacity 0 below it).
    """
    n = p.shape[0]
    m = cap.shape[0]
    c = cap.copy()
    where = np.full(n, -1, dtype=np.int64)  # provider of a fixed user; -1 free; -2 disabled
    for i in range(n):
        if not enabled[i]:
            where[i] = -2
    first = np.zeros(n, dtype=np.int64)
    fixed = 0
    best = start_value
    best_bins = start_bins.copy()

    cand = np.empty(n, dtype=np.int64)
    chosen = np.empty(n, dtype=np.int64)
    sub = np.empty(n, dtype=np.int64)
    status = np.empty(n, dtype=np.int64)
    placed = np.full(n, -1, dtype=np.int64)
    reach = np.empty(m + 1, dtype=np.int64)
    usable = np.empty(m, dtype=np.int64)
    open_bin = np.zeros(m, dtype=np.bool_)

    depth_limit = n * (m + 1) + m + 1
    st_kind = np.empty(depth_limit, dtype=np.int64)  # BINARY or COMPLETION
    st_bin = np.empty(depth_limit, dtype=np.int64)
    st_item = np.empty(depth_limit, dtype=np.int64)  # BINARY: the user
    st_saved = np.empty(depth_limit, dtype=np.int64)  # BINARY: first[user]; COMPLETION: c[bin]
    st_next = np.empty(depth_limit, dtype=np.int64)  # BINARY: stage; COMPLETION: child
    st_count = np.empty(depth_limit, dtype=np.int64)  # COMPLETION: number of children
    st_base = np.empty(depth_limit, dtype=np.int64)  # COMPLETION: its first child's index
    st_bound = np.empty(depth_limit, dtype=np.int64)
    depth = 0
    # The children of the COMPLETION frames, stacked: child s is
    # pool_members[pool_starts[s]:pool_starts[s + 1]].
    pool_members = np.empty(1024, dtype=np.int64)
    pool_starts = np.zeros(1025, dtype=np.int64)
    pool_worth = np.empty(1024)  # Σ rp of each child (see _completion_children)
    pool_top = 0  # children stored
    st_cut = np.empty(depth_limit)  # COMPLETION: children worth ≤ cut + best are skipped

    nodes = 0
    root_bound = -1
    stopped = False  # by the node limit or the requested gap: the tree is not exhausted
    target = stop_value
    while True:
        # ---- evaluate the current node -------------------------------------------
        nodes += 1
        decision = 0  # 0: closed, BINARY, COMPLETION
        branch_item = -1
        branch_bin = -1
        node_bound = fixed
        fillings = pool_members[:0]
        filling_starts = pool_starts[:1]
        filling_worth = pool_worth[:0]
        cut = 0.0
        nfillings = 0
        # 1. candidates and open providers
        reach[m] = 0
        for j in range(m - 1, -1, -1):
            reach[j] = max(reach[j + 1], c[j])
        ncand = 0
        for i in range(n):
            if where[i] == -1 and first[i] < m and w[i] <= reach[first[i]]:
                cand[ncand] = i
                ncand += 1
        surrogate = _surrogate(w, first, c, cand, ncand, usable, open_bin)
        placed[:] = -1
        dantzig = 0
        if ncand > 0 and surrogate > 0:
            pw, pp = _prefix_sums(p, w, cand, ncand)
            dantzig = _dantzig(0, surrogate, ncand, pw, pp, cand, p, w)
        if ncand == 0 or surrogate == 0:
            if fixed > best:  # a leaf: nothing else fits
                best = fixed
                _record(where, placed, best_bins)
        elif fixed + dantzig <= best:
            node_bound = fixed + dantzig  # closed by the LP bound alone
        else:
            # Candidates that no improving completion can hold leave this node (its
            # capacities only shrink below it, so they would be dropped again); those
            # that every improving one holds are fixed for its knapsack.
            _reduce(p, w, cand, ncand, surrogate, best - fixed, status)
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
            value, count, complete, bound, used = _knapsack_reduced(
                p, w, cand, ncand, surrogate, best - fixed, KNAPSACK_NODE_LIMIT, chosen,
                status, dantzig,
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
                    chosen, count, w, first, c, open_bin, spare, FILL_NODE_LIMIT, placed, stats
                )
                stats[3] += whole
                if whole:
                    if fixed + value > best:
                        best = fixed + value
                        _record(where, placed, best_bins)
                else:
                    # 4. lower bound: the placements, leftovers filled greedily
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
                    fillings, filling_starts, filling_worth, cut, nfillings, listed = (
                        _completion_children(
                            p, w, first, c, usable, cand, ncand, surrogate, fixed, best,
                            branch_bin, FILLINGS_LIMIT,
                        )
                    )  # fmt: skip
                    if listed:
                        decision = COMPLETION
                        stats[5] += 1
                        stats[9] += nfillings
                    else:
                        decision = BINARY
                        stats[8] += 1
                        branch_item = _binary_item(
                            p, w, first, c, cand, ncand, branch_bin, sub, chosen, stats
                        )
        if root_bound < 0:
            root_bound = max(node_bound, best)
            if gap > 0.0:
                target = min(target, int(np.ceil(root_bound / (1.0 + gap))))
        if best >= target:
            stopped = best < stop_value  # reached the known bound: proven; the gap: not
            break
        if decision == COMPLETION and nfillings == 0:
            decision = 0  # no filling can improve: the node is closed
        # ---- descend, or backtrack --------------------------------------------------
        if decision != 0 and nodes >= node_limit:
            st_bound[depth] = node_bound  # the unexplored subtree's bound
            depth += 1
            stopped = True
            break
        if decision == BINARY:
            st_kind[depth] = BINARY
            st_item[depth] = branch_item
            st_bin[depth] = branch_bin
            st_saved[depth] = first[branch_item]
            st_next[depth] = 0
            st_bound[depth] = node_bound
            depth += 1
            where[branch_item] = branch_bin
            c[branch_bin] -= w[branch_item]
            fixed += p[branch_item]
            continue
        if decision == COMPLETION:
            # Stack the children in the pool.
            need = pool_starts[pool_top] + filling_starts[nfillings]
            if need > pool_members.shape[0]:
                grown = np.empty(2 * need, dtype=np.int64)
                grown[: pool_starts[pool_top]] = pool_members[: pool_starts[pool_top]]
                pool_members = grown
            if pool_top + nfillings + 1 > pool_starts.shape[0]:
                size = 2 * (pool_top + nfillings + 1)
                grown = np.zeros(size, dtype=np.int64)
                grown[: pool_top + 1] = pool_starts[: pool_top + 1]
                pool_starts = grown
                grown_worth = np.empty(size)
                grown_worth[:pool_top] = pool_worth[:pool_top]
                pool_worth = grown_worth
            offset = pool_starts[pool_top]
            for q in range(filling_starts[nfillings]):
                pool_members[offset + q] = fillings[q]
            for s in range(1, nfillings + 1):
                pool_starts[pool_top + s] = offset + filling_starts[s]
            for s in range(nfillings):
                pool_worth[pool_top + s] = filling_worth[s]
            st_kind[depth] = COMPLETION
            st_bin[depth] = branch_bin
            st_saved[depth] = c[branch_bin]
            st_next[depth] = 0
            st_count[depth] = nfillings
            st_base[depth] = pool_top
            st_cut[depth] = cut
            st_bound[depth] = node_bound
            depth += 1
            pool_top += nfillings
            c[branch_bin] = 0  # closed below this node
            child = st_base[depth - 1]
            for q in range(pool_starts[child], pool_starts[child + 1]):
                where[pool_members[q]] = branch_bin
                fixed += p[pool_members[q]]
            continue
        resumed = False
        while depth > 0:
            top = depth - 1
            if st_kind[top] == BINARY:
                item = st_item[top]
                if st_next[top] == 0:
                    where[item] = -1  # undo "item goes to bin", then forbid bins up to it
                    c[st_bin[top]] += w[item]
                    fixed -= p[item]
                    first[item] = st_bin[top] + 1
                    st_next[top] = 1
                    resumed = True
                    break
                first[item] = st_saved[top]
                depth -= 1
                continue
            child = st_base[top] + st_next[top]
            for q in range(pool_starts[child], pool_starts[child + 1]):
                where[pool_members[q]] = -1
                fixed -= p[pool_members[q]]
            st_next[top] += 1
            if st_next[top] < st_count[top] and pool_worth[child + 1] > st_cut[top] + best:
                child += 1
                for q in range(pool_starts[child], pool_starts[child + 1]):
                    where[pool_members[q]] = st_bin[top]
                    fixed += p[pool_members[q]]
                resumed = True
                break
            c[st_bin[top]] = st_saved[top]
            pool_top = st_base[top]
            depth -= 1
        if not resumed:
            break
        if nodes >= node_limit:
            stopped = True
            break
    stats[0] += nodes
    if not stopped:
        return best_bins, best, best, True, nodes
    bound = best
    for d in range(depth):
        bound = max(bound, st_bound[d])
    if depth == 0:
        bound = max(bound, root_bound)
    return best_bins, best, min(bound, max(stop_value, best)), False, nodes


@njit(cache=True, nogil=True)
def _binary_item(p, w, first, c, cand, ncand, j, sub, chosen, stats):  # pragma: no cover
    """Pisinger's branching user for provider j: the most efficient user of j's own best
    knapsack filling (users are numbered by decreasing efficiency)."""
    nsub = 0
    for k in range(ncand):
        i = cand[k]
        if first[i] <= j and w[i] <= c[j]:
            sub[nsub] = i
            nsub += 1
    _, count, _, _, used = _knapsack(p, w, sub, nsub, c[j], 0, HEURISTIC_NODE_LIMIT, chosen)
    stats[6] += used
    item = sub[0]  # (every profit is positive: count >= 1)
    if count > 0:
        item = chosen[0]
        for k in range(1, count):
            item = min(item, chosen[k])
    return item


# --- the Python face --------------------------------------------------------------------


@dataclass(frozen=True)
class MulknapResult:
    """The best assignment found, in the auction's own user and provider indices."""

    assignment: np.ndarray  # provider per user, -1 unserved
    value: int  # Σ p_i of the assignment, value units
    bound: int  # proven upper bound on the optimum, value units
    proven: bool  # value == the optimum
    nodes: int


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


def solve_mulknap(
    units: IntegerAuction,
    *,
    excluded: int | None = None,
    incumbent: np.ndarray | None = None,
    upper: int | None = None,
    target_gap: float = 0.0,
    node_limit: int = DEFAULT_NODE_LIMIT,
) -> MulknapResult:
    """The welfare-maximising assignment of `units` (without user `excluded`).

    `incumbent`: a feasible assignment to start from (it must fit and leave `excluded`
    unserved); `upper`: a known upper bound on the optimum, in value units (for W*_{-i},
    the full problem's optimum): the search stops when the incumbent reaches it;
    `target_gap` > 0 stops within that relative gap. Raises InvalidParameterError on a bad
    incumbent or limit."""
    n = units.n_users
    if isinstance(node_limit, bool) or not isinstance(node_limit, int) or node_limit < 1:
        raise InvalidParameterError(f"node_limit must be an integer >= 1, got {node_limit!r}")
    if not 0.0 <= target_gap < 1.0:
        raise InvalidParameterError(f"target_gap must be in [0, 1), got {target_gap!r}")
    if excluded is not None and not 0 <= excluded < n:
        raise InvalidParameterError(f"excluded must be a user index, got {excluded!r}")
    view = _sorted(units)
    position = np.full(n, -1, dtype=np.int64)
    position[view.users] = np.arange(view.users.shape[0])
    provider_rank = np.empty(units.n_providers, dtype=np.int64)
    provider_rank[view.providers] = np.arange(units.n_providers)
    enabled = np.ones(view.users.shape[0], dtype=np.bool_)
    if excluded is not None and position[excluded] >= 0:
        enabled[position[excluded]] = False
    start = np.full(view.users.shape[0], -1, dtype=np.int64)
    start_value = 0
    if incumbent is not None:
        incumbent = np.asarray(incumbent, dtype=np.int64)
        if incumbent.shape != (n,) or np.any(incumbent >= units.n_providers):
            raise InvalidParameterError("the incumbent must name a provider (or -1) per user")
        if not units.fits(incumbent):
            raise InvalidParameterError("the incumbent does not fit the capacities")
        if excluded is not None and incumbent[excluded] >= 0:
            raise InvalidParameterError("the incumbent serves the excluded user")
        served = np.flatnonzero((incumbent >= 0) & (position >= 0))
        start[position[served]] = provider_rank[incumbent[served]]
        start_value = units.value(incumbent)
    stop = np.iinfo(np.int64).max if upper is None else int(upper)
    stats = np.zeros(10, dtype=np.int64)
    bins, value, bound, complete, nodes = _branch_and_bound(
        view.p, view.w, view.cap, enabled, start, start_value, stop, float(target_gap),
        node_limit, stats,
    )  # fmt: skip
    global LAST_STATS
    LAST_STATS = stats
    assignment = np.full(n, -1, dtype=np.int64)
    served = bins >= 0
    assignment[view.users[served]] = view.providers[bins[served]]
    return MulknapResult(assignment, int(value), int(max(bound, value)), bool(complete), nodes)
